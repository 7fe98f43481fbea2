"""Builds a `ContrastiveModel` from a config, and counts parameters."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, NamedTuple

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from contrastive import config_sections
from contrastive.models import _common
from contrastive.models import audio_cnn
from contrastive.models import heads
from contrastive.models import resnet
from contrastive.models import sensor
from contrastive.models import vit


# Fields of the backbones that a config does not set: the ones `build_model`
# passes itself (dtype, BatchNorm's), the blocks a factory fixes
# (ResNet-18's stage sizes), and Flax's own.
_NOT_CONFIG = frozenset({"parent", "name", "dtype", "bn_momentum",
                         "bn_epsilon", "stage_sizes", "block",
                         "rng_collection"})


def _module_defaults(module: type[nn.Module],
                     exclude: frozenset[str] = _NOT_CONFIG
                     ) -> dict[str, Any]:
  """The fields of Linen `module` (a dataclass) and their defaults."""
  return {f.name: f.default for f in dataclasses.fields(module)
          if f.name not in exclude and f.default is not dataclasses.MISSING}


class _Spec(NamedTuple):
  """A model name: the Module whose fields are its config fields, the
  factory that builds it, and the defaults that differ from the Module's."""

  module: type[nn.Module]
  factory: Callable[..., Any]
  preset: Mapping[str, Any] = {}

  @property
  def defaults(self) -> dict[str, Any]:
    """Every backbone field of the config, at its default."""
    return {**_module_defaults(self.module), **self.preset}

  @property
  def has_batchnorm(self) -> bool:
    return "bn_momentum" in {f.name for f in dataclasses.fields(self.module)}


# Fields every model takes (heads, BN and dtype), with their defaults: the
# head's (`ContrastiveModel`), dtype by name.
COMMON_DEFAULTS: Mapping[str, Any] = {
    "dtype": "float32",
    **_module_defaults(heads.ContrastiveModel,
                       frozenset({"parent", "name", "dtype", "backbone"})),
}
MODELS: Mapping[str, _Spec] = {
    "resnet10": _Spec(resnet.ResNet, resnet.resnet10),
    "resnet18": _Spec(resnet.ResNet, resnet.resnet18),
    "resnet50": _Spec(resnet.ResNet, resnet.resnet50),
    # ViT's defaults are ViT-Tiny's (width 192, depth 12, 3 heads).
    "vit_tiny": _Spec(vit.ViT, vit.ViT),
    "vit_small": _Spec(vit.ViT, vit.ViT,
                       {"width": 384, "depth": 12, "num_heads": 6}),
    "audio_cnn": _Spec(audio_cnn.AudioCNN, audio_cnn.AudioCNN),
    "sensor_resnet1d": _Spec(sensor.ResNet1D, sensor.ResNet1D),
}


def _freeze(value: Any) -> Any:
  """Lists (from YAML/JSON or ConfigDict) become tuples: Modules hash them."""
  return tuple(value) if isinstance(value, list) else value


def default_config(name: str) -> ml_collections.ConfigDict:
  """Every field `build_model` accepts for `name`, at its default.

  Example:
    >>> config = default_config('resnet18')
    >>> config.width = 32
    >>> model = build_model(config)
  """
  _common.check_choice("model name", name, MODELS)
  return ml_collections.ConfigDict(
      {"name": name, **COMMON_DEFAULTS, **MODELS[name].defaults}
  )


