"""ResNet image encoders (He et al. 2016, "Deep Residual Learning").

The blocks follow torchvision's "v1.5" ResNet: in a bottleneck block the
stride sits on the 3x3 convolution. Three stems are offered: 'imagenet' (7x7
stride-2 convolution and 3x3 stride-2 max-pool, for 224 px images), 'cifar'
(a single 3x3 stride-1 convolution and no pooling, as in SimCLR's CIFAR-10
experiments, for 28-32 px images) and 'cifar_pool' (the 'cifar' stem then a
2x2 stride-2 max-pool: the stages run at half the resolution, a quarter of
the cost, which buys a 28 px image twice the width for the same compute).
The classification layer is left out: the encoder returns globally
average-pooled features `[B, F]`.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from contrastive import checks
from contrastive.models import _common
from contrastive.models import batch_norm as bn_lib
from contrastive.models import conv as conv_lib

Array = jax.Array

BLOCKS = ("basic", "bottleneck")
STEMS = ("cifar", "cifar_pool", "imagenet")
# Output channels of a bottleneck block relative to its inner width.
_BOTTLENECK_EXPANSION = 4


def _pad(k: int) -> tuple[tuple[int, int], tuple[int, int]]:
  """Symmetric 'same' padding for an odd kernel, also under stride 2."""
  return ((k // 2, k // 2), (k // 2, k // 2))


class BasicBlock(nn.Module):
  """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""

  features: int
  conv: Callable[..., nn.Module]
  norm: Callable[..., nn.Module]
  strides: int = 1
  zero_init_residual: bool = False

  @nn.compact
  def __call__(self, x: Array) -> Array:
    residual = x
    y = self.conv(self.features, (3, 3), (self.strides,) * 2, _pad(3))(x)
    y = nn.relu(self.norm()(y))
    y = self.conv(self.features, (3, 3), (1, 1), _pad(3))(y)
    # A zero scale on the last BN makes each block start as the identity,
    # which Goyal et al. (2017) found helps large-batch training.
    y = self.norm(
        scale_init=nn.initializers.zeros
        if self.zero_init_residual
        else nn.initializers.ones
    )(y)
    if residual.shape != y.shape:
      residual = self.conv(
          self.features, (1, 1), (self.strides,) * 2, "VALID", name="proj"
      )(residual)
      residual = self.norm(name="proj_bn")(residual)
    return nn.relu(y + residual)


class BottleneckBlock(nn.Module):
  """1x1 reduce, 3x3 (strided), 1x1 expand by 4, residual (ResNet-50+)."""

  features: int
  conv: Callable[..., nn.Module]
  norm: Callable[..., nn.Module]
  strides: int = 1
  zero_init_residual: bool = False

  @nn.compact
  def __call__(self, x: Array) -> Array:
    residual = x
    out = self.features * _BOTTLENECK_EXPANSION
    y = nn.relu(self.norm()(self.conv(self.features, (1, 1))(x)))
    y = self.conv(self.features, (3, 3), (self.strides,) * 2, _pad(3))(y)
    y = nn.relu(self.norm()(y))
    y = self.conv(out, (1, 1))(y)
    y = self.norm(
        scale_init=nn.initializers.zeros
        if self.zero_init_residual
        else nn.initializers.ones
    )(y)
    if residual.shape != y.shape:
      residual = self.conv(
          out, (1, 1), (self.strides,) * 2, "VALID", name="proj"
      )(residual)
      residual = self.norm(name="proj_bn")(residual)
    return nn.relu(y + residual)


