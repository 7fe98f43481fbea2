"""Projection and predictor heads, and the model that joins them to a backbone.

The projection head is SimCLR's MLP (Chen et al. 2020, "A Simple Framework
for Contrastive Learning of Visual Representations"; also MoCo v2):
Linear-BN-ReLU for each hidden layer, then a Linear output, optionally
followed by BN (SimSiam, Chen & He 2021, puts BN on the projection output;
SimCLR and MoCo v2 do not). The predictor of BYOL (Grill et al. 2020) and
SimSiam is the same MLP without output BN.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from contrastive import checks
from contrastive.models import _common

Array = jax.Array
# `None` as a hidden size means "the head's input size".
Dims = Sequence[Optional[int]]


def check_head_dims(name: str, dims: Any) -> None:
  """Hidden sizes are positive ints or None; the last is a positive int."""
  if isinstance(dims, (str, bytes)) or not isinstance(dims, Sequence):
    raise ValueError(
        f"{name} must be a sequence (hidden..., out) of sizes, got {dims!r}."
    )
  if not dims:
    raise ValueError(f"{name} must name at least the output size, got ().")
  for i, d in enumerate(dims[:-1]):
    if d is not None:
      _common.check_positive_int(f"{name}[{i}]", d)
  _common.check_positive_int(f"{name}[-1] (the output size)", dims[-1])


class MLPHead(nn.Module):
  """(Linear-BN-ReLU) for each hidden size, then Linear (and BN if asked).

  Attributes:
    dims: `(hidden..., out)`; a None hidden size takes the input's size.
      `(out,)` is a single linear layer.
    output_bn: BatchNorm (with affine parameters) on the output.
    bn_momentum: decay of BatchNorm's running averages.
    bn_epsilon: BatchNorm's variance offset.
    dtype: compute dtype; parameters are float32.

  Example:
    >>> head = MLPHead(dims=(None, 128))
    >>> x = jnp.ones((4, 512))
    >>> variables = head.init(jax.random.key(0), x, train=False)
    >>> head.apply(variables, x, train=False).shape
    (4, 128)
  """

  dims: Dims
  output_bn: bool = False
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  dtype: Any = jnp.float32

  def __post_init__(self) -> None:
    check_head_dims("dims", self.dims)
    _common.check_bn(self.bn_momentum, self.bn_epsilon)
    _common.check_dtype(self.dtype)
    super().__post_init__()

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    """Maps `x [B, D]` to `[B, dims[-1]]`."""
    checks.check_rank("head input", x, 2, "[batch, features]")

    def norm(name: str) -> nn.BatchNorm:
      return nn.BatchNorm(
          use_running_average=not train,
          momentum=self.bn_momentum,
          epsilon=self.bn_epsilon,
          dtype=self.dtype,
          param_dtype=jnp.float32,
          name=name,
      )

    for i, hidden in enumerate(self.dims[:-1]):
      # No bias before BN: BN's shift makes it redundant.
      x = nn.Dense(hidden or x.shape[-1], use_bias=False, dtype=self.dtype,
                   name=f"dense{i + 1}")(x)
      x = nn.relu(norm(f"bn{i + 1}")(x))
    x = nn.Dense(self.dims[-1], use_bias=not self.output_bn, dtype=self.dtype,
                 name="out")(x)
    return norm("out_bn")(x) if self.output_bn else x


def _accepts_spec_transform(module: nn.Module) -> bool:
  params = inspect.signature(type(module).__call__).parameters
  return "spec_transform" in params


class ContrastiveModel(nn.Module):
  """Backbone + projection head (+ optional predictor head).

  Attributes:
    backbone: a Module mapping `(x, *, train)` to features `[B, F]` (any of
      this package's encoders).
    projection_dims: `(hidden..., out)` of the projection MLP; None hidden
      sizes take `F`. Default `(None, 128)` as SimCLR.
    predictor_dims: None (SimCLR, MoCo) or `(hidden..., out)` of a predictor
      on the projection (BYOL, SimSiam); None hidden sizes take `P`. Its
      output size must equal the projection's `P`, since predictions are
      compared with projections.
    projection_output_bn: BN on the projection output (SimSiam style).
    bn_momentum: decay of the heads' BatchNorm running averages.
    bn_epsilon: the heads' BatchNorm variance offset.
    dtype: compute dtype of the heads; parameters are float32.

  `__call__` returns a dict: 'features' `[B, F]` (the backbone output, used
  for evaluation), 'projection' `[B, P]` and, with a predictor,
  'prediction' `[B, P]`. `embed` computes the features only.

  Example:
    >>> from contrastive.models.resnet import resnet18
    >>> model = ContrastiveModel(backbone=resnet18(width=8),
    ...                          projection_dims=(64, 32))
    >>> x = jnp.zeros((2, 8, 8, 1))
    >>> variables = model.init(jax.random.key(0), x, train=False)
    >>> out, updates = model.apply(variables, x, train=True,
    ...                            mutable=['batch_stats'])
    >>> out['projection'].shape
    (2, 32)
    >>> feats = model.apply(variables, x, method=ContrastiveModel.embed)
  """

  backbone: nn.Module
  projection_dims: Dims = (None, 128)
  predictor_dims: Optional[Dims] = None
  projection_output_bn: bool = False
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  dtype: Any = jnp.float32

  def __post_init__(self) -> None:
    check_head_dims("projection_dims", self.projection_dims)
    if self.predictor_dims is not None:
      check_head_dims("predictor_dims", self.predictor_dims)
      if self.predictor_dims[-1] != self.projection_dims[-1]:
        raise ValueError(
            "predictor_dims[-1] must equal projection_dims[-1] (predictions"
            " are compared with projections), got"
            f" {self.predictor_dims[-1]} and {self.projection_dims[-1]}."
        )
    super().__post_init__()

  def _features(
      self, x: Array, train: bool, spec_transform: Optional[Callable]
  ) -> Array:
    if spec_transform is None:
      return self.backbone(x, train=train)
    if not _accepts_spec_transform(self.backbone):
      raise ValueError(
          "spec_transform was given but the backbone"
          f" {type(self.backbone).__name__} takes none; only audio encoders"
          " (AudioCNN) accept it."
      )
    return self.backbone(x, train=train, spec_transform=spec_transform)

  def _head(self, dims: Dims, output_bn: bool, name: str) -> MLPHead:
    return MLPHead(
        dims=tuple(dims),
        output_bn=output_bn,
        bn_momentum=self.bn_momentum,
        bn_epsilon=self.bn_epsilon,
        dtype=self.dtype,
        name=name,
    )

  @nn.compact
  def __call__(
      self,
      x: Array,
      *,
      train: bool,
      spec_transform: Optional[Callable[[Array, Array], Array]] = None,
  ) -> Mapping[str, Array]:
    """Features, projection and (if configured) prediction for a batch `x`.

    Args:
      x: the backbone's input (images `[B, H, W, C]`, waveforms `[B, T]` or
        IMU windows `[B, T, C]`).
      train: BN uses batch statistics (pass `mutable=['batch_stats']`).
      spec_transform: per-example spectrogram augmentation, forwarded to an
        audio backbone (applied only when `train=True`).

    Returns:
      `{'features': [B, F], 'projection': [B, P]}` plus
      `'prediction': [B, P]` when `predictor_dims` is set.
    """
    features = self._features(x, train, spec_transform)
    projection = self._head(
        self.projection_dims, self.projection_output_bn, "projection"
    )(features, train=train)
    out = {"features": features, "projection": projection}
    if self.predictor_dims is not None:
      out["prediction"] = self._head(
          self.predictor_dims, False, "predictor"
      )(projection, train=train)
    return out

  def embed(self, x: Array, *, train: bool = False) -> Array:
    """Backbone features `[B, F]` only (cheap evaluation; no heads run)."""
    return self.backbone(x, train=train)
