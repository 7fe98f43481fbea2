"""The saved-input convolution: XLA's convolution, values and gradients
(whole encoders against float64: test_encoder_numerics.py)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from contrastive.models import build_model
from contrastive.models import conv as conv_lib

NHWC = ("NHWC", "HWIO", "NHWC")
NWC = ("NWC", "WIO", "NWC")


def _problem(x_shape, w_shape, seed=0):
  kx, kw, kr = jax.random.split(jax.random.key(seed), 3)
  return (jax.random.normal(kx, x_shape), 0.2 * jax.random.normal(kw, w_shape),
          kr)


@pytest.mark.parametrize("x_shape, w_shape, strides, padding, dn", [
    ((4, 9, 9, 3), (3, 3, 3, 5), (1, 1), ((1, 1), (1, 1)), NHWC),
    ((4, 9, 9, 3), (3, 3, 3, 5), (2, 2), ((1, 1), (1, 1)), NHWC),
    ((4, 8, 8, 3), (1, 1, 3, 5), (2, 2), "VALID", NHWC),
    ((4, 16, 6), (5, 6, 4), (1,), "SAME", NWC),
], ids=["3x3", "3x3-stride2", "1x1-stride2-valid", "1d-same"])
def test_values_and_gradients_equal_xla(x_shape, w_shape, strides, padding,
                                        dn):
  x, w, kr = _problem(x_shape, w_shape)

  def loss(conv, x, w):
    y = conv(x, w, strides, padding, dimension_numbers=dn)
    r = jax.random.normal(kr, y.shape)
    return jnp.sum(jnp.tanh(y) * r)

  ours = jax.jit(jax.value_and_grad(
      lambda x, w: loss(conv_lib.saved_input_conv, x, w), argnums=(0, 1)))
  ref = jax.jit(jax.value_and_grad(
      lambda x, w: loss(lax.conv_general_dilated, x, w), argnums=(0, 1)))
  (value, grads), (ref_value, ref_grads) = ours(x, w), ref(x, w)
  np.testing.assert_allclose(value, ref_value, rtol=1e-6)
  for g, r in zip(grads, ref_grads):
    np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6)


def test_under_vmap():
  x, w, _ = _problem((3, 2, 7, 7, 3), (3, 3, 3, 4))

  def loss(conv, x):
    return jnp.sum(conv(x, w, (1, 1), "SAME", dimension_numbers=NHWC) ** 2)

  per_example = jax.vmap(jax.grad(
      lambda x: loss(conv_lib.saved_input_conv, x)))(x)
  reference = jax.vmap(jax.grad(
      lambda x: loss(lax.conv_general_dilated, x)))(x)
  np.testing.assert_allclose(per_example, reference, rtol=1e-5, atol=1e-6)


def test_backward_hides_the_input_s_producer():
  """The kernel gradient's input comes through a conditional."""
  x, w, _ = _problem((2, 6, 6, 3), (3, 3, 3, 4))

  def loss(x, w):
    h = jax.nn.relu(x * 2.0 + 1.0)   # a producer XLA would otherwise fuse
    y = conv_lib.saved_input_conv(h, w, (1, 1), "SAME", dimension_numbers=NHWC)
    return jnp.sum(y ** 2)

  hlo = jax.jit(jax.grad(loss, argnums=1)).lower(x, w).compile().as_text()
  assert "conditional" in hlo


def test_modes():
  assert conv_lib.conv_general_dilated_fn("xla") is None
  auto = conv_lib.conv_general_dilated_fn("auto")
  if jax.default_backend() == "cpu":
    assert auto is conv_lib.saved_input_conv
  else:
    assert auto is None
  assert (conv_lib.conv_general_dilated_fn("saved_input")
          is conv_lib.saved_input_conv)
  with pytest.raises(ValueError, match="conv_backward.*'auto', 'xla'"):
    conv_lib.conv_general_dilated_fn("fast")
  with pytest.raises(ValueError, match="conv_backward"):
    build_model({"name": "resnet18", "width": 4, "conv_backward": "fast"})
