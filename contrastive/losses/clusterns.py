"""ClusterNS loss: a centroid as a hard negative, suspected false negatives
removed or held apart by a margin.

Deng et al. (Findings of ACL 2023), "Clustering-Aware Negative Sampling for
Unsupervised Sentence Representation". Given K centroids (kept and updated
during training by `contrastive.clustering.clusterns`), in the SimCLR
convention (the `2n` views are anchors, the other `2n - 2` views negatives):

* each anchor's second-nearest centroid `h` (its nearest OTHER cluster,
  detached) is appended to its InfoNCE denominator as one hard negative:
  `L_a = -log( pos_a / (pos_a + sum_j neg_aj + exp(s(a, h_a) / t)) )`;
* in-batch samples in the anchor's cluster are suspected false negatives:
  `false_negatives='remove'` drops them from the denominator,
  `'margin'` keeps them and adds the bidirectional margin loss on
  `Delta_ij = s(u1_i, u2_j) - s(u1_i, u2_i)` over the suspected pairs,
  `BML = mean[ReLU(Delta + alpha) + ReLU(-Delta - beta)]`,
  `L = InfoNCE + w * BML`; `'keep'` does neither.

A sample's cluster is the nearest centroid of its first view (as in the
reference code). The positive is never a candidate of the denominator's
negative part, so no rule here can remove it. Before the centroids start
(`active=False`), the loss is plain NT-Xent.
"""
from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp

from contrastive import checks
from contrastive.losses import _common
# By name: the package's `infonce` function shadows its module.
from contrastive.losses.infonce import anchor_problems
from contrastive.losses.infonce import check_pair_inputs
from contrastive.losses.infonce import nce_from_log_negatives
from contrastive.losses.infonce import reduce_anchors
from contrastive.losses.infonce import solve
from contrastive.negatives import masks

Array = jax.Array

FALSE_NEGATIVE_MODES = ("margin", "remove", "keep")


def nearest_centroids(u: Array, centroids: Array) -> tuple[Array, Array]:
  """Indices `[m]` of the nearest and second-nearest centroid (cosine).

  The nearest is a sample's cluster (also for the centroid update in
  `contrastive.clustering.clusterns`); the second-nearest its hard negative.
  """
  _, top = jax.lax.top_k(u @ centroids.T, 2)
  return top[:, 0], top[:, 1]


def bidirectional_margin(
    u1: Array, u2: Array, pairs: Array, *, alpha: float, beta: float
) -> Array:
  """`mean over pairs (i, j) of ReLU(D + alpha) + ReLU(-D - beta)`.

  `D_ij = s(u1_i, u2_j) - s(u1_i, u2_i)`: a suspected false negative should
  be less similar than the positive by at least `alpha`, but not by more
  than `beta`. 0 when there is no pair.

  Args:
    u1, u2: `[n, d]` unit vectors of the two views.
    pairs: `[n, n]` bool, the suspected false-negative pairs.
  """
  sim = u1 @ u2.T
  delta = sim - jnp.diagonal(sim)[:, None]
  per_pair = jax.nn.relu(delta + alpha) + jax.nn.relu(-delta - beta)
  count = jnp.sum(pairs)
  return jnp.sum(jnp.where(pairs, per_pair, 0.0)) / jnp.maximum(count, 1)


