"""A 1-D convolutional ResNet encoder for inertial (IMU) windows.

Residual blocks of two `kernel_size` convolutions with BatchNorm, over
windows `[B, T, C]` (e.g. HAPT: T=128 samples at 50 Hz, C=6 accelerometer
and gyroscope axes), in the spirit of the 1-D ResNet baselines for time
series (Wang et al. 2017, "Time Series Classification from Scratch with Deep
Neural Networks"). Stage `i` has `width * 2**i` channels and, for `i > 0`,
stride 2; the output is the mean over time.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from contrastive import checks
from contrastive.models import _common
from contrastive.models import batch_norm as bn_lib
from contrastive.models import conv as conv_lib

Array = jax.Array


class ResidualBlock1D(nn.Module):
  """conv-BN-ReLU-conv-BN plus a (projected) shortcut, then ReLU."""

  features: int
  kernel_size: int
  conv: Callable[..., nn.Module]
  norm: Callable[..., nn.Module]
  strides: int = 1

  @nn.compact
  def __call__(self, x: Array) -> Array:
    residual = x
    y = self.conv(self.features, (self.kernel_size,), (self.strides,))(x)
    y = nn.relu(self.norm()(y))
    y = self.norm()(self.conv(self.features, (self.kernel_size,))(y))
    if residual.shape != y.shape:
      residual = self.conv(
          self.features, (1,), (self.strides,), name="proj"
      )(residual)
      residual = self.norm(name="proj_bn")(residual)
    return nn.relu(y + residual)


class ResNet1D(nn.Module):
  """1-D ResNet over `[B, T, C]` windows, returning `[B, F]` features.

  Attributes:
    width: channels of the stem and first stage.
    depth: number of stages; `F = width * 2**(depth - 1)`.
    blocks_per_stage: residual blocks in each stage.
    kernel_size: temporal kernel of the stem and block convolutions.
    bn_momentum: decay of BatchNorm's running averages.
    bn_epsilon: BatchNorm's variance offset.
    dtype: compute dtype (float32 or bfloat16); parameters are float32.

  Inputs are float windows, expected standardised per channel (zero mean,
  unit variance over the training set).

  Example:
    >>> model = ResNet1D(width=16, depth=2)
    >>> x = jnp.zeros((2, 128, 6))
    >>> variables = model.init(jax.random.key(0), x, train=False)
    >>> model.apply(variables, x, train=False).shape
    (2, 32)
  """

  width: int = 64
  depth: int = 3
  blocks_per_stage: int = 2
  kernel_size: int = 5
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  dtype: Any = jnp.float32
  # 'auto', 'xla' or 'saved_input': see contrastive/models/conv.py.
  conv_backward: str = "auto"
  # 'auto', 'reduce' or 'matmul': see contrastive/models/batch_norm.py.
  bn_sums: str = "auto"

  def __post_init__(self) -> None:
    for name in ("width", "depth", "blocks_per_stage", "kernel_size"):
      _common.check_positive_int(name, getattr(self, name))
    _common.check_bn(self.bn_momentum, self.bn_epsilon)
    _common.check_dtype(self.dtype)
    _common.check_choice("conv_backward", self.conv_backward,
                         conv_lib.CONV_BACKWARDS)
    _common.check_choice("bn_sums", self.bn_sums, bn_lib.BN_SUMS)
    super().__post_init__()

  @property
  def num_features(self) -> int:
    return self.width * 2 ** (self.depth - 1)

  @nn.compact
  def __call__(self, windows: Array, *, train: bool) -> Array:
    """Encodes `windows [B, T, C]` into features `[B, F]`."""
    checks.check_rank("windows", windows, 3, "[batch, time, channels]")
    conv = functools.partial(
        nn.Conv,
        conv_general_dilated=conv_lib.conv_general_dilated_fn(
            self.conv_backward),
        padding="SAME",
        use_bias=False,
        dtype=self.dtype,
        param_dtype=jnp.float32,
        kernel_init=_common.conv_kernel_init,
    )
    norm = functools.partial(
        bn_lib.BatchNorm,
        sums=self.bn_sums,
        use_running_average=not train,
        momentum=self.bn_momentum,
        epsilon=self.bn_epsilon,
        dtype=self.dtype,
        param_dtype=jnp.float32,
    )
    x = _common.to_compute_dtype(windows, self.dtype)
    x = conv(self.width, (self.kernel_size,), name="stem_conv")(x)
    x = nn.relu(norm(name="stem_bn")(x))
    for i in range(self.depth):
      for j in range(self.blocks_per_stage):
        x = ResidualBlock1D(
            features=self.width * 2**i,
            kernel_size=self.kernel_size,
            conv=conv,
            norm=norm,
            strides=2 if i > 0 and j == 0 else 1,
            name=f"stage{i + 1}_block{j + 1}",
        )(x)
    return jnp.mean(x, axis=1)
