"""InfoNCE over SimANS-sampled negatives (Zhou et al., EMNLP 2022).

SimANS trains with the usual contrastive loss, but each anchor's negatives
are `num_samples` candidates drawn (without replacement) with probability

    p_ij ∝ exp( -a * (s(q_i, d_j) - s(q_i, d+_i) - b)^2 )

among its allowed candidates, optionally only the `top_n` most similar.
The sampler is `contrastive.negatives.simans.simans_sample`; here its draw
becomes a negative mask for `infonce`, so the loss is InfoNCE's, in its
SimCLR or MoCo convention, over the sampled negatives only. The draw is a
sampling step (no gradient flows through the probabilities), taken from
`rng`.
"""
from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp

from contrastive.losses.infonce import check_pair_inputs
from contrastive.losses.infonce import infonce
from contrastive.negatives import simans as sampler

Array = jax.Array


def sampled_mask(sample: sampler.SimANSSample, num_candidates: int) -> Array:
  """`[n, k]` bool, True at each anchor's valid sampled candidates."""
  n = sample.indices.shape[0]
  rows = jnp.arange(n)[:, None]
  # Invalid draws point past the end and are dropped by the scatter.
  cols = jnp.where(sample.valid, sample.indices, num_candidates)
  return jnp.zeros((n, num_candidates), bool).at[rows, cols].set(
      True, mode="drop")


def simans_infonce(
    z1: Array,
    z2: Array,
    rng: Array,
    *,
    temperature: float,
    num_samples: int,
    a: float = 0.5,
    b: float = 0.0,
    top_n: int | None = None,
    negatives: Array | None = None,
    negative_mask: Array | None = None,
    streaming: bool | None = None,
) -> tuple[Array, Mapping[str, Array]]:
  """InfoNCE whose negatives are drawn per anchor by SimANS.

  Conventions (as `infonce`):
    * `negatives=None` (SimCLR): anchor `i` draws `num_samples` of the other
      samples `j != i`, scored by `s(u1_i, u2_j)` against `s(u1_i, u2_i)`;
      both views of each drawn sample are negatives of both views of `i`.
    * `negatives=[k, d]` (MoCo): query `z1_i` draws `num_samples` queue rows,
      scored against its key `z2_i`.

  Args:
    z1: `[n, d]` projections of view 1 (queries in queue mode).
    z2: `[n, d]` projections of view 2 (keys in queue mode; pass them
      stop-gradiented there).
    rng: PRNG key of the draw (the same key, the same negatives).
    temperature: `t > 0`.
    num_samples: negatives drawn per anchor, `1 <= num_samples <=` the
      number of candidates (`n - 1` in-batch, `k` in queue mode).
    a: sharpness around the positive's score (>= 0; 0 = uniform). Scores are
      cosines in [-1, 1] (the paper's are raw retriever scores), so useful
      values are larger than the paper's.
    b: offset of the peak from the positive's score.
    top_n: draw only among the `top_n` most similar allowed candidates.
    negatives: optional `[k, d]` queue.
    negative_mask: optional bool mask of allowed candidates, `[n, n]` sample
      level in-batch or `[n, k]` for a queue (e.g. `queue.valid` broadcast).
    streaming: as in `infonce` (queue mode).

  Returns:
    `(loss, aux)`: InfoNCE's aux (`neg_sim` over the drawn negatives), plus
    `simans_valid_frac`, the fraction of draws that found a candidate.

  Example:
    >>> loss, aux = simans_infonce(q, k, rng, temperature=0.2,
    ...                            num_samples=256, a=8.0, top_n=1024,
    ...                            negatives=queue.keys,
    ...                            negative_mask=queue_mask)
  """
  check_pair_inputs(z1, z2, temperature, negatives, negative_mask, streaming)
  n = jnp.shape(z1)[0]
  if negatives is None:
    candidates = z2
    allowed = ~jnp.eye(n, dtype=bool)
    if negative_mask is not None:
      allowed = allowed & negative_mask
  else:
    candidates, allowed = negatives, negative_mask  # None: every row
  num_candidates = jnp.shape(candidates)[0] - (1 if negatives is None else 0)
  if not 1 <= num_samples <= num_candidates:
    raise ValueError(
        f"num_samples must lie in [1, {num_candidates}] (the candidates per"
        f" anchor: {'n - 1 in-batch' if negatives is None else 'k'}), got"
        f" {num_samples}.")
  sample = sampler.simans_sample(
      rng, z1, z2, candidates, num_samples, a=a, b=b, top_n=top_n,
      mask=allowed)
  drawn = sampled_mask(sample, jnp.shape(candidates)[0])
  loss, aux = infonce(z1, z2, temperature=temperature, negatives=negatives,
                      negative_mask=drawn, streaming=streaming)
  return loss, {**aux, "simans_valid_frac": jnp.mean(
      sample.valid.astype(jnp.float32))}
