"""k-means in JAX, jit-compiled and chunked for hundreds of thousands of points.

Used to cluster representations for cluster-aware negatives (ClusterNS, MCL)
and cluster-based batch composition (TAS-Balanced). Lloyd's algorithm
(Lloyd, 1982) with k-means++ seeding (Arthur and Vassilvitskii, 2007), in
two geometries:

- Euclidean (`spherical=False`): standard k-means on squared Euclidean
  distances, the same algorithm as scikit-learn's `KMeans(algorithm='lloyd')`.
- Spherical (`spherical=True`): points and centroids are L2-normalised, the
  assignment maximises the cosine similarity, each centroid is the normalised
  mean of its points (Dhillon and Modha, 2001). Inertia is then
  `sum ||u_i - c_a(i)||^2 = sum 2 (1 - cos)`.

Memory: distances are computed `chunk_size` points at a time, so at most
`chunk_size x k` of them exist at once (4096 x 1000 floats: 16 MiB); the
points themselves (`N x d` float32) are held once, padded to a whole number of
chunks.

Empty clusters: after an update step, each empty cluster is re-seeded at one
of the points farthest from their current centroid (distinct points, the
farthest first), as scikit-learn does; unlike scikit-learn, the chosen points
are not removed from their old cluster's mean until the next iteration.
"""
from __future__ import annotations

import functools
import math

import flax.struct
import jax
import jax.numpy as jnp

from contrastive import checks

Array = jax.Array

INITS = ("kmeans++", "random")


@flax.struct.dataclass
class KMeansResult:
  """The outcome of `kmeans`.

  Attributes:
    centroids: `[k, d]` float32 (unit-norm in spherical mode).
    assignments: `[N]` int32, the nearest centroid of each point.
    inertia: float32 scalar, the sum of squared distances of the points to
      their centroid (of the normalised points in spherical mode).
    num_iters: int32 scalar, the Lloyd iterations run.
  """

  centroids: Array
  assignments: Array
  inertia: Array
  num_iters: Array


def _prepare(x: Array, spherical: bool) -> Array:
  return checks.l2_normalize(x) if spherical else jnp.asarray(x, jnp.float32)


