"""Each convolutional encoder, trained mode, against the same input through a
float64 model: the plain configuration (flax's reduced BatchNorm sums, XLA's
convolution gradients: what GPUs and TPUs run) and the CPU one
(`bn_sums='matmul'`, `conv_backward='saved_input'`), and that both options
reach every layer of the encoder."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.models import build_model

PLAIN = dict(bn_sums="reduce", conv_backward="xla")
CPU_OPTIONS = dict(bn_sums="matmul", conv_backward="saved_input")


def _run(name, shape, options, x64):
  """((loss, BatchNorm updates), parameter gradients) as float64 NumPy, and
  the compiled program's text."""
  with jax.enable_x64(x64):
    dtype = jnp.float64 if x64 else jnp.float32
    # Drawn in float32 either way: in 64-bit mode a float64 draw would be
    # another input.
    x = jax.random.normal(jax.random.key(1), shape, jnp.float32).astype(dtype)
    model = build_model({"name": name, "width": 4, "projection_dims": (8, 4),
                         "dtype": "float64" if x64 else "float32",
                         **options})
    variables = model.init(jax.random.key(0), x, train=False)
    variables = jax.tree.map(lambda v: v.astype(dtype), variables)

    def loss(params):
      out, updates = model.apply({**variables, "params": params}, x,
                                 train=True, mutable=["batch_stats"],
                                 rngs={"spec_augment": jax.random.key(2)})
      return jnp.sum(jnp.sin(out["projection"])), updates

    compiled = jax.jit(jax.value_and_grad(loss, has_aux=True)).lower(
        variables["params"]).compile()
    result = compiled(variables["params"])
    return (jax.tree.map(lambda a: np.asarray(a, np.float64), result),
            compiled.as_text())


@pytest.mark.parametrize("name, shape", [
    ("resnet18", (4, 16, 16, 1)),
    ("audio_cnn", (4, 800)),
    ("sensor_resnet1d", (4, 32, 6)),
])
def test_cpu_options_are_as_accurate_as_the_plain_encoder(name, shape):
  """The loss, BatchNorm statistics and parameter gradients of both
  configurations against float64. Errors are relative to each array's
  largest entry; float32 through these nets errs by a median ~3e-6, and a few
  cancelling sums (the audio input BN's scale gradient) lose more in either
  configuration."""
  exact, _ = _run(name, shape, PLAIN, x64=True)

  def errors(result):
    return jax.tree.leaves(jax.tree.map(
        lambda a, e: np.max(np.abs(a - e)) / max(np.max(np.abs(e)), 1e-30),
        result, exact))

  plain, plain_hlo = _run(name, shape, PLAIN, x64=False)
  ours, ours_hlo = _run(name, shape, CPU_OPTIONS, x64=False)
  plain_errors, our_errors = errors(plain), errors(ours)
  # A reference that is not the same input in float64 (a float64 draw, a
  # model that casts to float32) errs alike in both configurations, by up to
  # 1, which the relative comparison below would let through.
  assert np.median(plain_errors) < 2e-5
  for e_ours, e_plain in zip(our_errors, plain_errors):
    assert e_ours < max(1e-4, 10 * e_plain)
  # Both options reach the encoder (equal results alone would not show it:
  # the sensor ResNet's gradients are bit-identical with either convolution
  # backward). Saved inputs enter through a conditional per convolution;
  # matmul sums add at least one product per BatchNorm (XLA merges those
  # that share the ones vector).
  assert "conditional(" not in plain_hlo and "conditional(" in ours_hlo
  num_bn = len(jax.tree.leaves(exact[0][1]["batch_stats"])) // 2
  assert ours_hlo.count(" dot(") - plain_hlo.count(" dot(") >= num_bn > 0
