"""Kernels on conditioning variables and the conditional-embedding weights.

Both kernel-based losses of this package weight samples by how similar their
conditions are: CCL-K (Tsai et al., "Conditional Contrastive Learning with
Kernel", ICLR 2022) and decoupled uniformity with a kernel prior (Dufumier et
al., "Integrating Prior Knowledge in Contrastive Learning with Kernel", ICML
2023). Both use the kernel conditional mean embedding operator, whose weights
on a batch are `W = (K + lam I)^-1 K` for the Gram matrix `K` of the
conditions.

The kernels follow the CCL-K reference code, with `kernel_scale` playing the
role of its `temp_z`:

  rbf:          exp(-||c_i - c_j||^2 / kernel_scale)
  laplacian:    exp(-||c_i - c_j|| / kernel_scale)
  cosine:       <c_i, c_j> / (||c_i|| ||c_j||)   (kernel_scale unused)
  linear:       <c_i, c_j> / kernel_scale
  polynomial:   <c_i, c_j>^3 / kernel_scale
  categorical:  1 if c_i == c_j (every entry) else 0   (kernel_scale unused)

and the diagonal of every Gram matrix is set to 1, as the reference does.
`categorical` is this library's addition, for discrete conditions such as a
speaker or subject id, where a distance between ids means nothing.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

from contrastive import checks
from contrastive.losses import _common

Array = jax.Array

# Gram matrices feed a linear solve, so they are computed at full float32
# precision even on accelerators whose default matmul precision is lower.
_HIGHEST = jax.lax.Precision.HIGHEST


def _as_matrix(c: Any) -> Array:
  """Conditions `[n]` or `[n, p]` as a `[n, p]` array (dtype kept)."""
  c = jnp.asarray(c)
  if c.ndim == 1:
    c = c[:, None]
  return c


def _dot(c: Array) -> Array:
  c = c.astype(jnp.float32)
  return jnp.matmul(c, c.T, precision=_HIGHEST)


def _squared_distances(c: Array) -> Array:
  # The Gram form needs no [n, n, p] intermediate (p can be a 2048-d backbone
  # feature); clipping at 0 removes the small negatives rounding produces.
  c = c.astype(jnp.float32)
  sq = jnp.sum(c * c, axis=-1)
  return jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * _dot(c), 0.0)


def _rbf(c: Array, kernel_scale: float) -> Array:
  return jnp.exp(-_squared_distances(c) / kernel_scale)


def _laplacian(c: Array, kernel_scale: float) -> Array:
  d2 = _squared_distances(c)
  positive = d2 > 0
  # sqrt has an infinite derivative at 0; keep it out of the traced branch.
  dist = jnp.where(positive, jnp.sqrt(jnp.where(positive, d2, 1.0)), 0.0)
  return jnp.exp(-dist / kernel_scale)


def _cosine(c: Array, kernel_scale: float) -> Array:
  del kernel_scale  # A cosine similarity has no scale.
  u = checks.l2_normalize(c)
  return jnp.matmul(u, u.T, precision=_HIGHEST)


def _linear(c: Array, kernel_scale: float) -> Array:
  return _dot(c) / kernel_scale


def _polynomial(c: Array, kernel_scale: float) -> Array:
  return _dot(c) ** 3 / kernel_scale


def _categorical(c: Array, kernel_scale: float) -> Array:
  del kernel_scale  # Equality has no scale.
  # Compared in the input dtype: integer ids above 2^24 stay exact.
  same = jnp.all(c[:, None, :] == c[None, :, :], axis=-1)
  return same.astype(jnp.float32)


KERNELS: Mapping[str, Callable[[Array, float], Array]] = {
    "rbf": _rbf,
    "laplacian": _laplacian,
    "cosine": _cosine,
    "linear": _linear,
    "polynomial": _polynomial,
    "categorical": _categorical,
}


def check_condition(name: str, c: Any, n: int) -> None:
  """Raises ValueError unless `c` has shape `[n]` or `[n, p]`."""
  shape = jnp.shape(c)
  if len(shape) not in (1, 2):
    raise ValueError(
        f"{name} must have shape [n] or [n, p] (one condition per sample),"
        f" got shape {shape}."
    )
  if shape[0] != n:
    raise ValueError(
        f"{name} must have one row per sample: leading dimension {n}, got"
        f" shape {shape}."
    )


def condition_kernel(
    c: Any, *, kernel: str = "rbf", kernel_scale: float = 1.0
) -> Array:
  """The `[n, n]` Gram matrix of a kernel on conditions, diagonal set to 1.

  Args:
    c: `[n]` or `[n, p]` conditions; a 1-D array (a speaker id, an age) is
      treated as `[n, 1]`. Integer ids are fine; with `kernel='categorical'`
      they are compared exactly.
    kernel: one of `KERNELS` (see the module docstring for the formulas).
    kernel_scale: the `temp_z` of CCL-K, > 0; unused by `cosine` and
      `categorical`. For an RBF with bandwidth sigma, `kernel_scale = 2
      sigma^2`.

  Returns:
    A float32 `[n, n]` matrix with ones on the diagonal.

  Example:
    >>> k = condition_kernel(jnp.array([0., 1., 3.]), kernel='rbf',
    ...                      kernel_scale=2.)
    >>> # k[0, 1] == exp(-1 / 2), k[0, 2] == exp(-9 / 2)
  """
  _common.check_choice("kernel", kernel, KERNELS)
  _common.check_positive("kernel_scale", kernel_scale)
  check_condition("c", c, jnp.shape(c)[0] if jnp.ndim(c) else -1)
  gram = KERNELS[kernel](_as_matrix(c), kernel_scale)
  n = gram.shape[0]
  return jnp.where(jnp.eye(n, dtype=bool), 1.0, gram)


def conditional_weights(
    gram: Any, *, lam: float, threshold: float = 1e-6
) -> Array:
  """CCL-K weights `W = (K + lam I)^-1 K`, diagonal and small entries zeroed.

  This is the kernel conditional embedding operator on a batch (Tsai et al.,
  2022, eq. 5): row `i` of `W` weighs every sample `j` by how well its
  condition explains sample `i`'s. As in the reference code, `W_ii = 0` (the
  sample's own pair is already the positive) and entries below `threshold`,
  negative ones included, are set to 0, so that every weighted term is
  non-negative.

  `W` is computed in float32 with a linear solve (LU with pivoting), not an
  explicit inverse; since `K + lam I` has condition number at most
  `(||K|| + lam) / lam` for a positive semi-definite `K`, a very small `lam`
  with near-duplicate conditions loses float32 digits. No gradient flows
  through `W`.

  Args:
    gram: `[n, n]` Gram matrix, e.g. from `condition_kernel`.
    lam: ridge `lambda` > 0. (0 would make `K + lam I` singular whenever two
      conditions coincide.)
    threshold: entries below it are set to 0 (the reference's 1e-6).

  Returns:
    float32 `[n, n]` weights without gradient.

  Example:
    >>> w = conditional_weights(condition_kernel(c, kernel='rbf'), lam=0.1)
  """
  checks.check_rank("gram", gram, 2, "[n, n]")
  n, m = jnp.shape(gram)
  if n != m:
    raise ValueError(f"gram must be square [n, n], got shape {(n, m)}.")
  _common.check_positive("lam", lam)
  gram = jax.lax.stop_gradient(jnp.asarray(gram, jnp.float32))
  w = jnp.linalg.solve(gram + lam * jnp.eye(n, dtype=jnp.float32), gram)
  w = jnp.where(jnp.eye(n, dtype=bool) | (w < threshold), 0.0, w)
  return jax.lax.stop_gradient(w)
