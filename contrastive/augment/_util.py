"""Shared pieces of the augmentations: input checks and random application.

Every augmentation is a per-example function `fn(rng, x, *, params) -> x`.
Its hyperparameters are Python values fixed when the function is traced, so
they are validated here, eagerly, with a ValueError that says what is allowed.
Private to `contrastive.augment`; the array checks every package shares are
in `contrastive.checks`.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from contrastive import checks

Array = jax.Array

_OPEN_MINUS_ONE = float(np.nextafter(np.float32(-1.0), np.float32(0.0)))


def check_example_rank(name: str, x: Any, rank: int, what: str) -> None:
  """`checks.check_rank` for one example, saying how to pass a batch.

  Raises ValueError unless `x` has `rank` dimensions (`what` names them);
  the message tells a caller who passed a whole batch to vmap instead.
  """
  checks.check_rank(
      name, x, rank, what,
      hint="this augmentation takes one example: vmap it over the batch"
      " (see contrastive.augment.make_views)")


def check_prob(name: str, prob: float) -> None:
  if not 0.0 <= float(prob) <= 1.0:
    raise ValueError(f"{name} must be a probability in [0, 1], got {prob}.")


def check_non_negative(name: str, value: float) -> None:
  if not float(value) >= 0.0:
    raise ValueError(f"{name} must be >= 0, got {value}.")


def check_range(
    name: str,
    value: Sequence[float],
    low: float | None = None,
    high: float | None = None,
) -> tuple[float, float]:
  """Checks a `(min, max)` pair with `low <= min <= max <= high`."""
  try:
    lo, hi = (float(v) for v in value)
  except (TypeError, ValueError):
    raise ValueError(
        f"{name} must be a (min, max) pair of numbers, got {value!r}."
    ) from None
  if not lo <= hi:
    raise ValueError(f"{name} must satisfy min <= max, got {value!r}.")
  if (low is not None and lo < low) or (high is not None and hi > high):
    raise ValueError(
        f"{name} must lie within [{low}, {high}], got {value!r}."
    )
  return lo, hi


def check_int(
    name: str, value: Any, low: int, high: int | None = None
) -> int:
  """Checks a Python int with `low <= value <= high` and returns it."""
  if isinstance(value, bool) or not isinstance(value, int):
    raise ValueError(f"{name} must be a Python int, got {value!r}.")
  if value < low or (high is not None and value > high):
    bound = f"[{low}, {high}]" if high is not None else f">= {low}"
    raise ValueError(f"{name} must be {bound}, got {value}.")
  return value


def uniforms(rng: Array, num: int) -> Array:
  """`[num]` float32 ~ U[0, 1): all the scalar randomness of one op.

  Each op makes ONE draw and slices it, rather than splitting keys per
  quantity: every PRNG call is a threefry hash that XLA compiles separately,
  and under `vmap` a dozen of them dominate the compile time of a pipeline.
  The draw is rounded up to a multiple of 32 values: XLA:CPU compiles small
  odd-sized threefry draws markedly slower (measured: a SimCLR pipeline
  compiles ~25% faster), and 31 spare uniforms per op cost nothing.
  """
  padded = -(-num // 32) * 32
  return jax.random.uniform(rng, (padded,), jnp.float32)[:num]


def to_normal(u: Array) -> Array:
  """Maps U[0, 1) to N(0, 1) by the inverse CDF (as `jax.random.normal`)."""
  # Clipped to the open interval (-1, 1), where erf_inv is finite.
  return jnp.sqrt(2.0) * jax.lax.erf_inv(
      jnp.clip(2.0 * u - 1.0, _OPEN_MINUS_ONE, -_OPEN_MINUS_ONE))


def to_int(u: Array, low: Any, high: Any) -> Array:
  """Maps U[0, 1) to a uniform int32 in `[low, high)`; bounds may be traced."""
  span = high - low
  return (low + jnp.minimum(jnp.floor(u * span), span - 1)).astype(jnp.int32)


def random_apply(
    u: Array, fn: Callable[[Array], Array], x: Array, prob: float
) -> Array:
  """Returns `fn(x)` if `u < prob` (u ~ U[0, 1)), else `x`.

  `prob` is a static Python float: 0 and 1 skip the test (and, for 0, the
  work). Otherwise both branches are computed and selected, which is what
  `lax.cond` becomes under `vmap` anyway.

  Example:
    >>> u = uniforms(rng, 1)[0]
    >>> y = random_apply(u, lambda v: 1.0 - v, x, prob=0.2)
  """
  check_prob("prob", prob)
  if prob == 0.0:
    return x
  if prob == 1.0:
    return fn(x)
  return jnp.where(u < prob, fn(x), x)
