"""A small Vision Transformer encoder (Dosovitskiy et al. 2021, "An Image is
Worth 16x16 Words").

Pre-LayerNorm transformer blocks over non-overlapping patches, with learned
position embeddings and either a class token or the mean of the patch tokens
as the output. Patch size, width, depth and heads are arguments, so the same
module covers ViT-Tiny (width 192, 3 heads) and ViT-Small (384, 6 heads) with
a patch size suited to 28-32 px images.
"""
from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from contrastive import checks
from contrastive.models import _common

Array = jax.Array

POOLS = ("cls", "mean")
# ViT's initialisation of the position embeddings and class token.
_EMBED_INIT = nn.initializers.normal(stddev=0.02)


class TransformerBlock(nn.Module):
  """x + MHSA(LN(x)), then x + MLP(LN(x)) (pre-LN)."""

  num_heads: int
  mlp_dim: int
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    y = nn.LayerNorm(dtype=self.dtype)(x)
    y = nn.MultiHeadDotProductAttention(
        num_heads=self.num_heads,
        dtype=self.dtype,
        dropout_rate=self.dropout_rate,
        deterministic=not train,
    )(y, y)
    x = x + nn.Dropout(self.dropout_rate, deterministic=not train)(y)
    y = nn.LayerNorm(dtype=self.dtype)(x)
    y = nn.gelu(nn.Dense(self.mlp_dim, dtype=self.dtype)(y))
    y = nn.Dense(x.shape[-1], dtype=self.dtype)(y)
    return x + nn.Dropout(self.dropout_rate, deterministic=not train)(y)


class ViT(nn.Module):
  """Vision Transformer backbone returning `[B, width]` features.

  Attributes:
    patch_size: side of the square patches; image sides must be multiples.
    width: token dimension (the output feature size).
    depth: number of transformer blocks.
    num_heads: attention heads; must divide `width`.
    mlp_dim: hidden size of the block MLPs; None means `4 * width`.
    pool: 'cls' (a learned class token) or 'mean' (mean of patch tokens).
    dropout_rate: dropout in attention and residual branches when training
      (needs a 'dropout' rng if > 0).
    dtype: compute dtype (float32 or bfloat16); parameters are float32.

  Input `[B, H, W, C]`: uint8 in [0, 255] (divided by 255 here) or float in
  [0, 1]. The position embeddings are sized for the image size seen at `init`.

  Example:
    >>> model = vit_tiny(patch_size=4)
    >>> x = jnp.zeros((2, 32, 32, 3))
    >>> variables = model.init(jax.random.key(0), x, train=False)
    >>> model.apply(variables, x, train=False).shape
    (2, 192)
  """

  patch_size: int = 4
  width: int = 192
  depth: int = 12
  num_heads: int = 3
  mlp_dim: Optional[int] = None
  pool: str = "cls"
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32

  def __post_init__(self) -> None:
    for name in ("patch_size", "width", "depth", "num_heads"):
      _common.check_positive_int(name, getattr(self, name))
    if self.mlp_dim is not None:
      _common.check_positive_int("mlp_dim", self.mlp_dim)
    if self.width % self.num_heads:
      raise ValueError(
          f"num_heads ({self.num_heads}) must divide width ({self.width})."
      )
    _common.check_choice("pool", self.pool, POOLS)
    if not 0.0 <= float(self.dropout_rate) < 1.0:
      raise ValueError(
          f"dropout_rate must lie in [0, 1), got {self.dropout_rate!r}."
      )
    _common.check_dtype(self.dtype)
    super().__post_init__()

  @property
  def num_features(self) -> int:
    return self.width

  @nn.compact
  def __call__(self, images: Array, *, train: bool) -> Array:
    """Encodes `images [B, H, W, C]` into features `[B, width]`."""
    checks.check_rank("images", images, 4, "[batch, height, width, channels]")
    _, h, w, _ = images.shape
    if h % self.patch_size or w % self.patch_size:
      raise ValueError(
          f"image size {h}x{w} must be a multiple of patch_size"
          f" {self.patch_size}."
      )
    x = _common.to_compute_dtype(images, self.dtype)
    p = self.patch_size
    x = nn.Conv(
        self.width, (p, p), (p, p), "VALID", dtype=self.dtype,
        name="patch_embed",
    )(x)
    x = x.reshape(x.shape[0], -1, self.width)
    if self.pool == "cls":
      cls = self.param("cls_token", _EMBED_INIT, (1, 1, self.width))
      cls = jnp.broadcast_to(cls, (x.shape[0], 1, self.width))
      x = jnp.concatenate([cls.astype(self.dtype), x], axis=1)
    pos = self.param("pos_embed", _EMBED_INIT, (1,) + x.shape[1:])
    x = x + pos.astype(self.dtype)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    for i in range(self.depth):
      x = TransformerBlock(
          num_heads=self.num_heads,
          mlp_dim=self.mlp_dim or 4 * self.width,
          dropout_rate=self.dropout_rate,
          dtype=self.dtype,
          name=f"block{i + 1}",
      )(x, train=train)
    x = nn.LayerNorm(dtype=self.dtype, name="final_norm")(x)
    return x[:, 0] if self.pool == "cls" else jnp.mean(x, axis=1)


def vit_tiny(**kwargs: Any) -> ViT:
  """ViT-Tiny: width 192, depth 12, 3 heads, MLP 768 (overridable).

  Example:
    >>> model = vit_tiny(patch_size=4, depth=6)
  """
  return ViT(**{"width": 192, "depth": 12, "num_heads": 3, **kwargs})


def vit_small(**kwargs: Any) -> ViT:
  """ViT-Small: width 384, depth 12, 6 heads, MLP 1536 (overridable).

  Example:
    >>> model = vit_small(patch_size=4)
  """
  return ViT(**{"width": 384, "depth": 12, "num_heads": 6, **kwargs})
