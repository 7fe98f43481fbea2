"""Array checks and unit normalisation, shared by every package.

Why this module exists: the losses, the negative samplers, the encoders, the
augmentations, the evaluation and the ablation all check the same things
about the arrays they are given (rank, matching shapes, a shared feature
axis, finite values) and all put embeddings on the unit sphere the same way.
Each of those is defined once, here, so every package raises the same
message for the same mistake and normalises with the same float32 numerics.

Why it is shaped this way:

- public (no leading underscore), because other packages import it; a
  private `_module` is for use inside its own package only;
- a top-level module that imports only jax and numpy, so any package of
  `contrastive` can import it without forming an import cycle: it sits below
  all of them;
- about arrays only. Checks of hyperparameters (a temperature > 0, a
  probability in [0, 1], a Python int) stay in each package's private
  helpers (`losses/_common.py`, `models/_common.py`, `augment/_util.py`,
  `evaluate/_checks.py`), because the packages accept different kinds of
  values there: the losses take traced values and skip them, the
  augmentations demand Python numbers fixed at trace time, the evaluation
  demands finite numbers.

Every shape check reads only shapes, so it also runs on traced arrays inside
`jax.jit`; `check_finite` needs values, so it checks concrete arrays and
lets tracers pass. Every error is a ValueError naming the argument, what was
expected and the shape that came.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def is_concrete(x: Any) -> bool:
  """True unless `x` is a tracer (inside `jax.jit`, `jax.vmap`, `grad`...).

  Checks of values (not shapes) can run only on concrete inputs.
  """
  return not isinstance(x, jax.core.Tracer)


def l2_normalize(x: Any, axis: int = -1, eps: float = 1e-12) -> Array:
  """Unit-normalises `x` along `axis`, in float32; zero rows stay zero.

  `x * rsqrt(max(|x|^2, eps^2))`: the same as `x / max(|x|, eps)`, without
  a division, and finite with a finite gradient at a zero row.

  Args:
    x: any-rank array (cast to float32, so bfloat16 embeddings are upcast).
    axis: the axis that is normalised (the features, last by default).
    eps: the smallest norm divided by.

  Example:
    >>> u = l2_normalize(jnp.array([[3.0, 4.0], [0.0, 0.0]]))
    >>> # [[0.6, 0.8], [0.0, 0.0]]
  """
  x = jnp.asarray(x, jnp.float32)
  sq = jnp.sum(x * x, axis=axis, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(sq, eps * eps))


def check_rank(
    name: str, x: Any, rank: int, what: str, *, hint: str | None = None
) -> None:
  """Raises ValueError unless `x` has exactly `rank` dimensions.

  Args:
    name: the argument's name, as the caller's signature spells it.
    x: the array (or anything `jnp.ndim` accepts).
    rank: the number of dimensions required.
    what: the layout expected, e.g. `'[n, d] projections of view 1'`.
    hint: what to do about it, when that is not obvious (appended).

  Example:
    >>> check_rank("z1", jnp.zeros(8), 2, "[n, d] projections")
    Traceback (most recent call last):
    ValueError: z1 must have rank 2 ([n, d] projections), got shape (8,).
  """
  if jnp.ndim(x) != rank:
    raise ValueError(
        f"{name} must have rank {rank} ({what}), got shape {jnp.shape(x)}"
        + (f"; {hint}" if hint else "") + "."
    )


def check_same_shape(name_a: str, a: Any, name_b: str, b: Any) -> None:
  """Raises ValueError unless `a` and `b` have the same shape.

  Example:
    >>> check_same_shape("z1", z1, "z2", z2)   # two views of one batch
  """
  if jnp.shape(a) != jnp.shape(b):
    raise ValueError(
        f"{name_a} and {name_b} must have the same shape, got"
        f" {jnp.shape(a)} and {jnp.shape(b)}."
    )


def check_same_feature_dim(name_a: str, a: Any, name_b: str, b: Any) -> None:
  """Raises ValueError unless `a` and `b` share their last (feature) axis.

  Example:
    >>> check_same_feature_dim("z1", z1, "negatives", queue)  # [n, d], [k, d]
  """
  if jnp.shape(a)[-1:] != jnp.shape(b)[-1:]:
    raise ValueError(
        f"{name_a} and {name_b} must have the same number of features (the"
        f" feature dimension, their last axis), got shapes {jnp.shape(a)} and"
        f" {jnp.shape(b)}."
    )


def check_finite(name: str, x: Any) -> None:
  """Raises ValueError if a concrete `x` holds NaN or infinite values.

  Traced arrays pass (their values are unknown until run).

  Example:
    >>> check_finite("train_features", features)
  """
  if not is_concrete(x):
    return
  values = np.asarray(x)
  if not np.all(np.isfinite(values)):
    bad = int(values.size - np.count_nonzero(np.isfinite(values)))
    raise ValueError(
        f"{name} contains NaN or infinite values: {bad} of its"
        f" {values.size} entries (shape {values.shape})."
    )