def _chunk(x: Array, chunk_size: int) -> tuple[Array, int]:
  """Pads `[N, d]` to `[m, c, d]` chunks; returns them and the padding."""
  n = x.shape[0]
  chunk = min(chunk_size, n)
  num_chunks = -(-n // chunk)
  pad = num_chunks * chunk - n
  return jnp.pad(x, ((0, pad), (0, 0))).reshape(num_chunks, chunk, -1), pad


def _nearest(x: Array, centroids: Array, c_sq: Array) -> tuple[Array, Array]:
  """Index of and squared distance to the nearest centroid of each row."""
  # ||x||^2 is the same for every centroid: leave it out of the comparison.
  partial = c_sq[None, :] - 2.0 * (x @ centroids.T)
  best = jnp.min(partial, axis=1)
  # argmin through a min then an equality test: XLA's CPU argmin (a variadic
  # reduce) is several times slower; ties still go to the lowest index.
  k = centroids.shape[0]
  iota = jnp.arange(k, dtype=jnp.int32)
  index = jnp.min(jnp.where(partial == best[:, None], iota, k), axis=1)
  return index, jnp.maximum(best + jnp.sum(x * x, axis=1), 0.0)


def _assign_chunks(chunks: Array, pad: int, centroids: Array, with_sums: bool):
  """One pass over the chunks: assignments, distances, and cluster sums."""
  k, d = centroids.shape
  num_chunks, chunk, _ = chunks.shape
  c_sq = jnp.sum(centroids * centroids, axis=1)
  n_real = num_chunks * chunk - pad

  def body(carry, inputs):
    sums, counts = carry
    start, x = inputs
    index, dist = _nearest(x, centroids, c_sq)
    is_real = start + jnp.arange(chunk) < n_real
    dist = jnp.where(is_real, dist, 0.0)
    if with_sums:
      seg = jnp.where(is_real, index, k)  # padding: an out-of-range id, dropped
      sums = sums + jax.ops.segment_sum(x, seg, num_segments=k)
      counts = counts + jax.ops.segment_sum(
          jnp.ones((chunk,), jnp.float32), seg, num_segments=k
      )
    return (sums, counts), (index, dist)

  init = (jnp.zeros((k, d), jnp.float32), jnp.zeros((k,), jnp.float32))
  starts = jnp.arange(num_chunks) * chunk
  (sums, counts), (index, dist) = jax.lax.scan(body, init, (starts, chunks))
  index, dist = index.reshape(-1)[:n_real], dist.reshape(-1)[:n_real]
  return index, dist, sums, counts


def assign(
    x: Array,
    centroids: Array,
    *,
    spherical: bool = True,
    chunk_size: int = 4096,
) -> Array:
  """`[N]` int32 index of the nearest centroid of each point.

  Args:
    x: `[N, d]` points.
    centroids: `[k, d]` centroids (e.g. `KMeansResult.centroids`).
    spherical: cosine assignment (points and centroids normalised) if True,
      squared Euclidean otherwise; use the mode the centroids were fit in.
    chunk_size: points per distance block.

  Example:
    >>> clusters = assign(new_features, result.centroids, spherical=True)
  """
  _check_points(x)
  if jnp.ndim(centroids) != 2 or centroids.shape[1] != x.shape[1]:
    raise ValueError(
        f"centroids must be [k, d={x.shape[1]}], got {jnp.shape(centroids)}."
    )
  _check_chunk(chunk_size)
  return _assign_jit(x, centroids, spherical, chunk_size)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _assign_jit(x, centroids, spherical, chunk_size):
  chunks, pad = _chunk(_prepare(x, spherical), chunk_size)
  index, _, _, _ = _assign_chunks(
      chunks, pad, _prepare(centroids, spherical), with_sums=False
  )
  return index


def kmeans_plus_plus(
    rng: Array,
    x: Array,
    num_clusters: int,
    *,
    spherical: bool = True,
    num_local_trials: int | None = None,
    chunk_size: int = 4096,
) -> Array:
  """k-means++ seeding (Arthur and Vassilvitskii, 2007): `[k, d]` centroids.

  The first centroid is a uniformly drawn point; each next one is drawn with
  probability proportional to D^2, the squared distance to the nearest chosen
  centroid. With `num_local_trials = L > 1` ("greedy" k-means++, the
  scikit-learn default `2 + floor(ln k)` when None), L candidates are drawn
  and the one that lowers the potential `sum D^2` most is kept. Cost:
  `O(N d L)` per centroid, `[N, L]` distances held at a time.

  Args:
    rng: PRNG key.
    x: `[N, d]` points (normalised first in spherical mode).
    num_clusters: k, `1 <= k <= N`.
    spherical: seed on the unit sphere.
    num_local_trials: candidates per step (>= 1); None: `2 + floor(ln k)`.
    chunk_size: points per distance block.

  Example:
    >>> init = kmeans_plus_plus(jax.random.key(0), x, 100, spherical=False)
  """
  _check_points(x)
  _check_num_clusters(num_clusters, x.shape[0])
  _check_chunk(chunk_size)
  trials = _local_trials(num_local_trials, num_clusters)
  return _seed_jit(rng, x, num_clusters, trials, spherical, chunk_size)


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5))
def _seed_jit(rng, x, num_clusters, trials, spherical, chunk_size):
  chunks, pad = _chunk(_prepare(x, spherical), chunk_size)
  return _kmeans_plus_plus(rng, chunks, pad, num_clusters, trials)


def _local_trials(num_local_trials: int | None, num_clusters: int) -> int:
  if num_local_trials is None:
    return 2 + int(math.log(num_clusters))
  if num_local_trials < 1:
    raise ValueError(f"num_local_trials must be >= 1, got {num_local_trials}.")
  return num_local_trials


