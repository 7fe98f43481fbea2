"""Alignment, uniformity and the raw material of similarity histograms.

Wang and Isola 2020 ("Understanding Contrastive Representation Learning
through Alignment and Uniformity on the Hypersphere") measure the two
properties the contrastive loss optimises on unit-normalised features `u`:

    alignment  = E_(positive pairs) ||u1 - u2||^alpha          (alpha = 2)
    uniformity = log E_(i != j) exp(-t ||u_i - u_j||^2)         (t = 2)

Lower is better for both: alignment is 0 when both views map to the same
point, uniformity is 0 when all points coincide and about -4 for uniformly
spread points in high dimension.

Uniformity averages over all distinct pairs, `chunk_size` rows at a time
(memory `chunk_size * N`), with a log-sum-exp so that no term underflows.
Its cost is `O(N^2 F)`; beyond `max_points` points (default
4,096: 8.4 million pairs) it is computed exactly over a uniformly random
subset of `max_points` points. The subset's mean over its distinct pairs is
an unbiased estimate of the full mean potential; its logarithm is biased low
(Jensen) by about half the estimate's relative variance, which shrinks as
`1 / max_points`.
All three functions work under `jax.jit` and are differentiable.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from contrastive import checks
from contrastive.evaluate import _checks

Array = jax.Array
ArrayLike = jax.typing.ArrayLike


def _check_views(u1: ArrayLike, u2: ArrayLike) -> None:
  _checks.check_features("u1", u1)
  _checks.check_features("u2", u2)
  if jnp.shape(u1) != jnp.shape(u2):
    raise ValueError(
        "u1 and u2 must have the same shape (row i of each is a positive"
        f" pair), got {jnp.shape(u1)} and {jnp.shape(u2)}."
    )


def _prepare(u: ArrayLike, normalize: bool) -> Array:
  return checks.l2_normalize(u) if normalize else jnp.asarray(u, jnp.float32)


def alignment(
    u1: ArrayLike,
    u2: ArrayLike,
    *,
    alpha: float = 2.0,
    normalize: bool = True,
) -> Array:
  """Mean `||u1_i - u2_i||^alpha` over positive pairs (Wang & Isola 2020).

  Args:
    u1: `[N, F]` features of the first views.
    u2: `[N, F]` features of the second views; row `i` is `u1[i]`'s positive.
    alpha: exponent `> 0` of the distance (the paper's default 2).
    normalize: L2-normalise the rows first (the metric is defined on the unit
      sphere); set False for features that already are.

  Returns:
    A float32 scalar; 0 when both views coincide, at most `2^alpha`.

  Example:
    >>> u = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> float(alignment(u, u[::-1]))
    2.0
  """
  _check_views(u1, u2)
  _checks.check_positive("alpha", alpha)
  u1, u2 = _prepare(u1, normalize), _prepare(u2, normalize)
  sq_dist = jnp.sum((u1 - u2) ** 2, axis=-1)
  return jnp.mean(jnp.power(sq_dist, alpha / 2))


@functools.partial(
    jax.jit, static_argnames=("normalize", "max_points", "chunk_size")
)
def _uniformity(
    u: Array,
    t: Array,
    seed: Array,
    *,
    normalize: bool,
    max_points: int | None,
    chunk_size: int,
) -> Array:
  num_points = u.shape[0]
  u = _prepare(u, normalize)
  if max_points is not None and num_points > max_points:
    subset = jax.random.choice(
        jax.random.key(seed), num_points, (max_points,), replace=False
    )
    u = u[subset]
    num_points = max_points

  chunk = min(chunk_size, num_points)
  num_chunks = -(-num_points // chunk)
  padded = jnp.pad(u, ((0, num_chunks * chunk - num_points), (0, 0)))
  sq_norms = jnp.sum(u * u, axis=-1)
  columns = jnp.arange(num_points)

  def block_logsumexp(start: Array) -> Array:
    rows = jax.lax.dynamic_slice_in_dim(padded, start, chunk)
    row_sq = jnp.sum(rows * rows, axis=-1)
    dots = jnp.matmul(rows, u.T, precision=jax.lax.Precision.HIGHEST)
    # Clamped: rounding can make the expanded square slightly negative.
    sq_dist = jnp.maximum(row_sq[:, None] + sq_norms[None, :] - 2 * dots, 0.0)
    row_ids = start + jnp.arange(chunk)
    # Ordered pairs j != i (each distinct pair twice, same mean): every block
    # then holds a finite entry, so neither its value nor its gradient is
    # log(0). Rows past N are padding.
    keep = (columns[None, :] != row_ids[:, None]) & (
        row_ids[:, None] < num_points
    )
    return jax.nn.logsumexp(jnp.where(keep, -t * sq_dist, -jnp.inf))

  starts = jnp.arange(num_chunks) * chunk
  total = jax.nn.logsumexp(jax.lax.map(block_logsumexp, starts))
  num_ordered_pairs = num_points * (num_points - 1)
  return total - math.log(num_ordered_pairs)


def uniformity(
    u: ArrayLike,
    *,
    t: float = 2.0,
    normalize: bool = True,
    max_points: int | None = 4096,
    seed: int = 0,
    chunk_size: int = 1024,
) -> Array:
  """Log of the mean Gaussian potential over distinct pairs (Wang & Isola).

  `log( 2 / (N (N-1)) * sum_{i<j} exp(-t ||u_i - u_j||^2) )`.

  Args:
    u: `[N, F]` features, `N >= 2`.
    t: scale `> 0` of the Gaussian potential (the paper's default 2).
    normalize: L2-normalise the rows first.
    max_points: if `N` exceeds it, use a uniformly random subset of this many
      points (see the module docstring); `None` always uses all `N`.
    seed: seeds the subset.
    chunk_size: rows per block of the pairwise computation.

  Returns:
    A float32 scalar `<= 0`; 0 when all points are equal.

  Example:
    >>> u = jnp.array([[1.0, 0.0], [-1.0, 0.0]])
    >>> float(uniformity(u))  # -2 * ||u_0 - u_1||^2 = -8
    -8.0
  """
  _checks.check_features("u", u)
  num_points = jnp.shape(u)[0]
  if num_points < 2:
    raise ValueError(
        f"uniformity needs N >= 2 points, got shape {jnp.shape(u)}."
    )
  _checks.check_positive("t", t)
  if max_points is not None:
    _checks.check_int_at_least("max_points", max_points, 2)
  _checks.check_int_at_least("chunk_size", chunk_size, 1)
  return _uniformity(
      jnp.asarray(u), jnp.asarray(t, jnp.float32), jnp.asarray(seed),
      normalize=bool(normalize), max_points=max_points,
      chunk_size=int(chunk_size),
  )


class SimilarityDistribution(NamedTuple):
  """Cosine similarities of positive pairs and of sampled negative pairs."""

  positive: Array
  negative: Array


@functools.partial(jax.jit, static_argnames="num_negatives")
def _similarity_distribution(
    u1: Array, u2: Array, seed: Array, *, num_negatives: int
) -> SimilarityDistribution:
  n = u1.shape[0]
  u1, u2 = checks.l2_normalize(u1), checks.l2_normalize(u2)
  positive = jnp.sum(u1 * u2, axis=-1)
  if num_negatives >= n * (n - 1):
    sims = jnp.matmul(u1, u2.T, precision=jax.lax.Precision.HIGHEST)
    rows, cols = np.nonzero(~np.eye(n, dtype=bool))  # static, jit-friendly
    negative = sims[rows, cols]
  else:
    key_i, key_offset = jax.random.split(jax.random.key(seed))
    i = jax.random.randint(key_i, (num_negatives,), 0, n)
    # i + offset (mod n) with offset in [1, n) is uniform over j != i.
    j = (i + jax.random.randint(key_offset, (num_negatives,), 1, n)) % n
    negative = jnp.sum(u1[i] * u2[j], axis=-1)
  return SimilarityDistribution(positive=positive, negative=negative)


def similarity_distribution(
    u1: ArrayLike,
    u2: ArrayLike,
    *,
    num_negatives: int = 10_000,
    seed: int = 0,
) -> SimilarityDistribution:
  """Positive and negative cosine similarities, for histograms.

  Positives are `s(u1_i, u2_i)`; negatives are cross-view pairs
  `s(u1_i, u2_j)`, `i != j`. When `num_negatives >= N (N - 1)` all negative
  pairs are returned (row-major order); otherwise `num_negatives` pairs are
  drawn uniformly with replacement.

  Args:
    u1: `[N, F]` features of the first views, `N >= 2`.
    u2: `[N, F]` features of the second views.
    num_negatives: how many negative pairs to sample, `>= 1`.
    seed: seeds the sample.

  Returns:
    A `SimilarityDistribution` of `positive` `[N]` and `negative`
    `[min(num_negatives, N (N - 1))]` float32 similarities in `[-1, 1]`.

  Example:
    >>> u = jnp.array([[1.0, 0.0], [0.0, 2.0]])
    >>> similarity_distribution(u, u).positive
    Array([1., 1.], dtype=float32)
  """
  _check_views(u1, u2)
  _checks.check_int_at_least("num_negatives", num_negatives, 1)
  n = jnp.shape(u1)[0]
  if n < 2:
    raise ValueError(f"Negative pairs need N >= 2 rows, got {n}.")
  return _similarity_distribution(
      jnp.asarray(u1), jnp.asarray(u2), jnp.asarray(seed),
      num_negatives=int(num_negatives),
  )
