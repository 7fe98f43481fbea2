"""ClusterNS's online centroids: k-means kept during training.

Deng et al. (Findings of ACL 2023), "Clustering-Aware Negative Sampling for
Unsupervised Sentence Representation". K centroids (K = 128) are kept during
training and updated with momentum from each batch; they start once the
batch's mean cosine similarity has dropped below a threshold (0.4), when
they are seeded from the batch. The loss that uses them (a centroid as a
hard negative, suspected false negatives removed or given a margin loss) is
`contrastive.losses.clusterns_infonce`; the train step keeps the
`CentroidState` in `TrainState.extra['loss']` and, after the loss, moves it
with `update_centroids` on the step's projections.
"""
from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

from contrastive import checks
from contrastive.losses.clusterns import nearest_centroids

Array = jax.Array


@flax.struct.dataclass
class CentroidState:
  """ClusterNS's centroids, carried in `TrainState.extra['loss']`.

  Attributes:
    centroids: `[K, d]` unit vectors (zeros until started).
    active: bool scalar, whether the centroids have started.
  """

  centroids: Array
  active: Array


def init_centroid_state(num_clusters: int, dim: int) -> CentroidState:
  """K zero centroids, not yet started.

  Example:
    >>> state = init_centroid_state(128, 64)
  """
  if num_clusters < 2 or dim < 1:
    raise ValueError(
        f"ClusterNS needs num_clusters >= 2 (the hard negative is the"
        f" second-nearest centroid) and dim >= 1, got {num_clusters}, {dim}.")
  return CentroidState(centroids=jnp.zeros((num_clusters, dim), jnp.float32),
                       active=jnp.zeros((), bool))


def farthest_point_centroids(points: Array, num_clusters: int) -> Array:
  """`[K, d]` seeds: point 0, then repeatedly the point least similar to all
  seeds chosen so far (farthest-point traversal on the sphere).

  The reference code seeds from one batch along a chain of least-similar
  points; the traversal here keeps seeds apart from ALL earlier ones.

  Args:
    points: `[n, d]`, `n >= K` (L2-normalised here).
    num_clusters: K.
  """
  u = checks.l2_normalize(points)
  n = u.shape[0]
  if num_clusters > n:
    raise ValueError(
        f"ClusterNS seeds its {num_clusters} centroids from one global batch"
        f" of {n} samples; use num_clusters <= the global batch size.")
  nearest = u @ u[0]                                  # max sim to a seed
  chosen = jnp.zeros((num_clusters,), jnp.int32)

  def body(i, carry):
    chosen, nearest = carry
    pick = jnp.argmin(nearest).astype(jnp.int32)
    return chosen.at[i].set(pick), jnp.maximum(nearest, u @ u[pick])

  chosen, _ = jax.lax.fori_loop(1, num_clusters, body, (chosen, nearest))
  return u[chosen]


def update_centroids(
    state: CentroidState,
    z1: Array,
    z2: Array,
    *,
    momentum: float = 0.9,
    start_similarity: float = 0.4,
) -> CentroidState:
  """One step of the online k-means (no gradient).

  Started: each centroid with members in the batch (first views, by nearest
  centroid) moves to `normalize(m * c + (1 - m) * mean(members))`; the
  others stay. Not started: if the mean of `s(u1_i, u2_j)` over all `n x n`
  pairs is below `start_similarity`, seed the centroids from `u1`
  (`farthest_point_centroids`) and start.

  Args:
    state: the current `CentroidState`.
    z1, z2: `[n, d]` projections of the two views.
    momentum: m in [0, 1); the reference's update is `lr * new + (1 - lr) *
      old`, i.e. m = 1 - lr.
    start_similarity: the threshold on the batch's mean cosine (0.4).

  Example:
    >>> state = update_centroids(state, z1, z2)
  """
  if not 0.0 <= momentum < 1.0:
    raise ValueError(f"centroid momentum must lie in [0, 1), got {momentum}.")
  u1 = jax.lax.stop_gradient(checks.l2_normalize(z1))
  u2 = jax.lax.stop_gradient(checks.l2_normalize(z2))
  k = state.centroids.shape[0]

  def moved():
    members, _ = nearest_centroids(u1, state.centroids)
    sums = jax.ops.segment_sum(u1, members, num_segments=k)
    counts = jax.ops.segment_sum(jnp.ones_like(members, jnp.float32),
                                 members, num_segments=k)
    means = sums / jnp.maximum(counts, 1.0)[:, None]
    new = checks.l2_normalize(momentum * state.centroids
                              + (1.0 - momentum) * means)
    return jnp.where((counts > 0)[:, None], new, state.centroids)

  start = jnp.mean(u1 @ u2.T) < start_similarity
  seeded = farthest_point_centroids(u1, k)
  centroids = jnp.where(state.active, moved(),
                        jnp.where(start, seeded, state.centroids))
  return CentroidState(centroids=centroids, active=state.active | start)