def clusterns_infonce(
    z1: Array,
    z2: Array,
    centroids: Array,
    *,
    temperature: float,
    active: bool | Array = True,
    false_negatives: str = "margin",
    margin_alpha: float = 0.2,
    margin_beta: float = 0.5,
    margin_weight: float = 1e-4,
    negative_mask: Array | None = None,
) -> tuple[Array, Mapping[str, Array]]:
  """ClusterNS loss (Deng et al. 2023) in the SimCLR convention.

  Args:
    z1, z2: `[n, d]` projections of the two views.
    centroids: `[K, d]` ClusterNS centroids (`CentroidState.centroids` of
      `contrastive.clustering.clusterns`), used detached; K >= 2.
    temperature: t > 0.
    active: whether the centroids have started (a bool or traced bool
      scalar); if False the loss is NT-Xent with `negative_mask` only.
    false_negatives: 'margin' (keep them, add `margin_weight * BML`),
      'remove' (drop them from the denominator) or 'keep'.
    margin_alpha, margin_beta: the BML margins, `0 <= alpha <= beta`
      (reference: 0.2 and 0.5).
    margin_weight: w (reference: 1e-4).
    negative_mask: optional `[n, n]` sample-level mask, True = allowed.

  Returns:
    `(loss, aux)`, aux as `infonce`'s plus `hard_negative_sim` (mean cosine
    of an anchor with its centroid negative), `false_negative_pairs` (the
    fraction of in-batch pairs suspected), `bml` and `clusterns_active`.

  Example:
    >>> loss, aux = clusterns_infonce(z1, z2, state.centroids,
    ...                               temperature=0.1, active=state.active)
  """
  check_pair_inputs(z1, z2, temperature, None, negative_mask)
  _common.check_choice("false_negatives", false_negatives,
                       FALSE_NEGATIVE_MODES)
  checks.check_rank("centroids", centroids, 2, "[K, d]")
  checks.check_same_feature_dim("z1", z1, "centroids", centroids)
  if centroids.shape[0] < 2:
    raise ValueError("centroids must hold K >= 2 rows (the hard negative is"
                     f" the second-nearest), got {centroids.shape}.")
  _common.check_non_negative("margin_alpha", margin_alpha)
  _common.check_non_negative("margin_weight", margin_weight)
  concrete = checks.is_concrete(margin_alpha) and checks.is_concrete(
      margin_beta)
  if concrete and not float(margin_beta) >= float(margin_alpha):
    raise ValueError(f"margin_beta must be >= margin_alpha, got beta="
                     f"{margin_beta} < alpha={margin_alpha}.")
  n = z1.shape[0]
  active = jnp.asarray(active, bool)
  c = jax.lax.stop_gradient(checks.l2_normalize(centroids))
  u1 = checks.l2_normalize(z1)
  u2 = checks.l2_normalize(z2)
  cluster, _ = nearest_centroids(jax.lax.stop_gradient(u1), c)
  suspected = masks.in_batch_mask(n, restrict_clusters=cluster) & active
  mask = masks.combine_masks(~jnp.eye(n, dtype=bool), negative_mask)
  if false_negatives == "remove":
    mask = mask & ~suspected
  (problem,) = anchor_problems(z1, z2, None, mask)
  inv_t = 1.0 / jnp.asarray(temperature, jnp.float32)
  out = solve(problem, [inv_t], streaming=False, chunk_size=4096)
  # The second-nearest centroid of each of the 2n anchors (both views).
  _, second = nearest_centroids(jax.lax.stop_gradient(problem.anchors), c)
  hard_sim = jnp.sum(problem.anchors * c[second], axis=-1)
  log_negatives = jnp.where(
      active, jnp.logaddexp(out.log_sums[0], hard_sim * inv_t),
      out.log_sums[0])
  count = out.count + active.astype(jnp.float32)
  per_anchor = nce_from_log_negatives(
      log_negatives, problem.pos_sim * inv_t, count)
  loss, aux = reduce_anchors((problem,), (per_anchor,), (out,))
  bml = jnp.zeros((), jnp.float32)
  if false_negatives == "margin":
    bml = bidirectional_margin(u1, u2, suspected, alpha=margin_alpha,
                               beta=margin_beta)
    loss = loss + margin_weight * bml
  aux = dict(aux)
  aux.update(jax.lax.stop_gradient({
      "hard_negative_sim": jnp.where(active, jnp.mean(hard_sim), 0.0),
      "false_negative_pairs": jnp.sum(suspected) / max(n * (n - 1), 1),
      "bml": bml,
      "clusterns_active": active.astype(jnp.float32),
  }))
  return loss, aux
