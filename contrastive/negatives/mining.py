"""Hard-negative mining: the most similar allowed candidates of each anchor.

MoCo with hard-negative filtering (see `docs/losses.md`, "Momentum contrast with
dual-view loss and hard-negative filtering") keeps, for each query, only the
queue keys most similar to it, by a top-k or a cosine threshold.

Mining is a selection step: everything here runs under `stop_gradient`. A loss
that trains on the mined negatives recomputes their similarities from the
gathered embeddings (`candidates[indices]`), which is cheap and differentiable.

Memory. The full similarity matrix of `n` anchors and `k` candidates takes
`4 n k` bytes (1024 x 65,536: 256 MiB). `topk_hard_negatives` never holds it:
it scans the candidates in chunks of `chunk_size` and merges a running top-k,
so it holds `4 n (chunk_size + top_k)` bytes of scores at a time (32 MiB for
n = 1024, chunk 8192), plus the `[n, k]` bool mask if the caller passes one
(1 byte per entry; pass a `[k]` mask to avoid it). `threshold_mask` returns an
`[n, k]` mask, so it materialises `[n, k]` scores by nature.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from contrastive import checks

Array = jax.Array


class HardNegatives(NamedTuple):
  """The mined negatives of each anchor, most similar first.

  Attributes:
    indices: `[n, top_k]` int32 candidate rows; -1 in slots that are not valid.
    similarities: `[n, top_k]` float32 cosine similarities; -inf where not
      valid (so they vanish from a softmax).
    valid: `[n, top_k]` bool, False where the anchor has fewer than `top_k`
      allowed candidates.
  """

  indices: Array
  similarities: Array
  valid: Array


def _check_inputs(q: Array, candidates: Array, mask: Array | None) -> None:
  if jnp.ndim(q) != 2 or jnp.ndim(candidates) != 2:
    raise ValueError(
        "q and candidates must have rank 2 ([n, d] and [k, d]), got shapes"
        f" {jnp.shape(q)} and {jnp.shape(candidates)}."
    )
  if q.shape[1] != candidates.shape[1]:
    raise ValueError(
        f"q and candidates must share d, got {q.shape} and {candidates.shape}."
    )
  if mask is not None:
    n, k = q.shape[0], candidates.shape[0]
    if jnp.shape(mask) not in ((n, k), (k,)) or jnp.asarray(mask).dtype != bool:
      raise ValueError(
          f"mask must be a bool array of shape ({n}, {k}) or ({k},), got"
          f" {jnp.shape(mask)} {jnp.asarray(mask).dtype}."
      )


def topk_hard_negatives(
    q: Array,
    candidates: Array,
    top_k: int,
    *,
    mask: Array | None = None,
    chunk_size: int = 8192,
) -> HardNegatives:
  """The `top_k` allowed candidates most similar (cosine) to each anchor.

  Args:
    q: `[n, d]` anchors (queries); normalised here.
    candidates: `[k, d]` candidates (queue keys, batch embeddings).
    top_k: how many to keep, `1 <= top_k <= k`.
    mask: optional `[n, k]` or `[k]` bool, True = allowed; masked candidates
      are never selected.
    chunk_size: candidates scored at a time (memory: see the module doc).

  Returns:
    `HardNegatives(indices, similarities, valid)`, each `[n, top_k]`, sorted
    by decreasing similarity; ties go to the lower candidate index.

  Example:
    >>> hard = topk_hard_negatives(q, queue.keys, 1024, mask=queue.valid)
    >>> neg = queue.keys[jnp.maximum(hard.indices, 0)]  # [n, 1024, d]
  """
  _check_inputs(q, candidates, mask)
  k = candidates.shape[0]
  if not 1 <= top_k <= k:
    raise ValueError(f"top_k must lie in [1, k={k}], got {top_k}.")
  if chunk_size < 1:
    raise ValueError(f"chunk_size must be >= 1, got {chunk_size}.")
  if mask is None:
    mask = jnp.ones((k,), bool)
  return _topk_jit(q, candidates, jnp.asarray(mask), top_k, min(chunk_size, k))


@functools.partial(jax.jit, static_argnums=(3, 4))
def _topk_jit(q, candidates, mask, top_k, chunk):
  n, k = q.shape[0], candidates.shape[0]
  num_chunks = -(-k // chunk)
  pad = num_chunks * chunk - k

  q = jax.lax.stop_gradient(checks.l2_normalize(q))
  cand = jax.lax.stop_gradient(checks.l2_normalize(candidates))
  cand = jnp.pad(cand, ((0, pad), (0, 0))).reshape(num_chunks, chunk, -1)
  if mask.ndim == 1:
    chunk_masks = jnp.pad(mask, (0, pad)).reshape(num_chunks, 1, chunk)
  else:
    chunk_masks = jnp.pad(mask, ((0, 0), (0, pad)))
    chunk_masks = chunk_masks.reshape(n, num_chunks, chunk).transpose(1, 0, 2)

  def merge(best, inputs):
    best_sim, best_idx = best
    offset, cand_chunk, mask_chunk = inputs
    sim = jnp.where(mask_chunk, q @ cand_chunk.T, -jnp.inf)
    idx = offset + jnp.arange(chunk, dtype=jnp.int32)
    idx = jnp.broadcast_to(idx, sim.shape)
    # The running best comes first, so ties keep the lower (earlier) index.
    all_sim = jnp.concatenate([best_sim, sim], axis=1)
    all_idx = jnp.concatenate([best_idx, idx], axis=1)
    top_sim, pos = jax.lax.top_k(all_sim, top_k)
    return (top_sim, jnp.take_along_axis(all_idx, pos, axis=1)), None

  init = (
      jnp.full((n, top_k), -jnp.inf, jnp.float32),
      jnp.full((n, top_k), -1, jnp.int32),
  )
  offsets = jnp.arange(num_chunks, dtype=jnp.int32) * chunk
  (sim, idx), _ = jax.lax.scan(merge, init, (offsets, cand, chunk_masks))
  valid = sim > -jnp.inf
  return HardNegatives(jnp.where(valid, idx, -1), sim, valid)


def topk_mask(
    q: Array,
    candidates: Array,
    top_k: int,
    *,
    mask: Array | None = None,
    chunk_size: int = 8192,
) -> Array:
  """`[n, k]` bool mask of the `top_k` hardest allowed negatives per anchor.

  The same selection as `topk_hard_negatives`, as a `negative_mask` for the
  losses (which then ignore every other candidate).

  Example:
    >>> mask = topk_mask(q, queue.keys, 4096, mask=queue.valid)
  """
  hard = topk_hard_negatives(
      q, candidates, top_k, mask=mask, chunk_size=chunk_size
  )
  n, k = q.shape[0], candidates.shape[0]
  cols = jnp.where(hard.valid, hard.indices, k)  # k is out of range: dropped
  rows = jnp.broadcast_to(jnp.arange(n)[:, None], cols.shape)
  return jnp.zeros((n, k), bool).at[rows, cols].set(True, mode="drop")


def threshold_mask(
    q: Array,
    candidates: Array,
    threshold: float,
    *,
    mask: Array | None = None,
) -> Array:
  """`[n, k]` bool: allowed candidates with cosine similarity >= `threshold`.

  Args:
    q: `[n, d]` anchors.
    candidates: `[k, d]` candidates.
    threshold: a cosine similarity in [-1, 1].
    mask: optional `[n, k]` or `[k]` bool of allowed candidates.

  Example:
    >>> mask = threshold_mask(q, queue.keys, 0.3, mask=queue.valid)
  """
  _check_inputs(q, candidates, mask)
  if checks.is_concrete(threshold) and not -1.0 <= threshold <= 1.0:
    raise ValueError(
        f"threshold is a cosine similarity in [-1, 1], got {threshold}."
    )
  sim = jax.lax.stop_gradient(
      checks.l2_normalize(q) @ checks.l2_normalize(candidates).T)
  out = sim >= threshold
  return out if mask is None else out & mask
