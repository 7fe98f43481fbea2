"""The encoders' BatchNorm: values and gradients against NumPy, flax's
BatchNorm and each other, under jit and vmap (whole encoders against float64:
test_encoder_numerics.py)."""
from __future__ import annotations

import math
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.models import batch_norm as bn_lib
from contrastive.models import build_model
from tests.losses.numeric import numeric_grad

EPS = 1e-3


def np_batch_norm(x, scale, bias, eps=EPS):
  """Training-mode BatchNorm over all but the last axis, by its formula."""
  x = np.asarray(x, np.float64)
  axes = tuple(range(x.ndim - 1))
  mean = x.mean(axes)
  var = ((x - mean) ** 2).mean(axes)
  return (x - mean) / np.sqrt(var + eps) * scale + bias, mean, var


def _problem(shape=(3, 4, 5, 6), seed=0, dtype=jnp.float32):
  kx, ks, kb, kr = jax.random.split(jax.random.key(seed), 4)
  c = shape[-1]
  x = 2.0 * jax.random.normal(kx, shape, dtype) + 0.5
  scale = 1.0 + 0.5 * jax.random.normal(ks, (c,), dtype)
  bias = jax.random.normal(kb, (c,), dtype)
  r = jax.random.normal(kr, shape, dtype)
  return x, scale, bias, r


def test_forward_matches_numpy_float64():
  with jax.enable_x64(True):
    x, scale, bias, _ = _problem(dtype=jnp.float64)
    y, mean, var = jax.jit(bn_lib.normalize_batch, static_argnums=3)(
        x, scale, bias, EPS)
    ref_y, ref_mean, ref_var = np_batch_norm(x, scale, bias)
    np.testing.assert_allclose(y, ref_y, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-12)
    np.testing.assert_allclose(var, ref_var, rtol=1e-10)


def test_gradients_match_finite_differences_float64():
  """The closed-form VJP, with cotangents on y and on the statistics."""
  with jax.enable_x64(True):
    x, scale, bias, r = _problem((4, 3, 2), dtype=jnp.float64)
    rm, rv = np.linspace(-1, 1, 2), np.linspace(0.5, 2, 2)

    def f(x, scale, bias):
      y, mean, var = bn_lib.normalize_batch(x, scale, bias, EPS)
      return jnp.sum(jnp.sin(y) * r) + mean @ rm + var @ rv

    def np_f(x, scale, bias):
      y, mean, var = np_batch_norm(x, scale, bias)
      return float(np.sum(np.sin(y) * np.asarray(r)) + mean @ rm + var @ rv)

    grads = jax.jit(jax.grad(f, argnums=(0, 1, 2)))(x, scale, bias)
    x, scale, bias = (np.asarray(a) for a in (x, scale, bias))
    expected = (numeric_grad(lambda v: np_f(v, scale, bias), x),
                numeric_grad(lambda v: np_f(x, v, bias), scale),
                numeric_grad(lambda v: np_f(x, scale, v), bias))
    for g, e in zip(grads, expected):
      np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("sums", ["reduce", "matmul"])
@pytest.mark.parametrize("shape", [(8, 5, 5, 6), (16, 7, 3), (32, 4)],
                         ids=["2d", "1d", "dense"])
def test_module_equals_flax_batch_norm(sums, shape):
  """Same variables, outputs, running averages and gradients as
  `flax.linen.BatchNorm`, in training and evaluation mode."""
  x, scale, bias, r = _problem(shape)
  ours = bn_lib.BatchNorm(momentum=0.8, epsilon=EPS, sums=sums)
  flax_bn = nn.BatchNorm(momentum=0.8, epsilon=EPS)
  variables = ours.init(jax.random.key(0), x, use_running_average=True)
  flax_variables = flax_bn.init(jax.random.key(0), x, use_running_average=True)
  jax.tree.map(np.testing.assert_array_equal, variables, flax_variables)
  variables = {**variables, "params": {"scale": scale, "bias": bias}}

  def loss(module, params, x):
    y, updates = module.apply({**variables, "params": params}, x,
                              use_running_average=False,
                              mutable=["batch_stats"])
    return jnp.sum(jnp.sin(y) * r), updates

  grad = jax.jit(jax.value_and_grad(loss, argnums=(1, 2), has_aux=True),
                 static_argnums=0)
  (value, updates), grads = grad(ours, variables["params"], x)
  (ref_value, ref_updates), ref_grads = grad(flax_bn, variables["params"], x)
  np.testing.assert_allclose(value, ref_value, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5,
                                                       atol=1e-6),
               (grads, updates), (ref_grads, ref_updates))

  updated = {**variables, **updates}
  evaluated = ours.apply(updated, x, use_running_average=True)
  np.testing.assert_allclose(
      evaluated, flax_bn.apply(updated, x, use_running_average=True),
      rtol=1e-6, atol=1e-6)


