"""Shared pieces of the encoders: hyperparameter checks, dtypes and
initialisers.

Private to `contrastive.models`; the array checks every package shares
(`check_rank`, ...) are in `contrastive.checks`.
"""
from __future__ import annotations

from typing import Any, Iterable

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

# Names accepted for the compute dtype; parameters always stay float32.
# float64 serves numerical checks (a float32 run against an exact one) and
# needs 64-bit mode.
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16,
          "float64": jnp.float64}

# He-normal over the output fan (He et al. 2015), as torchvision's ResNets:
# keeps activation variance roughly constant through ReLU layers.
conv_kernel_init = jax.nn.initializers.variance_scaling(
    2.0, "fan_out", "normal"
)


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> None:
  allowed = tuple(allowed)
  if value not in allowed:
    raise ValueError(
        f"Unknown {name} {value!r}; valid values are: "
        f"{', '.join(repr(a) for a in allowed)}."
    )


def check_positive_int(name: str, value: Any) -> None:
  if (
      isinstance(value, bool)
      or not isinstance(value, (int, np.integer))
      or value <= 0
  ):
    raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def check_dtype(dtype: Any) -> None:
  """The compute dtype must be one of DTYPES (as a dtype, not a name), and
  float64 only in 64-bit mode, where it is not silently float32."""
  allowed = tuple(DTYPES.values())
  if not any(jnp.dtype(dtype) == jnp.dtype(a) for a in allowed):
    raise ValueError(
        f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}."
    )
  if (jnp.dtype(dtype) == jnp.float64
      and jax.dtypes.canonicalize_dtype(jnp.float64) != jnp.float64):
    raise ValueError(
        "dtype float64 needs 64-bit mode: run under"
        " `with jax.enable_x64(True):` or set"
        " jax.config.update('jax_enable_x64', True) first; otherwise JAX"
        " computes in float32."
    )


def check_bn(momentum: Any, epsilon: Any) -> None:
  """BatchNorm's running-average decay lies in [0, 1); epsilon is > 0."""
  if not 0.0 <= float(momentum) < 1.0:
    raise ValueError(f"bn_momentum must lie in [0, 1), got {momentum!r}.")
  if not float(epsilon) > 0.0:
    raise ValueError(f"bn_epsilon must be > 0, got {epsilon!r}.")


def to_compute_dtype(images: Array, dtype: Any) -> Array:
  """uint8 images are scaled to [0, 1]; float inputs are only cast.

  Args:
    images: any-rank array, uint8 in [0, 255] or float (already in [0, 1]
      after augmentation, by the project's convention).
    dtype: the compute dtype.

  Returns:
    `images` in `dtype`, uint8 divided by 255.
  """
  images = jnp.asarray(images)
  if images.dtype == jnp.uint8:
    return images.astype(jnp.float32).astype(dtype) / jnp.asarray(255, dtype)
  if not jnp.issubdtype(images.dtype, jnp.floating):
    raise ValueError(
        "inputs must be uint8 (scaled to [0, 1] here) or floating point, got"
        f" dtype {images.dtype}."
    )
  return images.astype(dtype)
