"""Momentum contrast with a dual-view loss and hard-negative filtering.

From "Momentum Contrastive Learning with Enhanced Negative Sampling and Hard
Negative Filtering" (abstract in shared/papers): the MoCo InfoNCE is applied
in both directions, and each query keeps only the queue negatives most similar
to it by cosine (a top-k, or those above a threshold), dropping the easy and
stale negatives that mostly add noise.

`filtered_infonce` is one direction; `dual_view_moco` averages the two.
"""
from __future__ import annotations

import numbers
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp

from contrastive import checks
from contrastive.losses import _common
from contrastive.losses import streaming as streaming_lib
from contrastive.losses.infonce import anchor_problems
from contrastive.losses.infonce import nce_from_log_negatives
from contrastive.losses.infonce import reduce_anchors
from contrastive.losses.infonce import solve
from contrastive.losses.infonce import use_streaming

Array = jax.Array


def _check_filter(top_k: Any, threshold: Any, num_negatives: int) -> None:
  if top_k is not None and threshold is not None:
    raise ValueError(
        "Give at most one of top_k (keep each query's k most similar queue"
        " negatives) and threshold (keep those with cosine above it), got"
        f" top_k={top_k} and threshold={threshold}."
    )
  if top_k is not None:
    if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral):
      raise ValueError(f"top_k must be an int, got {top_k!r}.")
    if not 1 <= top_k <= num_negatives:
      raise ValueError(
          f"top_k must lie in [1, k] = [1, {num_negatives}] (k = queue size),"
          f" got {top_k}."
      )
  if threshold is not None and checks.is_concrete(threshold):
    if not -1.0 <= float(threshold) < 1.0:
      raise ValueError(
          f"threshold is a cosine and must lie in [-1, 1), got {threshold}."
      )


def _check_queries(pairs: Sequence[tuple[str, Any]], negatives: Any,
                   negative_mask: Any = None,
                   mask_name: str = "negative_mask") -> None:
  first_name, first = pairs[0]
  for name, x in pairs:
    checks.check_rank(name, x, 2, "[n, d] projections")
    checks.check_same_shape(first_name, first, name, x)
  checks.check_rank("negatives", negatives, 2, "[k, d] queue of keys")
  checks.check_same_feature_dim(first_name, first, "negatives", negatives)
  if negative_mask is None:
    return
  expected = (jnp.shape(first)[0], jnp.shape(negatives)[0])
  if jnp.shape(negative_mask) != expected:
    raise ValueError(
        f"{mask_name} must have shape [n, k] = {expected} (queries x queue"
        f" rows), got {jnp.shape(negative_mask)}.")
  if jnp.result_type(negative_mask) != jnp.bool_:
    raise ValueError(
        f"{mask_name} must be boolean (True = allowed negative, e.g. a filled"
        f" queue slot), got dtype {jnp.result_type(negative_mask)}.")


def filtered_infonce(
    q: Array,
    k: Array,
    negatives: Array,
    *,
    temperature: float,
    top_k: int | None = None,
    threshold: float | None = None,
    negative_mask: Array | None = None,
    streaming: bool | None = None,
    chunk_size: int = 4096,
) -> tuple[Array, Mapping[str, Array]]:
  """MoCo InfoNCE over each query's hardest queue negatives.

  Keeps, per query, the `top_k` queue rows most similar to it, or those with
  cosine strictly above `threshold`; with neither it is plain MoCo InfoNCE
  (`infonce(q, k, negatives=...)`). Ties at the k-th similarity, within
  `streaming.TOP_K_TIE_TOLERANCE` (1e-6), are all kept, so `top_k=k` keeps
  the whole queue. The selection is not differentiated (it is a mask). A
  query with no negative above `threshold` has loss 0
  (`aux['frac_without_negatives']`). Both filters work streamed: top-k by a
  running top-k over chunks, then the streamed log-sum-exp with a per-query
  similarity floor. `negative_mask` removes queue rows before the filter
  (a training queue's empty slots, say): top-k chooses among the allowed rows
  only, and a query with fewer than `top_k` allowed rows keeps them all.

  Args:
    q: `[n, d]` queries (online encoder).
    k: `[n, d]` keys (momentum encoder; pass them stop-gradiented).
    negatives: `[k, d]` queue of past keys.
    temperature: `t > 0` (MoCo v1: 0.07, v2: 0.2).
    top_k: optional int in [1, k].
    threshold: optional cosine in [-1, 1).
    negative_mask: optional `[n, k]` bool, True = the queue row may be a
      negative of the query.
    streaming: None = streamed iff k >= 16,384; True/False force it.
    chunk_size: queue rows per chunk of the streamed form.

  Returns:
    `(loss, aux)` as `infonce`; `aux['num_negatives']` is the mean number of
    negatives each query kept.

  Example:
    >>> q = jax.random.normal(jax.random.key(0), (8, 16))
    >>> k = jax.random.normal(jax.random.key(1), (8, 16))
    >>> queue = jax.random.normal(jax.random.key(2), (256, 16))
    >>> loss, aux = filtered_infonce(q, k, queue, temperature=0.2, top_k=64)
  """
  _check_queries([("q", q), ("k", k)], negatives, negative_mask)
  _check_filter(top_k, threshold, jnp.shape(negatives)[0])
  _common.check_positive("temperature", temperature)
  streaming_lib.check_chunk_size(chunk_size)
  stream = use_streaming(streaming, negatives)
  (problem,) = anchor_problems(q, k, negatives, negative_mask)
  floor = None
  if top_k is not None:
    kth = streaming_lib.kth_largest_similarity(
        problem.anchors, problem.bank, top_k, mask=problem.mask,
        streaming=stream, chunk_size=chunk_size)
    floor = kth - streaming_lib.TOP_K_TIE_TOLERANCE
  elif threshold is not None:
    # The engine keeps sims >= floor; the next float up makes it "> threshold".
    above = jnp.nextafter(jnp.float32(threshold), jnp.float32(jnp.inf))
    floor = jnp.full(problem.pos_sim.shape, above, jnp.float32)
  inv_t = 1.0 / jnp.asarray(temperature, jnp.float32)
  out = solve(problem, [inv_t], streaming=stream,
                          chunk_size=chunk_size, floor=floor)
  losses = nce_from_log_negatives(
      out.log_sums[0], problem.pos_sim * inv_t, out.count)
  return reduce_anchors([problem], [losses], [out])