def test_under_vmap_each_batch_is_normalised_alone():
  x, scale, bias, r = _problem((3, 6, 4, 5))

  def loss(x):
    y, _, _ = bn_lib.normalize_batch(x, scale, bias, EPS)
    return jnp.sum(jnp.sin(y) * r[0])

  values = jax.vmap(lambda x: bn_lib.normalize_batch(x, scale, bias, EPS)[0])(
      x)
  grads = jax.vmap(jax.grad(loss))(x)
  for i in range(x.shape[0]):
    ref_y, _, _ = np_batch_norm(x[i], scale, bias)
    np.testing.assert_allclose(values[i], ref_y, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grads[i], jax.grad(loss)(x[i]), rtol=1e-5,
                               atol=1e-6)


def test_bfloat16_keeps_float32_statistics():
  x, scale, bias, _ = _problem((8, 4, 4, 3))
  module = bn_lib.BatchNorm(epsilon=EPS, dtype=jnp.bfloat16, sums="matmul")
  variables = module.init(jax.random.key(0), x, use_running_average=True)
  y, updates = module.apply(variables, x.astype(jnp.bfloat16),
                            use_running_average=False,
                            mutable=["batch_stats"])
  assert y.dtype == jnp.bfloat16
  assert updates["batch_stats"]["mean"].dtype == jnp.float32
  ref_y, _, _ = np_batch_norm(x.astype(jnp.bfloat16).astype(jnp.float32),
                              np.ones(3), np.zeros(3))
  # float32 statistics leave only the output's rounding to bfloat16, half a
  # bfloat16 step (8 significant bits); bfloat16 statistics err by ~3 steps.
  step = 2.0 ** (np.floor(np.log2(np.maximum(np.abs(ref_y), 1e-3))) - 7)
  assert np.all(np.abs(np.asarray(y, np.float64) - ref_y) <= step)


def test_sums_are_matrix_vector_products():
  """'matmul' computes its four sums as dots; what XLA still reduces is
  only the 64 partial sums per channel, never the activations."""
  x, scale, bias, r = _problem((16, 8, 8, 4))

  def loss(x, scale, bias):
    return jnp.sum(jnp.sin(bn_lib.normalize_batch(x, scale, bias, EPS)[0])
                   * r)

  hlo = jax.jit(jax.grad(loss, argnums=(0, 1, 2))).lower(
      x, scale, bias).compile().as_text()
  assert hlo.count(" dot(") + hlo.count("ynn_fusion(") >= 4
  for window in re.findall(r"reduce-window\(.*window=\{size=([0-9x]+)", hlo):
    assert math.prod(int(n) for n in window.split("x")) <= 64, window


def test_modes():
  expected = "matmul" if jax.default_backend() == "cpu" else "reduce"
  assert bn_lib.resolve_sums("auto") == expected
  assert bn_lib.resolve_sums("reduce") == "reduce"
  with pytest.raises(ValueError, match="bn_sums.*'auto', 'reduce', 'matmul'"):
    bn_lib.resolve_sums("fast")
  with pytest.raises(ValueError, match="bn_sums"):
    build_model({"name": "resnet18", "width": 4, "bn_sums": "fast"})


def test_sums_round_like_reductions():
  """Gradients in float32 against float64, for an input whose mean is large
  against its spread: the grouped matrix-vector sums stay within a few
  times the error of XLA's reductions (one ungrouped sum: ~10x)."""
  rs = np.random.RandomState(0)
  x = (rs.randn(4, 16, 16, 8) + 3.0).astype(np.float32)
  scale = (rs.rand(8) + 0.5).astype(np.float32)
  bias = rs.randn(8).astype(np.float32)
  r = rs.randn(*x.shape).astype(np.float32)

  def loss(x, scale, bias):
    return jnp.sum(jnp.sin(bn_lib.normalize_batch(x, scale, bias, EPS)[0])
                   * r)

  with jax.enable_x64(True):
    exact = jax.grad(loss, argnums=(0, 1, 2))(
        *(jnp.asarray(a, jnp.float64) for a in (x, scale, bias)))
  grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(x, scale, bias)
  for g, e in zip(grads, exact):
    e = np.asarray(e)
    assert np.max(np.abs(np.asarray(g, np.float64) - e)) < 5e-6 * np.max(
        np.abs(e))
