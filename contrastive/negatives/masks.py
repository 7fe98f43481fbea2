"""Boolean masks of allowed negatives, built from labels or cluster ids.

Convention shared with `contrastive.losses`: a mask is a bool array, True
where the candidate is an ALLOWED negative of the anchor, of shape

- `[n, k]` in queue mode (anchors = queries, candidates = the `K` queue rows);
- `[n, n]` at sample level in in-batch (SimCLR) mode: entry `(i, j)` says
  whether sample `j` (both of its views) may be a negative of sample `i`; the
  loss expands it to the `2n` views and always removes the anchor itself and
  its positive.

Ids (labels, cluster assignments) are integers; a negative id (-1, what the
queue stores for rows whose metadata is unknown) never matches anything, not
even another -1. Cluster ids may carry several stages, `[n, s]` and `[k, s]`
(MCL: one k-means assignment per previous stage); two samples are "in the same
cluster" when their ids match in ALL stages.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def _check_ids(name: str, ids: Array) -> Array:
  ids = jnp.asarray(ids)
  if ids.ndim not in (1, 2):
    raise ValueError(
        f"{name} must have rank 1 [n] or 2 [n, stages], got shape {ids.shape}."
    )
  if not jnp.issubdtype(ids.dtype, jnp.integer):
    raise ValueError(f"{name} must be integer ids, got dtype {ids.dtype}.")
  return ids


def same_id(anchor_ids: Array, candidate_ids: Array) -> Array:
  """`[n, k]` bool: True where anchor and candidate share their (known) id.

  The one comparison behind every mask of this module.

  Args:
    anchor_ids: `[n]` or `[n, s]` integer ids; negative ids mean unknown.
    candidate_ids: `[k]` or `[k, s]`, the same rank (and `s`) as `anchor_ids`.

  Returns:
    `[n, k]` bool, True where all `s` ids are equal and none is unknown.

  Example:
    >>> same_id(jnp.array([0, 1]), jnp.array([1, 1, -1]))
    Array([[False, False, False], [ True,  True, False]], dtype=bool)
  """
  anchor_ids = _check_ids("anchor ids", anchor_ids)
  candidate_ids = _check_ids("candidate ids", candidate_ids)
  if anchor_ids.shape[1:] != candidate_ids.shape[1:]:
    raise ValueError(
        "anchor and candidate ids must have the same number of stages, got"
        f" shapes {anchor_ids.shape} and {candidate_ids.shape}."
    )
  if anchor_ids.ndim == 1:
    anchor_ids, candidate_ids = anchor_ids[:, None], candidate_ids[:, None]
  a, c = anchor_ids[:, None, :], candidate_ids[None, :, :]
  return jnp.all((a == c) & (a >= 0) & (c >= 0), axis=-1)


def exclude_same_label(anchor_labels: Array, candidate_labels: Array) -> Array:
  """`[n, k]` mask allowing only candidates whose label differs (supervised).

  Removes the false negatives that labels reveal. Unknown labels (< 0, e.g.
  random-init queue rows) are allowed.

  Args:
    anchor_labels: `[n]` integer labels.
    candidate_labels: `[k]` integer labels (queue metadata or the batch's).

  Example:
    >>> mask = exclude_same_label(labels, queue.metadata['label'])
  """
  return ~same_id(anchor_labels, candidate_labels)


def exclude_same_cluster(
    anchor_clusters: Array, candidate_clusters: Array
) -> Array:
  """`[n, k]` mask dropping candidates in the anchor's cluster (ClusterNS).

  ClusterNS (Deng et al., 2023) treats in-batch pairs in the same k-means
  cluster as suspected false negatives; removing them from the denominator is
  the alternative to its margin loss. Same rule as `exclude_same_label`.

  Args:
    anchor_clusters: `[n]` or `[n, s]` cluster ids.
    candidate_clusters: `[k]` or `[k, s]` cluster ids.

  Example:
    >>> mask = exclude_same_cluster(assign(u, centroids), assign(u, centroids))
  """
  return ~same_id(anchor_clusters, candidate_clusters)


def restrict_to_same_cluster(
    anchor_clusters: Array, candidate_clusters: Array
) -> Array:
  """`[n, k]` mask allowing ONLY candidates in the anchor's cluster (MCL).

  Multistage contrastive learning ("Learning the Unlearned") draws the
  negatives of stage `s` from the anchor's cluster in every previous stage, so
  the new stage must separate what earlier features did not. Candidates with
  an unknown cluster (< 0) are never allowed. Small clusters can leave an
  anchor with few or no negatives: follow with `ensure_min_negatives`.

  Args:
    anchor_clusters: `[n]` or `[n, s]` cluster ids of previous stages.
    candidate_clusters: `[k]` or `[k, s]`.

  Example:
    >>> mask = restrict_to_same_cluster(clusters, queue.metadata['cluster'])
    >>> mask = ensure_min_negatives(mask & queue.valid, 16, queue.valid)
  """
  return same_id(anchor_clusters, candidate_clusters)


def in_batch_mask(
    num_samples: int,
    *,
    labels: Array | None = None,
    exclude_clusters: Array | None = None,
    restrict_clusters: Array | None = None,
) -> Array:
  """Sample-level `[n, n]` mask for in-batch (SimCLR) mode.

  The diagonal is always False (a sample is never its own negative); each
  given id array adds its rule, combined by logical and.

  Args:
    num_samples: n, the number of samples (not views) in the batch.
    labels: optional `[n]` labels: exclude same-label samples.
    exclude_clusters: optional `[n]`/`[n, s]` ids: exclude same-cluster ones.
    restrict_clusters: optional `[n]`/`[n, s]` ids: keep same-cluster only.

  Returns:
    `[n, n]` bool, True = allowed negative.

  Example:
    >>> mask = in_batch_mask(n, labels=y)  # SupCon-style removal for NT-Xent
  """
  mask = ~jnp.eye(num_samples, dtype=bool)
  rules = (
      (labels, exclude_same_label),
      (exclude_clusters, exclude_same_cluster),
      (restrict_clusters, restrict_to_same_cluster),
  )
  for ids, rule in rules:
    if ids is None:
      continue
    if jnp.shape(ids)[0] != num_samples:
      raise ValueError(
          f"ids must have {num_samples} rows (one per sample), got shape"
          f" {jnp.shape(ids)}."
      )
    mask = mask & rule(ids, ids)
  return mask


def combine_masks(*masks: Array | None) -> Array:
  """Logical and of masks, broadcasting; None entries are skipped.

  A `[k]` mask (such as the queue's `valid` rows) applies to every anchor.

  Example:
    >>> mask = combine_masks(exclude_same_label(y, qy), queue.valid)  # [n, k]
  """
  masks = [jnp.asarray(m) for m in masks if m is not None]
  if not masks:
    raise ValueError("combine_masks needs at least one mask that is not None.")
  for m in masks:
    if m.dtype != jnp.bool_:
      raise ValueError(f"masks must be bool, got dtype {m.dtype}.")
  try:
    shape = jnp.broadcast_shapes(*(m.shape for m in masks))
  except ValueError as e:
    raise ValueError(
        f"masks must broadcast together, got shapes {[m.shape for m in masks]}."
    ) from e
  out = jnp.ones(shape, bool)
  for m in masks:
    out = out & m
  return out


def ensure_min_negatives(
    mask: Array, min_count: int, fallback_mask: Array
) -> Array:
  """Replaces the rows of `mask` with too few allowed negatives by a fallback.

  MCL needs this: restricting negatives to the anchor's cluster leaves anchors
  in small clusters with almost none (an anchor with zero negatives has a
  zero, gradient-free loss). Such rows use `fallback_mask` instead (e.g. all
  valid queue rows, or the stage-1 rule).

  Args:
    mask: `[n, k]` bool.
    min_count: an anchor keeps its row when it has at least this many allowed
      negatives (>= 0).
    fallback_mask: `[n, k]` or `[k]` bool.

  Returns:
    `[n, k]` bool. `jnp.sum(mask, -1) < min_count` tells which rows fell back.

  Example:
    >>> mask = ensure_min_negatives(same_cluster & valid, 16, valid)
  """
  mask = jnp.asarray(mask)
  if mask.ndim != 2 or mask.dtype != jnp.bool_:
    raise ValueError(
        "mask must be a rank-2 [n, k] bool array, got"
        f" {mask.shape} {mask.dtype}."
    )
  if min_count < 0:
    raise ValueError(f"min_count must be >= 0, got {min_count}.")
  if jnp.shape(fallback_mask) not in (mask.shape, mask.shape[1:]):
    raise ValueError(
        f"fallback_mask must be [n, k] or [k] for mask {mask.shape}, got"
        f" {jnp.shape(fallback_mask)}."
    )
  fallback = combine_masks(jnp.ones_like(mask), fallback_mask)
  too_few = jnp.sum(mask, axis=-1) < min_count
  return jnp.where(too_few[:, None], fallback, mask)


def false_negative_rate(
    anchor_labels: Array, candidate_labels: Array, mask: Array
) -> Array:
  """Fraction of allowed negatives that share the anchor's label.

  The quantity DCL/HCL estimate with `tau_plus`; pooled over all allowed
  (anchor, candidate) pairs whose two labels are known (>= 0).

  Args:
    anchor_labels: `[n]` labels.
    candidate_labels: `[k]` labels.
    mask: `[n, k]` (or broadcastable, e.g. `[k]`) bool allowed negatives. For
      in-batch mode use a sample-level mask with a False diagonal.

  Returns:
    float32 scalar in [0, 1]; 0 when no pair is allowed.

  Example:
    >>> false_negative_rate(y, queue.metadata['label'], queue.valid)
  """
  if jnp.ndim(anchor_labels) != 1 or jnp.ndim(candidate_labels) != 1:
    raise ValueError(
        "anchor_labels and candidate_labels must have rank 1 ([n] and [k]),"
        f" got shapes {jnp.shape(anchor_labels)} and"
        f" {jnp.shape(candidate_labels)}."
    )
  same = same_id(anchor_labels, candidate_labels)
  mask = combine_masks(jnp.ones_like(same), mask)
  if mask.shape != same.shape:
    raise ValueError(f"mask must broadcast to {same.shape}, got {mask.shape}.")
  known = (jnp.asarray(anchor_labels)[:, None] >= 0) & (
      jnp.asarray(candidate_labels)[None, :] >= 0
  )
  allowed = mask & known
  num = jnp.sum(allowed & same, dtype=jnp.float32)
  den = jnp.sum(allowed, dtype=jnp.float32)
  return num / jnp.maximum(den, 1.0)