class ResNet(nn.Module):
  """A ResNet backbone: stem, four stages of residual blocks, average pool.

  Attributes:
    stage_sizes: number of blocks in each stage; stage `i` has
      `width * 2**i` (inner) channels and, for `i > 0`, stride 2.
    block: 'basic' (ResNet-18/34) or 'bottleneck' (ResNet-50/101/152).
    width: channels of the stem and first stage (64 in the paper).
    stem: 'cifar' (3x3 stride 1, no max-pool), 'cifar_pool' (the same, then
      a 2x2 stride-2 max-pool) or 'imagenet' (7x7 stride 2 and a 3x3
      stride-2 max-pool).
    zero_init_residual: start the last BN scale of each block at zero.
    bn_momentum: decay of BatchNorm's running averages (flax convention:
      `new = momentum * old + (1 - momentum) * batch`).
    bn_epsilon: BatchNorm's variance offset.
    dtype: compute dtype (float32 or bfloat16); parameters are float32.

  Input `[B, H, W, C]` with any `C`: uint8 in [0, 255] (divided by 255 here)
  or float in [0, 1] (what the augmentations produce). Output `[B, F]` with
  `F = 8 * width` (basic) or `32 * width` (bottleneck), in `dtype`.
  BatchNorm uses batch statistics when `train=True` (pass
  `mutable=['batch_stats']` to `apply`) and running averages otherwise.
  Under `jax.jit` over a sharded global batch those batch statistics are
  global, so no `axis_name` is needed.

  Example:
    >>> model = resnet18(stem='cifar')
    >>> x = jnp.zeros((2, 32, 32, 3), jnp.uint8)
    >>> variables = model.init(jax.random.key(0), x, train=False)
    >>> model.apply(variables, x, train=False).shape
    (2, 512)
  """

  stage_sizes: Sequence[int]
  block: str = "basic"
  width: int = 64
  stem: str = "cifar"
  zero_init_residual: bool = False
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  dtype: Any = jnp.float32
  # 'auto', 'xla' or 'saved_input': see contrastive/models/conv.py.
  conv_backward: str = "auto"
  # 'auto', 'reduce' or 'matmul': see contrastive/models/batch_norm.py.
  bn_sums: str = "auto"

  def __post_init__(self) -> None:
    if not self.stage_sizes:
      raise ValueError("stage_sizes must name at least one stage, got ().")
    for i, n in enumerate(self.stage_sizes):
      _common.check_positive_int(f"stage_sizes[{i}]", n)
    _common.check_choice("block", self.block, BLOCKS)
    _common.check_choice("stem", self.stem, STEMS)
    _common.check_positive_int("width", self.width)
    _common.check_bn(self.bn_momentum, self.bn_epsilon)
    _common.check_dtype(self.dtype)
    _common.check_choice("conv_backward", self.conv_backward,
                         conv_lib.CONV_BACKWARDS)
    _common.check_choice("bn_sums", self.bn_sums, bn_lib.BN_SUMS)
    super().__post_init__()

  @property
  def num_features(self) -> int:
    """The size `F` of the output features."""
    top = self.width * 2 ** (len(self.stage_sizes) - 1)
    return top * (_BOTTLENECK_EXPANSION if self.block == "bottleneck" else 1)

  @nn.compact
  def __call__(self, images: Array, *, train: bool) -> Array:
    """Encodes `images [B, H, W, C]` into features `[B, F]`."""
    checks.check_rank("images", images, 4, "[batch, height, width, channels]")
    conv = functools.partial(
        nn.Conv,
        conv_general_dilated=conv_lib.conv_general_dilated_fn(
            self.conv_backward),
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
    x = _common.to_compute_dtype(images, self.dtype)
    if self.stem == "imagenet":
      x = conv(self.width, (7, 7), (2, 2), _pad(7), name="stem_conv")(x)
      x = nn.relu(norm(name="stem_bn")(x))
      x = nn.max_pool(x, (3, 3), (2, 2), _pad(3))
    else:
      x = conv(self.width, (3, 3), (1, 1), _pad(3), name="stem_conv")(x)
      x = nn.relu(norm(name="stem_bn")(x))
      if self.stem == "cifar_pool":
        x = nn.max_pool(x, (2, 2), (2, 2), "SAME")
    block_cls = BasicBlock if self.block == "basic" else BottleneckBlock
    for i, num_blocks in enumerate(self.stage_sizes):
      for j in range(num_blocks):
        x = block_cls(
            features=self.width * 2**i,
            conv=conv,
            norm=norm,
            strides=2 if i > 0 and j == 0 else 1,
            zero_init_residual=self.zero_init_residual,
            name=f"stage{i + 1}_block{j + 1}",
        )(x)
    return jnp.mean(x, axis=(1, 2))


def resnet10(**kwargs: Any) -> ResNet:
  """ResNet-10 (basic blocks, stages 1-1-1-1): ResNet-18 with one block per
  stage, about half its compute; kwargs as `ResNet`'s fields.

  Example:
    >>> model = resnet10(stem='cifar', width=16)
  """
  return ResNet(stage_sizes=(1, 1, 1, 1), block="basic", **kwargs)


def resnet18(**kwargs: Any) -> ResNet:
  """ResNet-18 (basic blocks, stages 2-2-2-2); kwargs as `ResNet`'s fields.

  With `stem='cifar'`, `width=64` and 3 input channels the backbone has
  11,168,832 parameters.

  Example:
    >>> model = resnet18(stem='cifar', dtype=jnp.bfloat16)
  """
  return ResNet(stage_sizes=(2, 2, 2, 2), block="basic", **kwargs)


def resnet50(**kwargs: Any) -> ResNet:
  """ResNet-50 (bottleneck blocks, stages 3-4-6-3); kwargs as `ResNet`'s.

  With `stem='imagenet'`, `width=64` and 3 input channels the backbone has
  23,508,032 parameters (torchvision's 25,557,032 less the 1000-way layer).

  Example:
    >>> model = resnet50(stem='imagenet')
  """
  return ResNet(stage_sizes=(3, 4, 6, 3), block="bottleneck", **kwargs)