def dual_view_moco(
    q1: Array,
    k1: Array,
    q2: Array,
    k2: Array,
    negatives: Array | tuple[Array, Array],
    *,
    temperature: float,
    top_k: int | None = None,
    threshold: float | None = None,
    negative_mask: Array | tuple[Array, Array] | None = None,
    streaming: bool | None = None,
    chunk_size: int = 4096,
) -> tuple[Array, Mapping[str, Array]]:
  """Dual-view (symmetrised) MoCo loss with hard-negative filtering.

  `loss = (L(q1 -> k2) + L(q2 -> k1)) / 2`, each a `filtered_infonce`.

  Which queue each direction uses:
    * one array `[k, d]`: both directions share it (the usual symmetric MoCo,
      whose queue receives the keys of both views);
    * a pair `(queue_1, queue_2)`, where `queue_v` holds past momentum keys of
      view `v` (enqueue `k1` into `queue_1` and `k2` into `queue_2` after the
      step): direction `q1 -> k2` contrasts against `queue_2` and `q2 -> k1`
      against `queue_1`. Each direction's negatives thus come from the same
      encoder and the same view as the positive they compete with, so the
      positive cannot be told apart by view-specific statistics rather than
      by instance (the convention of solo-learn's symmetric MoCo v2+).

  Args:
    q1: `[n, d]` online-encoder projections of view 1.
    k1: `[n, d]` momentum-encoder projections of view 1 (stop-gradiented).
    q2: `[n, d]` online-encoder projections of view 2.
    k2: `[n, d]` momentum-encoder projections of view 2 (stop-gradiented).
    negatives: `[k, d]` shared queue, or the pair `(queue_1, queue_2)`.
    temperature: `t > 0`.
    top_k: optional int, negatives kept per query (see `filtered_infonce`).
    threshold: optional cosine; keep negatives above it.
    negative_mask: optional `[n, k]` bool (True = allowed negative) for a
      shared queue, or a pair of them, one per queue, for a pair of queues.
    streaming: None = streamed iff a queue has >= 16,384 rows.
    chunk_size: queue rows per chunk of the streamed form.

  Returns:
    `(loss, aux)`: aux averages the two directions' metrics and adds
    `loss_12` (q1 -> k2) and `loss_21` (q2 -> k1).

  Example:
    >>> q1, k1, q2, k2 = jax.random.normal(jax.random.key(0), (4, 8, 16))
    >>> queues = jax.random.normal(jax.random.key(1), (2, 256, 16))
    >>> loss, aux = dual_view_moco(q1, k1, q2, k2, (queues[0], queues[1]),
    ...                            temperature=0.2, top_k=32)
  """
  if isinstance(negatives, (tuple, list)):
    if len(negatives) != 2:
      raise ValueError(
          "negatives must be one [k, d] queue or a pair (queue_1, queue_2),"
          f" got a sequence of {len(negatives)}."
      )
    queue_1, queue_2 = negatives
    if negative_mask is None:
      mask_1 = mask_2 = None
    elif isinstance(negative_mask, (tuple, list)) and len(negative_mask) == 2:
      mask_1, mask_2 = negative_mask
    else:
      raise ValueError(
          "With a pair of queues, negative_mask must be a pair of [n, k]"
          " masks (one per queue) or None.")
  else:
    queue_1 = queue_2 = negatives
    if isinstance(negative_mask, (tuple, list)):
      raise ValueError(
          "With one shared queue, negative_mask must be one [n, k] mask,"
          f" got a sequence of {len(negative_mask)}.")
    mask_1 = mask_2 = negative_mask
  views = [("q1", q1), ("k1", k1), ("q2", q2), ("k2", k2)]
  _check_queries(views, queue_1, mask_1, "negative_mask (queue_1)")
  _check_queries(views, queue_2, mask_2, "negative_mask (queue_2)")
  kwargs = dict(temperature=temperature, top_k=top_k, threshold=threshold,
                streaming=streaming, chunk_size=chunk_size)
  loss_12, aux_12 = filtered_infonce(q1, k2, queue_2, negative_mask=mask_2,
                                     **kwargs)
  loss_21, aux_21 = filtered_infonce(q2, k1, queue_1, negative_mask=mask_1,
                                     **kwargs)
  aux = {name: (aux_12[name] + aux_21[name]) / 2 for name in aux_12}
  aux["loss_12"] = jax.lax.stop_gradient(loss_12)
  aux["loss_21"] = jax.lax.stop_gradient(loss_21)
  return (loss_12 + loss_21) / 2, aux
