"""The encoders' convolution: XLA's, with the kernel gradient reading the
stored layer input on CPU.

On XLA:CPU the gradient of a convolution's kernel is itself a convolution
whose input is the layer's input with the batch as its minor dimension, a
transposed copy. XLA builds that copy by recomputing the input from its
producer (the previous layer's BatchNorm and ReLU) inside the transposing
loop instead of reading the activation the forward pass stored; that fused
loop reads with a stride of a whole image per element, so it runs ~4x
slower than a plain transpose (210 ms against 54 ms for [256, 28, 28, 64]
on 2 cores) and it took a large share of a ResNet-18 step. With
`conv_backward='saved_input'` the backward pass receives the stored input
through a `lax.cond`, which XLA's fusion cannot look through, so the
transpose reads it as stored: the same values, from memory rather than
recomputed (the ResNet-18 Fashion-MNIST step used 9 % less CPU time;
benchmarks/README.md).

A `lax.cond` in the backward pass would cost a device-to-host sync per
layer on GPU, so `'auto'` (the default) uses it on CPU only. The custom
VJP leaves forward-mode differentiation (`jax.jvp`) of the encoders
unsupported in that mode.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax import lax

from contrastive.models import _common

CONV_BACKWARDS = ("auto", "xla", "saved_input")


def conv_general_dilated_fn(mode: str) -> Callable[..., jax.Array] | None:
  """The `conv_general_dilated` for flax's `nn.Conv`, or None for XLA's own.

  Args:
    mode: 'xla' (JAX's convolution and its usual VJP), 'saved_input' (the
      kernel gradient reads the stored input), or 'auto' ('saved_input' on
      the CPU backend, 'xla' elsewhere).
  """
  _common.check_choice("conv_backward", mode, CONV_BACKWARDS)
  if mode == "auto":
    mode = "saved_input" if jax.default_backend() == "cpu" else "xla"
  return saved_input_conv if mode == "saved_input" else None


def _hashable(value: Any) -> Any:
  if isinstance(value, (list, tuple)):
    return tuple(_hashable(v) for v in value)
  return value


def saved_input_conv(lhs, rhs, window_strides, padding, lhs_dilation=None,
                     rhs_dilation=None, dimension_numbers=None,
                     feature_group_count=1, batch_group_count=1,
                     precision=None, preferred_element_type=None):
  """`lax.conv_general_dilated`, whose VJP reads the stored `lhs`."""
  conv = _conv_with_saved_input(
      _hashable(window_strides), _hashable(padding), _hashable(lhs_dilation),
      _hashable(rhs_dilation), dimension_numbers, feature_group_count,
      batch_group_count, precision, preferred_element_type)
  return conv(lhs, rhs)


@functools.lru_cache(maxsize=None)
def _conv_with_saved_input(*static):
  (strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
   feature_group_count, batch_group_count, precision,
   preferred_element_type) = static

  def conv(x, w):
    return lax.conv_general_dilated(
        x, w, strides, padding, lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count,
        batch_group_count=batch_group_count, precision=precision,
        preferred_element_type=preferred_element_type)

  @jax.custom_vjp
  def f(x, w):
    return conv(x, w)

  def fwd(x, w):
    return conv(x, w), (x, w)

  def bwd(residuals, dy):
    x, w = residuals
    # A predicate XLA cannot fold (it is False only for a NaN kernel entry),
    # and both branches return x: the cond only hides x's producer.
    corner = w.reshape(-1)[0]
    x = lax.cond(corner == corner, lambda v: v, jnp.copy, x)
    _, vjp = jax.vjp(conv, x, w)
    return vjp(dy)

  f.defvjp(fwd, bwd)
  return f
