"""config.compiler: per-backend XLA options select kernels, not results."""
from __future__ import annotations

import jax
import numpy as np
import pytest

from configs import simclr
from contrastive.train import experiment
from contrastive.train import mesh as mesh_lib
from contrastive.train.compiler import compiler_options

YNN_DOTS_ONLY = {
    "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}


def test_options_follow_the_backend():
  config = {"compiler": {"cpu": {"a": 1}, "gpu": {"b": 2}}}
  assert compiler_options(config, "cpu") == {"a": 1}
  assert compiler_options(config, "gpu") == {"b": 2}
  assert compiler_options(config, "tpu") is None
  assert compiler_options({}, "cpu") is None
  assert compiler_options({"compiler": {"cpu": {}}}, "cpu") is None


def test_options_must_be_per_backend():
  with pytest.raises(ValueError, match="backend name"):
    compiler_options({"compiler": "fast"}, "cpu")


def test_method_configs_carry_the_cpu_default():
  config = simclr.get_config("fashion_mnist,tiny")
  assert compiler_options(config, "cpu") == YNN_DOTS_ONLY


def _run(config, num_steps=2):
  """Per step: (loss, gradient norm)."""
  exp = experiment.build_experiment(config, devices=jax.devices()[:1])
  state, shardings = experiment.init_state(exp)
  step = experiment.compile_train_step(exp, shardings)
  iterator = exp.train_iterator()
  out = []
  for _ in range(num_steps):
    state, metrics = step(state, mesh_lib.global_batch(next(iterator), exp.mesh))
    out.append((float(metrics["loss"]), float(metrics["grad_norm"])))
  return np.array(out)


def test_cpu_options_keep_the_step_s_results(shared_data_dir):
  """The ResNet step (its 3x3 convolutions are what the default option moves
  off YNNPACK) gives the same losses and gradients with XLA's defaults.

  Both steps start from the same parameters, so only rounding differs: the
  losses agree to float32 rounding and the gradient norms differ by 2.4e-6
  relative (measured); rtol=1e-4 leaves room for other CPUs' kernels while
  a 0.05% change of the gradient fails
  (test_cpu_options_are_as_accurate_as_the_defaults bounds each against
  float64).
  """
  del shared_data_dir  # the config reads Fashion-MNIST from there
  with_options = simclr.get_config("fashion_mnist,tiny")
  with_options.mesh.shape = (1, 1)
  defaults = simclr.get_config("fashion_mnist,tiny")
  defaults.mesh.shape = (1, 1)
  defaults.compiler = {}
  ours, reference = _run(with_options, 1)[0], _run(defaults, 1)[0]
  np.testing.assert_allclose(ours[0], reference[0], rtol=1e-5)
  np.testing.assert_allclose(ours[1], reference[1], rtol=1e-4)


def test_cpu_options_are_as_accurate_as_the_defaults():
  """Gradients of conv-BN-ReLU-conv in float32, compiled with and without
  the options, against the same program in float64."""
  from jax import lax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel

  def conv(x, w):
    return lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))

  def loss(x, w1, w2, r):
    y = conv(x, w1)
    y = jax.nn.relu((y - y.mean((0, 1, 2))) * lax.rsqrt(y.var((0, 1, 2)) + 1e-5))
    return (jnp.tanh(conv(y, w2)) * r).sum()

  rng = np.random.default_rng(0)
  args = [rng.normal(size=(16, 14, 14, 8)), 0.1 * rng.normal(size=(3, 3, 8, 16)),
          0.1 * rng.normal(size=(3, 3, 16, 16)), rng.normal(size=(16, 14, 14, 16))]
  grad = jax.jit(jax.grad(loss, argnums=(1, 2)))
  with jax.enable_x64(True):
    exact = [np.asarray(g) for g in grad(*[jnp.asarray(a) for a in args])]
  args32 = [jnp.asarray(a, jnp.float32) for a in args]
  lowered = grad.lower(*args32)
  for options in ({}, YNN_DOTS_ONLY):
    got = lowered.compile(compiler_options=options)(*args32)
    for g, e in zip(got, exact):
      error = np.linalg.norm(np.asarray(g, np.float64) - e) / np.linalg.norm(e)
      assert error < 1e-5, (options, error)


def test_an_unknown_option_names_itself():
  config = simclr.get_config("uci_hapt,tiny")
  config.mesh.shape = (1, 1)
  config.compiler = {"cpu": {"xla_cpu_no_such_option": True}}
  with pytest.raises(Exception, match="xla_cpu_no_such_option"):
    _run(config, num_steps=1)