def _kmeans_plus_plus(rng, chunks, pad, num_clusters, trials):
  """k-means++ on `[m, c, d]` chunks whose last `pad` rows are padding."""
  num_chunks, chunk, d = chunks.shape
  n = num_chunks * chunk - pad
  flat = chunks.reshape(-1, d)
  x_sq = jnp.sum(chunks * chunks, axis=-1)  # [m, c]
  is_real = (jnp.arange(num_chunks * chunk) < n).reshape(num_chunks, chunk)

  def min_d2(d2, points):
    """min(D^2, distance to each of `points`): `[m, c, L]`, chunk by chunk."""
    p_sq = jnp.sum(points * points, axis=-1)

    def one_chunk(args):
      x, xs, old = args
      # Block-wise products: XLA's CPU dot of all N rows against a few
      # columns is several times slower than this loop over cache-sized tiles.
      dist = xs[:, None] + p_sq[None, :] - 2.0 * (x @ points.T)
      return jnp.minimum(old[:, None], jnp.maximum(dist, 0.0))

    return jax.lax.map(one_chunk, (chunks, x_sq, d2))

  rng, first_rng = jax.random.split(rng)
  first = flat[jax.random.randint(first_rng, (), 0, n)]
  centroids = jnp.zeros((num_clusters, d), chunks.dtype).at[0].set(first)
  # Padding rows get D^2 = 0: they are never drawn and add nothing.
  d2 = min_d2(jnp.full(x_sq.shape, jnp.inf), first[None])[..., 0]
  d2 = jnp.where(is_real, d2, 0.0)

  def body(i, carry):
    centroids, d2, rng = carry
    rng, sub = jax.random.split(rng)
    # Inverse-CDF draws of L candidates with probability ∝ D^2 (far cheaper on
    # CPU than Gumbel noise for all N points).
    cdf = jnp.cumsum(d2.reshape(-1))
    u = jax.random.uniform(sub, (trials,)) * cdf[-1]
    cand = jnp.minimum(jnp.searchsorted(cdf, u, side="right"), n - 1)
    new_d2 = min_d2(d2, flat[cand])  # [m, c, L]
    best = jnp.argmin(jnp.sum(new_d2, axis=(0, 1)))
    return centroids.at[i].set(flat[cand[best]]), new_d2[..., best], rng

  init = (centroids, d2, rng)
  centroids, _, _ = jax.lax.fori_loop(1, num_clusters, body, init)
  return centroids


def kmeans(
    rng: Array,
    x: Array,
    num_clusters: int,
    *,
    num_iters: int = 100,
    spherical: bool = True,
    init: str | Array = "kmeans++",
    chunk_size: int = 4096,
    tol: float = 1e-4,
    num_local_trials: int | None = None,
) -> KMeansResult:
  """Lloyd's k-means with k-means++ seeding, chunked and jit-compiled.

  Each iteration assigns every point to its nearest centroid and moves each
  centroid to the mean of its points (normalised in spherical mode). It stops
  after `num_iters` iterations, or earlier once the squared centroid shift
  summed over clusters is at most `tol * mean_j var(x[:, j])` (scikit-learn's
  rule; `tol=0` stops only when an iteration changes nothing). A last pass
  assigns the points to the final centroids and computes the inertia.

  Args:
    rng: PRNG key for the seeding (may be None with initial centroids).
    x: `[N, d]` points.
    num_clusters: k, `1 <= k <= N`.
    num_iters: maximum Lloyd iterations (>= 0; 0 returns the seeding).
    spherical: cosine k-means on the unit sphere if True, Euclidean if False.
    init: 'kmeans++', 'random' (k distinct points drawn uniformly) or `[k, d]`
      initial centroids.
    chunk_size: points per distance block (memory `chunk_size x k` floats).
    tol: relative tolerance on the centroid shift (>= 0).
    num_local_trials: k-means++ candidates per step (see `kmeans_plus_plus`).

  Returns:
    A `KMeansResult`.

  Example:
    >>> result = kmeans(jax.random.key(0), features, 100, num_iters=50)
    >>> clusters = result.assignments  # [N] int32
  """
  _check_points(x)
  n, d = x.shape
  _check_num_clusters(num_clusters, n)
  _check_chunk(chunk_size)
  if num_iters < 0:
    raise ValueError(f"num_iters must be >= 0, got {num_iters}.")
  if not tol >= 0:
    raise ValueError(f"tol must be >= 0, got {tol}.")
  if isinstance(init, str):
    if init not in INITS:
      raise ValueError(
          f"Unknown init {init!r}; valid values are: {', '.join(INITS)}, or"
          " a [k, d] array of initial centroids."
      )
    if rng is None:
      raise ValueError(f"init={init!r} draws points: pass a PRNG key as rng.")
    trials = _local_trials(num_local_trials, num_clusters)
    init_centroids = None
  else:
    if jnp.shape(init) != (num_clusters, d):
      raise ValueError(
          f"init centroids must have shape ({num_clusters}, {d}), got"
          f" {jnp.shape(init)}."
      )
    init, trials, init_centroids = "given", 1, init
  return _kmeans_jit(
      rng, x, init_centroids, num_iters, tol,
      num_clusters, spherical, init, chunk_size, trials,
  )


