"""Input checks shared by the evaluation functions.

Every check works on shapes, so it also runs on traced arrays inside
`jax.jit`; checks that need values (label ranges, finiteness) run only on
concrete arrays and are skipped for tracers.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x: Any) -> bool:
  """True unless `x` is a tracer (inside `jax.jit`, `jax.vmap`, ...)."""
  return not isinstance(x, jax.core.Tracer)


def check_features(name: str, x: Any) -> None:
  """`x` must be a non-empty `[N, F]` array of finite numbers."""
  shape = jnp.shape(x)
  if len(shape) != 2:
    raise ValueError(
        f"{name} must have rank 2 ([num_examples, num_features]), got shape"
        f" {shape}."
    )
  if shape[0] == 0 or shape[1] == 0:
    raise ValueError(f"{name} must not be empty, got shape {shape}.")
  if is_concrete(x) and not np.all(np.isfinite(np.asarray(x))):
    raise ValueError(f"{name} contains NaN or infinite values.")


def check_labels(
    name: str, labels: Any, num_examples: int, num_classes: int | None
) -> None:
  """`labels` must be `[num_examples]` integers in `[0, num_classes)`."""
  shape = jnp.shape(labels)
  if len(shape) != 1:
    raise ValueError(
        f"{name} must have rank 1 ([num_examples]), got shape {shape}."
    )
  if shape[0] != num_examples:
    raise ValueError(
        f"{name} has {shape[0]} entries but the features have {num_examples}"
        " rows; they must match."
    )
  if not jnp.issubdtype(jnp.result_type(labels), jnp.integer):
    raise ValueError(
        f"{name} must be integers, got dtype {jnp.result_type(labels)}."
    )
  if num_classes is not None and is_concrete(labels) and shape[0] > 0:
    values = np.asarray(labels)
    low, high = int(values.min()), int(values.max())
    if low < 0 or high >= num_classes:
      raise ValueError(
          f"{name} must lie in [0, num_classes) = [0, {num_classes}), got"
          f" values in [{low}, {high}]."
      )


def check_same_feature_dim(name_a: str, a: Any, name_b: str, b: Any) -> None:
  if jnp.shape(a)[-1] != jnp.shape(b)[-1]:
    raise ValueError(
        f"{name_a} and {name_b} must have the same number of features, got"
        f" shapes {jnp.shape(a)} and {jnp.shape(b)}."
    )


def check_int_at_least(name: str, value: Any, minimum: int) -> None:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise ValueError(f"{name} must be an integer, got {value!r}.")
  if value < minimum:
    raise ValueError(f"{name} must be >= {minimum}, got {value}.")


def check_positive(name: str, value: Any) -> None:
  """A concrete `value` must be a finite number > 0 (traced values pass)."""
  if is_concrete(value) and not 0.0 < float(value) < float("inf"):
    raise ValueError(f"{name} must be a finite number > 0, got {value}.")


def check_non_negative(name: str, value: Any) -> None:
  if is_concrete(value) and not 0.0 <= float(value) < float("inf"):
    raise ValueError(f"{name} must be a finite number >= 0, got {value}.")


def l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
  """Unit-normalises the rows of `x` in float32; zero rows stay zero."""
  x = jnp.asarray(x, jnp.float32)
  sq = jnp.sum(x * x, axis=-1, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(sq, eps * eps))
