"""SimANS: sampling ambiguous negatives (Zhou et al., EMNLP 2022).

SimANS samples the negatives of a query around its positive's score: neither
the hardest candidates (likely false negatives) nor the easiest (no signal).
Candidate `j` of query `i` is drawn with probability

    p_ij ∝ exp( -a * (s(q_i, d_j) - s(q_i, d+_i) - b)^2 )

among the allowed candidates, optionally only the `top_n` most similar ones
(the paper samples among the retriever's top-ranked documents). `s` is the
cosine similarity (the library's convention; the paper's retrievers use raw
dot products, whose scale changes what a given `a` means). Defaults a = 0.5,
b = 0 as in `docs/losses.md`.

Everything here is a sampling step and runs under `stop_gradient`. The
`[n, k]` probabilities are materialised: use `top_n` and a queue of moderate
size, or mine a candidate set first (`mining.topk_hard_negatives`).
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from contrastive import checks
from contrastive.negatives import mining

Array = jax.Array


class SimANSSample(NamedTuple):
  """Sampled negatives and the distribution they came from.

  Attributes:
    indices: `[n, num_samples]` int32 candidate rows, distinct per anchor;
      -1 where not valid.
    valid: `[n, num_samples]` bool, False where fewer than `num_samples`
      candidates had a non-zero probability.
    probabilities: `[n, k]` float32 sampling probabilities (rows sum to 1, or
      to 0 for an anchor without any allowed candidate), e.g. for plotting
      against the similarities.
  """

  indices: Array
  valid: Array
  probabilities: Array


def simans_log_weights(
    q: Array,
    positive: Array,
    candidates: Array,
    *,
    a: float = 0.5,
    b: float = 0.0,
    top_n: int | None = None,
    mask: Array | None = None,
) -> Array:
  """`[n, k]` unnormalised log-probabilities `-a (s_ij - s_i+ - b)^2`.

  Excluded candidates (masked, or outside the `top_n`) get -inf.

  Args:
    q: `[n, d]` queries.
    positive: `[n, d]` the positive of each query.
    candidates: `[k, d]` candidate negatives.
    a: sharpness of the distribution around the positive's score (>= 0; 0 is
      uniform sampling).
    b: offset: the peak sits at `s_i+ + b`.
    top_n: optionally keep only the `top_n` most similar allowed candidates.
    mask: optional `[n, k]` or `[k]` bool, True = allowed.

  Example:
    >>> logw = simans_log_weights(q, pos, keys, a=0.5, b=0.0, top_n=100)
  """
  mining._check_inputs(q, candidates, mask)  # pylint: disable=protected-access
  if jnp.shape(positive) != jnp.shape(q):
    raise ValueError(
        f"positive must have the shape of q {jnp.shape(q)}, got"
        f" {jnp.shape(positive)}."
    )
  if checks.is_concrete(a) and not a >= 0:
    raise ValueError(f"a must be >= 0, got {a}.")
  k = candidates.shape[0]
  if top_n is not None and not 1 <= top_n <= k:
    raise ValueError(f"top_n must lie in [1, k={k}] or be None, got {top_n}.")
  if mask is None:
    mask = jnp.ones((k,), bool)
  return _log_weights_jit(q, positive, candidates, a, b, jnp.asarray(mask),
                          top_n)


@functools.partial(jax.jit, static_argnums=6)
def _log_weights_jit(q, positive, candidates, a, b, mask, top_n):
  q, positive, candidates = jax.lax.stop_gradient(
      (checks.l2_normalize(q), checks.l2_normalize(positive),
       checks.l2_normalize(candidates))
  )
  sim = q @ candidates.T
  pos_sim = jnp.sum(q * positive, axis=-1, keepdims=True)
  log_w = -a * jnp.square(sim - pos_sim - b)
  allowed = jnp.broadcast_to(mask, sim.shape)
  if top_n is not None:
    allowed = mining.topk_mask(q, candidates, top_n, mask=mask)
  return jnp.where(allowed, log_w, -jnp.inf)


def simans_probabilities(
    q: Array,
    positive: Array,
    candidates: Array,
    *,
    a: float = 0.5,
    b: float = 0.0,
    top_n: int | None = None,
    mask: Array | None = None,
) -> Array:
  """`[n, k]` SimANS sampling probabilities over the allowed candidates.

  Arguments as in `simans_log_weights`. Rows sum to 1; an anchor without any
  allowed candidate gets a row of zeros (never NaN).

  Example:
    >>> p = simans_probabilities(q, pos, keys, top_n=100, mask=queue.valid)
  """
  log_w = simans_log_weights(
      q, positive, candidates, a=a, b=b, top_n=top_n, mask=mask
  )
  return _normalize(log_w)


def _normalize(log_w: Array) -> Array:
  """Softmax over the last axis that maps an all -inf row to zeros."""
  row_max = jnp.max(log_w, axis=-1, keepdims=True)
  w = jnp.exp(log_w - jnp.where(jnp.isfinite(row_max), row_max, 0.0))
  return w / jnp.maximum(jnp.sum(w, axis=-1, keepdims=True), 1e-30)


def simans_sample(
    rng: Array,
    q: Array,
    positive: Array,
    candidates: Array,
    num_samples: int,
    *,
    a: float = 0.5,
    b: float = 0.0,
    top_n: int | None = None,
    mask: Array | None = None,
) -> SimANSSample:
  """Draws `num_samples` distinct negatives per anchor with SimANS weights.

  Sampling without replacement by the Gumbel-top-k trick: the `num_samples`
  largest of `log p_ij + Gumbel` form a sequential draw without replacement
  from `p_i` (the first index is exactly distributed as `p_i`).

  Args:
    rng: a PRNG key; the same key gives the same samples.
    q, positive, candidates, a, b, top_n, mask: as in `simans_log_weights`.
    num_samples: negatives per anchor, `1 <= num_samples <= k`.

  Returns:
    `SimANSSample(indices, valid, probabilities)`.

  Example:
    >>> s = simans_sample(rng, q, pos, keys, 16, top_n=200, mask=queue.valid)
    >>> negatives = keys[jnp.maximum(s.indices, 0)]  # [n, 16, d]; use s.valid
  """
  k = candidates.shape[0] if jnp.ndim(candidates) == 2 else 0
  if not 1 <= num_samples <= k:
    raise ValueError(f"num_samples must lie in [1, k={k}], got {num_samples}.")
  log_w = simans_log_weights(
      q, positive, candidates, a=a, b=b, top_n=top_n, mask=mask
  )
  # The normalising constant of p_i does not change the ranking: perturb the
  # log-weights directly (excluded candidates stay at -inf).
  perturbed = log_w + jax.random.gumbel(rng, log_w.shape)
  top, idx = jax.lax.top_k(perturbed, num_samples)
  valid = top > -jnp.inf
  indices = jnp.where(valid, idx, -1).astype(jnp.int32)
  return SimANSSample(indices, valid, _normalize(log_w))