@functools.partial(jax.jit, static_argnums=(5, 6, 7, 8, 9))
def _kmeans_jit(
    rng, x, init_centroids, num_iters, tol,
    num_clusters, spherical, init, chunk_size, trials,
):
  x = _prepare(x, spherical)
  n = x.shape[0]
  chunks, pad = _chunk(x, chunk_size)
  if init == "kmeans++":
    centroids = _kmeans_plus_plus(rng, chunks, pad, num_clusters, trials)
  elif init == "random":
    centroids = x[jax.random.choice(rng, n, (num_clusters,), replace=False)]
  else:
    centroids = _prepare(init_centroids, spherical)
  tol_abs = tol * jnp.mean(jnp.var(x, axis=0))

  def update(centroids):
    _, dist, sums, counts = _assign_chunks(chunks, pad, centroids, True)
    means = sums / jnp.maximum(counts, 1.0)[:, None]
    means = checks.l2_normalize(means) if spherical else means
    empty = counts == 0
    return jax.lax.cond(
        jnp.any(empty), _reseed_empty, lambda m, *_: m, means, empty, dist, x
    )

  def cond(state):
    i, _, shift = state
    return (i < num_iters) & (shift > tol_abs)

  def body(state):
    i, centroids, _ = state
    new = update(centroids)
    return i + 1, new, jnp.sum(jnp.square(new - centroids))

  state = (jnp.zeros((), jnp.int32), centroids, jnp.array(jnp.inf, jnp.float32))
  iters, centroids, _ = jax.lax.while_loop(cond, body, state)
  index, dist, _, _ = _assign_chunks(chunks, pad, centroids, with_sums=False)
  return KMeansResult(centroids, index, jnp.sum(dist), iters)


def _reseed_empty(means: Array, empty: Array, dist: Array, x: Array) -> Array:
  """Moves the empty clusters' centroids onto the farthest points."""
  k = means.shape[0]
  _, farthest = jax.lax.top_k(dist, k)  # the k farthest points, farthest first
  rank = jnp.cumsum(empty) - 1  # the r-th empty cluster takes the r-th point
  return jnp.where(empty[:, None], x[farthest[jnp.maximum(rank, 0)]], means)


def _check_points(x: Array) -> None:
  checks.check_rank("x", x, 2, "[N, d] points")
  if x.shape[0] < 1:
    raise ValueError(f"x must hold N >= 1 points, got shape {x.shape}.")


def _check_num_clusters(num_clusters: int, n: int) -> None:
  if not 1 <= num_clusters <= n:
    raise ValueError(
        f"num_clusters must lie in [1, N={n}] (N = number of points), got"
        f" {num_clusters}."
    )


def _check_chunk(chunk_size: int) -> None:
  if chunk_size < 1:
    raise ValueError(f"chunk_size must be >= 1, got {chunk_size}.")
