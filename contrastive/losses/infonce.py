"""InfoNCE / NT-Xent in the SimCLR, CLIP and MoCo-queue conventions.

    L_i = -log( pos_i / (pos_i + sum_j neg_ij) ),
    pos_i = exp(s(anchor_i, positive_i) / t),  neg_ij = exp(s(anchor_i, j) / t)

(van den Oord et al. 2018, "Representation Learning with Contrastive
Predictive Coding"; Chen et al. 2020, SimCLR; He et al. 2020, MoCo; Radford et
al. 2021, CLIP). Every loss of this family is reduced here to one or two
*anchor problems*: anchors, the cosine with their positive, a bank of
candidate negatives and a mask of which bank rows each anchor may use. The
negative sums then come from `streaming.negative_log_sums`, dense or streamed.
`debiased.py` and `moco_filtered.py` reuse these building blocks.
"""
from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from contrastive import checks
from contrastive.losses import _common
from contrastive.losses import streaming as streaming_lib

Array = jax.Array


class AnchorProblem(NamedTuple):
  """Anchors with their positives and the bank their negatives come from.

  Attributes:
    anchors: `[m, d]` unit vectors.
    pos_sim: `[m]` cosine of each anchor with its positive.
    bank: `[b, d]` unit vectors, the candidate negatives.
    mask: `[m, b]` bool (True = negative of the anchor) or None (all rows).
  """
  anchors: Array
  pos_sim: Array
  bank: Array
  mask: Array | None


def check_pair_inputs(
    z1: Any,
    z2: Any,
    temperature: Any,
    negatives: Any = None,
    negative_mask: Any = None,
    streaming: Any = None,
    chunk_size: Any = 4096,
) -> None:
  """Raises ValueError on the input errors shared by the InfoNCE family."""
  checks.check_rank("z1", z1, 2, "[n, d] projections of view 1")
  checks.check_rank("z2", z2, 2, "[n, d] projections of view 2")
  checks.check_same_shape("z1", z1, "z2", z2)
  n = jnp.shape(z1)[0]
  if negatives is not None:
    checks.check_rank("negatives", negatives, 2, "[k, d] queue of negatives")
    checks.check_same_feature_dim("z1", z1, "negatives", negatives)
    expected, what = (n, jnp.shape(negatives)[0]), "[n, k] (queue mode)"
  else:
    expected, what = (n, n), "[n, n] (in-batch mode, sample level)"
  if negative_mask is not None:
    if jnp.shape(negative_mask) != expected:
      raise ValueError(
          f"negative_mask must have shape {what} = {expected}, got"
          f" {jnp.shape(negative_mask)}."
      )
    if jnp.result_type(negative_mask) != jnp.bool_:
      raise ValueError(
          "negative_mask must be boolean (True = allowed negative), got dtype"
          f" {jnp.result_type(negative_mask)}."
      )
  _common.check_positive("temperature", temperature)
  streaming_lib.check_streaming(streaming)
  streaming_lib.check_chunk_size(chunk_size)


def anchor_problems(
    z1: Array,
    z2: Array,
    negatives: Array | None = None,
    negative_mask: Array | None = None,
    symmetric: bool = False,
) -> tuple[AnchorProblem, ...]:
  """Normalises the inputs and lays out the anchors of one convention.

  Queue: anchors `u1`, positives `u2`, bank the queue. SimCLR: the `2n`
  embeddings are anchors and bank, each anchor's own row and its positive's
  masked out. CLIP (`symmetric`): rows (anchors `u1`, bank `u2`) and columns
  (anchors `u2`, bank `u1`), the diagonal being the positive.
  """
  u1, u2 = checks.l2_normalize(z1), checks.l2_normalize(z2)
  pos_sim = jnp.sum(u1 * u2, axis=-1)
  if negatives is not None:
    bank = checks.l2_normalize(negatives)
    return (AnchorProblem(u1, pos_sim, bank, negative_mask),)
  not_self = ~jnp.eye(u1.shape[0], dtype=bool)
  if symmetric:
    rows, cols = not_self, not_self
    if negative_mask is not None:
      rows, cols = rows & negative_mask, cols & negative_mask.T
    return (AnchorProblem(u1, pos_sim, u2, rows),
            AnchorProblem(u2, pos_sim, u1, cols))
  # Entry (a, b) of the 2n x 2n layout concerns samples a % n and b % n, so
  # tiling the n x n masks excludes both self and positive at once.
  allowed = jnp.tile(not_self, (2, 2))
  if negative_mask is not None:
    allowed = allowed & jnp.tile(negative_mask, (2, 2))
  u = jnp.concatenate([u1, u2])
  return (AnchorProblem(u, jnp.concatenate([pos_sim, pos_sim]), u, allowed),)


def use_streaming(streaming: bool | None, negatives: Array | None) -> bool:
  """Automatic choice: streamed only for a queue of >= STREAMING_THRESHOLD."""
  if negatives is None:
    return bool(streaming)
  return streaming_lib.resolve_streaming(streaming, jnp.shape(negatives)[0])


def solve(
    problem: AnchorProblem,
    scales: Sequence[Any],
    *,
    streaming: bool,
    chunk_size: int,
    floor: Array | None = None,
) -> streaming_lib.NegativeSums:
  """Negative log-sums of one anchor problem (dense or streamed)."""
  return streaming_lib.negative_log_sums(
      problem.anchors, problem.bank, jnp.stack(
          [jnp.asarray(s, jnp.float32) for s in scales]),
      mask=problem.mask, floor=floor, streaming=streaming,
      chunk_size=chunk_size)


