"""Input checks shared by the evaluation functions.

Private to `contrastive.evaluate`; the array checks every package shares
(rank, feature dimension, finiteness) and `l2_normalize` are in
`contrastive.checks`, and the checks here are built on them. Every check
works on shapes, so it also runs on traced arrays inside `jax.jit`; checks
that need values (label ranges, finiteness) run only on concrete arrays and
are skipped for tracers.
"""
from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from contrastive import checks


def check_features(name: str, x: Any) -> None:
  """`x` must be a non-empty `[N, F]` array of finite numbers."""
  checks.check_rank(name, x, 2, "[num_examples, num_features]")
  shape = jnp.shape(x)
  if shape[0] == 0 or shape[1] == 0:
    raise ValueError(f"{name} must not be empty, got shape {shape}.")
  checks.check_finite(name, x)


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
  if num_classes is not None and checks.is_concrete(labels) and shape[0] > 0:
    values = np.asarray(labels)
    low, high = int(values.min()), int(values.max())
    if low < 0 or high >= num_classes:
      raise ValueError(
          f"{name} must lie in [0, num_classes) = [0, {num_classes}), got"
          f" values in [{low}, {high}]."
      )


def check_int_at_least(name: str, value: Any, minimum: int) -> None:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise ValueError(f"{name} must be an integer, got {value!r}.")
  if value < minimum:
    raise ValueError(f"{name} must be >= {minimum}, got {value}.")


def check_positive(name: str, value: Any) -> None:
  """A concrete `value` must be a finite number > 0 (traced values pass)."""
  if checks.is_concrete(value) and not 0.0 < float(value) < float("inf"):
    raise ValueError(f"{name} must be a finite number > 0, got {value}.")


def check_non_negative(name: str, value: Any) -> None:
  if checks.is_concrete(value) and not 0.0 <= float(value) < float("inf"):
    raise ValueError(f"{name} must be a finite number >= 0, got {value}.")