def build_model(config: Any) -> heads.ContrastiveModel:
  """A `ContrastiveModel` (backbone + heads) from `config`.

  Fields, by model (every field is optional except `name`)::

    All models:
      name: one of 'resnet10', 'resnet18', 'resnet50', 'vit_tiny',
        'vit_small', 'audio_cnn', 'sensor_resnet1d'.
      dtype: compute dtype, 'float32' (default), 'bfloat16', or 'float64'
        (numerical checks; needs 64-bit mode); parameters are float32.
      projection_dims: `(hidden..., out)` of the projection MLP; None hidden
        sizes take the feature size. Default `(None, 128)`.
      predictor_dims: None (default) or `(hidden..., out)` of a BYOL/SimSiam
        predictor; `out` must equal `projection_dims[-1]`.
      projection_output_bn: BN on the projection output. Default False.
      bn_momentum: BatchNorm running-average decay, 0.9 (flax convention).
      bn_epsilon: BatchNorm variance offset, 1e-5.
    Convolutional encoders (all but the ViTs):
      conv_backward: 'auto' (default), 'xla' or 'saved_input': how the kernel
        gradients read the layer inputs (contrastive/models/conv.py; the same
        values, a CPU speed-up).
      bn_sums: 'auto' (default), 'reduce' or 'matmul': how BatchNorm sums its
        statistics and gradients (contrastive/models/batch_norm.py; the same
        values to float32 rounding, a CPU speed-up).

    'resnet10', 'resnet18', 'resnet50' (features `8 * width`, `8 * width`,
    `32 * width`):
      width: base channels, 64. stem: 'cifar' (default; 3x3 stride 1, no
      pool, for 28-32 px), 'cifar_pool' (the same + a 2x2 max-pool) or
      'imagenet' (7x7 stride 2 + max-pool).
      zero_init_residual: zero the last BN scale of each block, False.

    'vit_tiny' (width 192, depth 12, num_heads 3), 'vit_small' (384, 12, 6):
      patch_size: 4. width, depth, num_heads: as named. mlp_dim: None
      (`4 * width`). pool: 'cls' (default) or 'mean'. dropout_rate: 0.0.
      (The BN fields apply to the heads only.)

    'audio_cnn' (input waveforms `[B, T]`; features `width * 2**(depth-1)`):
      width: 32. depth: 4 conv blocks. sample_rate: 8000 Hz.
      frame_length: 200 samples. frame_step: 80 samples (25 ms / 10 ms at
      8 kHz). fft_length: 512 (None: next power of two). num_mel_bins: 64.
      lower_edge_hertz: 20.0. upper_edge_hertz: None (`sample_rate / 2`).
      log_offset: 1e-6.

    'sensor_resnet1d' (input `[B, T, C]`; features `width * 2**(depth-1)`):
      width: 64. depth: 3 stages. blocks_per_stage: 2. kernel_size: 5.

  Args:
    config: an `ml_collections.ConfigDict` or a Mapping with the fields above.

  Returns:
    An unbound `ContrastiveModel`; `init` it with a batch of inputs.

  Raises:
    ValueError: no or unknown `name` (listing valid names), a field the model
      does not take (listing those it takes), or an invalid value.

  Example:
    >>> model = build_model({'name': 'resnet18', 'width': 16,
    ...                      'projection_dims': (256, 64)})
    >>> x = jnp.zeros((2, 28, 28, 1), jnp.uint8)
    >>> variables = model.init(jax.random.key(0), x, train=False)
  """
  fields = {k: _freeze(v)
            for k, v in config_sections.as_dict(config, "config").items()}
  if "name" not in fields:
    raise ValueError(
        f"config needs a 'name'; valid names are: {', '.join(MODELS)}."
    )
  name = fields.pop("name")
  _common.check_choice("model name", name, MODELS)
  spec = MODELS[name]
  allowed = {**COMMON_DEFAULTS, **spec.defaults}
  config_sections.check_fields(fields, ["name", *sorted(allowed)],
                               f"model {name!r}",
                               phrase="unknown config fields")
  values = {**allowed, **fields}
  for flag in ("projection_output_bn", "zero_init_residual"):
    if flag in values and not isinstance(values[flag], bool):
      raise ValueError(f"{flag} must be True or False, got {values[flag]!r}.")
  _common.check_choice("dtype", values["dtype"], _common.DTYPES)
  dtype = _common.DTYPES[values["dtype"]]
  bn = {"bn_momentum": values["bn_momentum"],
        "bn_epsilon": values["bn_epsilon"]}
  backbone_kwargs = {k: values[k] for k in spec.defaults}
  if spec.has_batchnorm:
    backbone_kwargs.update(bn)
  backbone = spec.factory(dtype=dtype, **backbone_kwargs)
  return heads.ContrastiveModel(
      backbone=backbone,
      projection_dims=values["projection_dims"],
      predictor_dims=values["predictor_dims"],
      projection_output_bn=values["projection_output_bn"],
      dtype=dtype,
      **bn,
  )


def param_count(params: Any) -> int:
  """Number of scalars in a pytree of arrays (or of `jax.ShapeDtypeStruct`).

  Pass `variables['params']` to leave BatchNorm statistics out.

  Example:
    >>> model = build_model({'name': 'resnet18'})
    >>> x = jnp.zeros((1, 32, 32, 3))
    >>> shapes = jax.eval_shape(
    ...     lambda x: model.init(jax.random.key(0), x, train=False), x)
    >>> param_count(shapes['params']['backbone'])
    11168832
  """
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(params))