def nce_from_log_negatives(
    log_negatives: Array, pos_logit: Array, count: Array) -> Array:
  """`[m]` `-log(pos / (pos + Ng))` from `log Ng`; 0 where count is 0."""
  has = count > 0
  safe = jnp.where(has, log_negatives, 0.0)
  return jnp.where(has, jax.nn.softplus(safe - pos_logit), 0.0)


def reduce_anchors(
    problems: Sequence[AnchorProblem],
    losses: Sequence[Array],
    sums: Sequence[streaming_lib.NegativeSums],
    **extra: Array,
) -> tuple[Array, Mapping[str, Array]]:
  """Mean loss over all anchors of all problems, and the shared aux."""
  cat = lambda xs: jnp.concatenate(list(xs))
  count = cat(s.count for s in sums)
  aux = dict(_common.contrastive_metrics(
      cat(p.pos_sim for p in problems),
      cat(s.sim_mean for s in sums),
      cat(s.sim_max for s in sums)))
  aux["num_negatives"] = jnp.mean(count)
  aux["frac_without_negatives"] = jnp.mean((count == 0).astype(jnp.float32))
  aux.update({k: jax.lax.stop_gradient(v) for k, v in extra.items()})
  return jnp.mean(cat(losses)), aux


def infonce(
    z1: Array,
    z2: Array,
    *,
    temperature: float,
    negatives: Array | None = None,
    symmetric: bool = False,
    negative_mask: Array | None = None,
    streaming: bool | None = None,
    chunk_size: int = 4096,
) -> tuple[Array, Mapping[str, Array]]:
  """InfoNCE / NT-Xent, `L_i = -log(pos_i / (pos_i + sum_j neg_ij))`.

  Conventions:
    * `negatives=None, symmetric=False` (SimCLR, Chen et al. 2020): the `2n`
      embeddings are anchors; the positive is the other view of the sample and
      the other `2n - 2` embeddings are negatives. Mean over `2n` anchors.
    * `negatives=None, symmetric=True` (CLIP, Radford et al. 2021): mean of
      the cross-entropies over the rows and over the columns of the `n x n`
      matrix `s(u1_i, u2_j) / t`.
    * `negatives=[k, d]` (MoCo, He et al. 2020): anchors `z1`, positives `z2`
      (pass keys already stop-gradiented), negatives the `k` queue rows.

  An anchor whose mask leaves no negative has loss `-log(pos / pos) = 0` and
  no gradient; it still counts in the mean (`aux['frac_without_negatives']`
  reports how many there were).

  Args:
    z1: `[n, d]` projections of view 1 (queries in queue mode), any float
      dtype; L2-normalised and computed in float32.
    z2: `[n, d]` projections of view 2 (keys in queue mode).
    temperature: `t > 0`.
    negatives: optional `[k, d]` queue (L2-normalised here too).
    symmetric: CLIP convention; not allowed together with `negatives`.
    negative_mask: optional bool mask, True = allowed negative. In-batch modes
      `[n, n]` at the sample level: `(i, j)` allows both views of sample `j` as
      negatives of both views of `i` (self and positive are always excluded;
      CLIP columns use the transpose). Queue mode `[n, k]`. Use it to remove
      suspected false negatives or restrict negatives to a cluster (MCL).
    streaming: None = streamed iff a queue with `k >= STREAMING_THRESHOLD`
      (16,384) is given; True/False force it (same values and gradients; the
      streamed form never holds the `[n, k]` matrix).
    chunk_size: queue rows per chunk of the streamed form.

  Returns:
    `(loss, aux)`: the scalar mean loss, and `pos_sim`, `neg_sim`, `top1`
    (positive beats every negative), `num_negatives` (mean per anchor),
    `frac_without_negatives`.

  Example:
    >>> z1, z2 = jnp.ones((4, 8)), jnp.ones((4, 8))
    >>> loss, aux = infonce(z1, z2, temperature=0.1)
    >>> queue = jax.random.normal(jax.random.key(0), (1024, 8))
    >>> loss, aux = infonce(z1, jax.lax.stop_gradient(z2), temperature=0.2,
    ...                     negatives=queue)
  """
  check_pair_inputs(z1, z2, temperature, negatives, negative_mask, streaming,
                    chunk_size)
  if symmetric and negatives is not None:
    raise ValueError(
        "symmetric=True is the CLIP convention over the in-batch n x n matrix"
        " and takes no queue; for a loss in both directions with MoCo queues"
        " use contrastive.losses.moco_filtered.dual_view_moco."
    )
  stream = use_streaming(streaming, negatives)
  problems = anchor_problems(z1, z2, negatives, negative_mask, symmetric)
  inv_t = 1.0 / jnp.asarray(temperature, jnp.float32)
  losses, sums = [], []
  for problem in problems:
    out = solve(problem, [inv_t], streaming=stream, chunk_size=chunk_size)
    losses.append(nce_from_log_negatives(
        out.log_sums[0], problem.pos_sim * inv_t, out.count))
    sums.append(out)
  return reduce_anchors(problems, losses, sums)
