"""The encoders' BatchNorm: flax's, with its per-channel sums as matrix-vector
products on CPU.

Training-mode BatchNorm sums over every position of each channel: the mean
and mean square going forward, the sums of the output gradient and of the
gradient times the centred input going back. In channels-last layout that
is a reduction over the major dimensions of `[N*H*W, C]`. XLA:CPU splits such a
reduction into `reduce-window` ops whose loops read one channel at a time,
with a stride of a whole row, so the sums of a ResNet-18 step took about a
sixth of its time (benchmarks/README.md). The same sums written as
`ones[N*H*W] @ x[N*H*W, C]` run as matrix-vector products that read `x`
once, in order. With `sums='matmul'` the layer computes its statistics
that way and differentiates itself with the closed-form BatchNorm gradient
(a custom VJP), so the backward sums are products too.

The variables are flax's (`params`: scale, bias; `batch_stats`: mean, var,
float32) under the same automatic names, so parameters and checkpoints are
interchangeable between the modes and with `flax.linen.BatchNorm`; the values
agree to float32 rounding (tests/models/test_batch_norm.py). `'auto'` (the
default) uses the products on the CPU backend only: GPU and TPU compilers
fuse reductions into their producers, which a product would prevent.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from contrastive.models import _common

Array = jax.Array

BN_SUMS = ("auto", "reduce", "matmul")


def resolve_sums(mode: str) -> str:
  """'reduce' or 'matmul' for `mode` ('auto': matmul on CPU only)."""
  _common.check_choice("bn_sums", mode, BN_SUMS)
  if mode == "auto":
    return "matmul" if jax.default_backend() == "cpu" else "reduce"
  return mode


def _stats_dtype(x: Array) -> Any:
  """Statistics in at least float32 (float64 inputs stay float64)."""
  return jnp.promote_types(x.dtype, jnp.float32)


# Rows are summed in this many interleaved groups whose totals are then
# added: a matrix-vector product accumulates each output sequentially, and
# one sum over all M rows rounds ~10x more than XLA's tree reductions
# (tests/models/test_batch_norm.py).
_SUM_GROUPS = 64


def _channel_sums(x2: Array) -> Array:
  """`x2 [M, C]` summed over M: `ones[M / G] @ x2.reshape(M / G, G * C)`,
  then the G partial sums of each channel added."""
  m, c = x2.shape
  groups = math.gcd(m, _SUM_GROUPS)
  ones = jnp.ones((m // groups,), x2.dtype)
  partial = jnp.dot(ones, x2.reshape(m // groups, groups * c),
                    preferred_element_type=_stats_dtype(x2))
  return partial.reshape(groups, c).sum(0)


def _stats(x: Array) -> tuple[Array, Array]:
  """Per-channel mean and (biased, fast) variance of `x [..., C]`."""
  x2 = x.reshape(-1, x.shape[-1]).astype(_stats_dtype(x))
  n = x2.shape[0]
  mean = _channel_sums(x2) / n
  mean_sq = _channel_sums(x2 * x2) / n
  # E[x^2] - E[x]^2 as flax's default (`use_fast_variance`), clipped at 0
  # against round-off.
  return mean, jnp.maximum(mean_sq - mean * mean, 0.0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def normalize_batch(x: Array, scale: Array, bias: Array, epsilon: float
                    ) -> tuple[Array, Array, Array]:
  """Training-mode BatchNorm of `x [..., C]` over all but its last axis.

  Args:
    x: activations, float32 or bfloat16.
    scale, bias: `[C]` float32 affine parameters.
    epsilon: variance offset.

  Returns:
    `(y, mean, var)`: `y = (x - mean) / sqrt(var + epsilon) * scale + bias`
    in `x`'s dtype, and the batch's per-channel mean and biased variance
    (for the running averages) in at least float32.
  """
  return _normalize_fwd(x, scale, bias, epsilon)[0]


def _normalize_fwd(x, scale, bias, epsilon):
  mean, var = _stats(x)
  inv = lax.rsqrt(var + epsilon)
  y = ((x - mean) * (inv * scale) + bias).astype(x.dtype)
  return (y, mean, var), (x, mean, inv, scale)


def _normalize_bwd(epsilon, residuals, cotangents):
  del epsilon  # enters through the stored `inv`
  x, mean, inv, scale = residuals
  dy, dmean, dvar = cotangents
  channels = x.shape[-1]
  dy2 = dy.reshape(-1, channels)
  n = dy2.shape[0]
  sum_dy = _channel_sums(dy2)
  # Centred before the product: sum(dy * x) - mean * sum(dy) would cancel
  # where the mean is large against the spread.
  xc = x.astype(mean.dtype) - mean
  sum_dy_xc = _channel_sums(dy2 * xc.reshape(-1, channels))
  dbias = sum_dy
  dscale = inv * sum_dy_xc
  # d/dx of y through the batch statistics (the closed form of Ioffe &
  # Szegedy 2015), plus the statistics' own cotangents (zero in training,
  # where they only feed the running averages).
  dx = (scale * inv) * (dy - sum_dy / n - xc * (inv * inv * sum_dy_xc / n))
  dx = dx + dmean / n + xc * (2.0 * dvar / n)
  return dx.astype(x.dtype), dscale, dbias


normalize_batch.defvjp(_normalize_fwd, _normalize_bwd)


class BatchNorm(nn.Module):
  """`flax.linen.BatchNorm` over the last axis, with a choice of sums.

  Attributes:
    use_running_average: normalise with the running averages (evaluation)
      instead of the batch statistics (training, which updates them; pass
      `mutable=['batch_stats']`).
    momentum: running-average decay (`new = momentum * old + (1 - momentum)
      * batch`).
    epsilon: variance offset.
    dtype: output dtype (statistics are float32).
    param_dtype: dtype of scale and bias.
    scale_init, bias_init: initialisers of the affine parameters.
    sums: 'auto' (default), 'reduce' (flax's reductions, autodiff) or
      'matmul' (matrix-vector sums and the closed-form gradient).
  """

  use_running_average: bool | None = None
  momentum: float = 0.99
  epsilon: float = 1e-5
  dtype: Any = None
  param_dtype: Any = jnp.float32
  scale_init: Any = nn.initializers.ones
  bias_init: Any = nn.initializers.zeros
  sums: str = "auto"

  @nn.compact
  def __call__(self, x: Array, use_running_average: bool | None = None
               ) -> Array:
    use_running_average = nn.merge_param(
        "use_running_average", self.use_running_average, use_running_average)
    mode = resolve_sums(self.sums)
    features = (x.shape[-1],)
    ra_mean = self.variable("batch_stats", "mean",
                            lambda s: jnp.zeros(s, jnp.float32), features)
    ra_var = self.variable("batch_stats", "var",
                           lambda s: jnp.ones(s, jnp.float32), features)
    scale = self.param("scale", self.scale_init, features, self.param_dtype)
    bias = self.param("bias", self.bias_init, features, self.param_dtype)
    dtype = self.dtype or x.dtype

    if use_running_average:
      mean, var = ra_mean.value, ra_var.value
    elif mode == "matmul":
      stats_dtype = _stats_dtype(x)
      y, mean, var = normalize_batch(x, scale.astype(stats_dtype),
                                     bias.astype(stats_dtype), self.epsilon)
      self._update_averages(ra_mean, ra_var, mean, var)
      return y.astype(dtype)
    else:
      axes = tuple(range(x.ndim - 1))
      xs = x.astype(_stats_dtype(x))
      mean = xs.mean(axes)
      var = jnp.maximum((xs * xs).mean(axes) - mean * mean, 0.0)
      self._update_averages(ra_mean, ra_var, mean, var)
    inv = lax.rsqrt(var + self.epsilon) * scale
    return ((x - mean) * inv + bias).astype(dtype)

  def _update_averages(self, ra_mean, ra_var, mean, var) -> None:
    if not self.is_initializing():
      ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
      ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
