"""Debiased (DCL) and hard-negative (HCL) InfoNCE.

DCL (Chuang et al., "Debiased Contrastive Learning", NeurIPS 2020) corrects
the negative term for the chance `tau_plus` that a negative shares the
anchor's class; HCL (Robinson et al., "Contrastive Learning with Hard Negative
Samples", ICLR 2021) also reweights negatives by `w_ij = neg_ij^beta`:

    R_i  = sum_j w_ij neg_ij / mean_j w_ij      (= sum_j neg_ij when beta = 0)
    Ng_i = max( (R_i - tau_plus N pos_i) / (1 - tau_plus),  N e^(-1/t) )
    L_i  = -log( pos_i / (pos_i + Ng_i) )

with `N` the number of allowed negatives of anchor `i`. Everything is done in
log space so that `t = 0.01` (logits up to 100, `e^100` overflows float32)
stays finite: `log R_i = log N + LSE_j((1+beta) s_ij/t) - LSE_j(beta s_ij/t)`,
two log-sum-exps that the streamed engine computes in one pass over a queue.
"""
from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp

from contrastive.losses import _common
from contrastive.losses.infonce import anchor_problems
from contrastive.losses.infonce import check_pair_inputs
from contrastive.losses.infonce import nce_from_log_negatives
from contrastive.losses.infonce import reduce_anchors
from contrastive.losses.infonce import solve
from contrastive.losses.infonce import use_streaming

Array = jax.Array

# Where the debiased sum is so close to zero that log(-expm1(x)) would have an
# infinite derivative; any such value loses to the clamp anyway.
_MAX_LOG_RATIO = -1e-30


def log_debiased_negatives(
    log_negatives: Array,
    pos_logit: Array,
    count: Array,
    tau_plus: Any,
    temperature: Any,
) -> tuple[Array, Array]:
  """`log Ng_i` of DCL/HCL from `log R_i` (or `log sum_j neg_ij`).

  Args:
    log_negatives: `[m]` log of the (reweighted) negative sum `R_i`.
    pos_logit: `[m]` `s(anchor_i, positive_i) / t`.
    count: `[m]` number of negatives `N` (must be > 0 where used).
    tau_plus: class prior in [0, 1).
    temperature: `t`.

  Returns:
    `(log_ng, clamped)`: `[m]` log of the clamped debiased term, and `[m]`
    bool, True where the clamp `N e^(-1/t)` is active.
  """
  log_n = jnp.log(count)
  log_clamp = log_n - 1.0 / temperature
  # x = log(tau N pos / R): the corrected sum R - tau N pos is positive iff
  # x < 0, and then equals R * (1 - e^x) = R * -expm1(x).
  x = jnp.log(tau_plus) + log_n + pos_logit - log_negatives
  has_mass = x < 0
  x = jnp.where(has_mass, jnp.minimum(x, _MAX_LOG_RATIO), -1.0)
  debiased = log_negatives + jnp.log(-jnp.expm1(x)) - jnp.log1p(-tau_plus)
  clamped = ~has_mass | (debiased < log_clamp)
  return jnp.where(clamped, log_clamp, debiased), clamped


def _check_debiased(tau_plus: Any, beta: Any) -> None:
  _common.check_tau_plus(tau_plus)
  if beta is not None:
    _common.check_non_negative("beta (the HCL concentration)", beta)


def _debiased_loss(z1, z2, temperature, tau_plus, beta, negatives,
                   negative_mask, stop_gradient_weights, streaming,
                   chunk_size):
  check_pair_inputs(z1, z2, temperature, negatives,
                                negative_mask, streaming, chunk_size)
  _check_debiased(tau_plus, beta)
  stream = use_streaming(streaming, negatives)
  (problem,) = anchor_problems(z1, z2, negatives, negative_mask)
  t = jnp.asarray(temperature, jnp.float32)
  scales = [1.0 / t] if beta is None else [(1.0 + beta) / t, beta / t]
  out = solve(problem, scales, streaming=stream,
                          chunk_size=chunk_size)
  has = out.count > 0
  count = jnp.where(has, out.count, 1.0)
  log_sums = jnp.where(has, out.log_sums, 0.0)
  if beta is None:
    log_r = log_sums[0]
  else:
    weighted, weights = log_sums[0], log_sums[1]
    if stop_gradient_weights:
      # d LSE((1+b) s/t) / ds = (1+b)/t * softmax; with w held fixed only the
      # 1/t part of that remains, so keep the value and scale the gradient.
      shrink = 1.0 / (1.0 + beta)
      weighted = weighted * shrink + jax.lax.stop_gradient(
          weighted * (1.0 - shrink))
      weights = jax.lax.stop_gradient(weights)
    log_r = jnp.log(count) + weighted - weights
  pos_logit = problem.pos_sim / t
  log_ng, clamped = log_debiased_negatives(log_r, pos_logit, count,
                                           tau_plus, t)
  losses = nce_from_log_negatives(log_ng, pos_logit, out.count)
  clamped_frac = jnp.sum(clamped & has) / jnp.maximum(jnp.sum(has), 1)
  return reduce_anchors([problem], [losses], [out],
                                    clamped_frac=clamped_frac)


def debiased_infonce(
    z1: Array,
    z2: Array,
    *,
    temperature: float,
    tau_plus: float,
    negatives: Array | None = None,
    negative_mask: Array | None = None,
    streaming: bool | None = None,
    chunk_size: int = 4096,
) -> tuple[Array, Mapping[str, Array]]:
  """Debiased contrastive loss, DCL (Chuang et al., NeurIPS 2020).

  `Ng_i = max((sum_j neg_ij - tau_plus N pos_i) / (1 - tau_plus), N e^(-1/t))`
  and `L_i = -log(pos_i / (pos_i + Ng_i))`; `tau_plus = 0` is InfoNCE.
  Conventions, masks and streaming as in `infonce` (SimCLR with
  `negatives=None`, `N = 2n - 2` as in the reference code; MoCo queue with
  `negatives=[k, d]`, `N = k`); with a mask, `N` counts the allowed negatives
  of each anchor, and an anchor without any has loss 0.

  Args:
    z1: `[n, d]` projections of view 1 (queries in queue mode).
    z2: `[n, d]` projections of view 2 (keys in queue mode).
    temperature: `t > 0` (reference code: 0.5).
    tau_plus: class prior in [0, 1) (reference code: 0.1).
    negatives: optional `[k, d]` queue.
    negative_mask: optional bool `[n, n]` (sample level) or `[n, k]`.
    streaming: None = automatic (queue of >= 16,384), or force True/False.
    chunk_size: queue rows per chunk of the streamed form.

  Returns:
    `(loss, aux)`; aux as `infonce` plus `clamped_frac`, the fraction of
    anchors whose debiased term hit the clamp `N e^(-1/t)`.

  Example:
    >>> z1 = jax.random.normal(jax.random.key(0), (8, 16))
    >>> z2 = jax.random.normal(jax.random.key(1), (8, 16))
    >>> loss, aux = debiased_infonce(z1, z2, temperature=0.5, tau_plus=0.1)
  """
  return _debiased_loss(z1, z2, temperature, tau_plus, None, negatives,
                        negative_mask, False, streaming, chunk_size)


def hard_negative_infonce(
    z1: Array,
    z2: Array,
    *,
    temperature: float,
    tau_plus: float,
    beta: float,
    negatives: Array | None = None,
    negative_mask: Array | None = None,
    stop_gradient_weights: bool = False,
    streaming: bool | None = None,
    chunk_size: int = 4096,
) -> tuple[Array, Mapping[str, Array]]:
  """Hard-negative contrastive loss, HCL (Robinson et al., ICLR 2021).

  Negatives are reweighted by `w_ij = exp(beta s_ij / t)` (normalised to mean
  one over each anchor's negatives) before the DCL correction; `beta = 0` is
  DCL and `tau_plus = 0` the hardness-weighted InfoNCE. As in the reference
  code, gradients flow through `w` unless `stop_gradient_weights=True`.
  Conventions, masks and streaming as in `debiased_infonce`.

  Args:
    z1: `[n, d]` projections of view 1 (queries in queue mode).
    z2: `[n, d]` projections of view 2 (keys in queue mode).
    temperature: `t > 0` (reference code: 0.5).
    tau_plus: class prior in [0, 1) (reference code: 0.1).
    beta: concentration `>= 0` (paper's best on STL-10: 1.0).
    negatives: optional `[k, d]` queue.
    negative_mask: optional bool `[n, n]` (sample level) or `[n, k]`.
    stop_gradient_weights: treat `w` as constants in the backward pass.
    streaming: None = automatic (queue of >= 16,384), or force True/False.
    chunk_size: queue rows per chunk of the streamed form.

  Returns:
    `(loss, aux)` as `debiased_infonce`.

  Example:
    >>> z1 = jax.random.normal(jax.random.key(0), (8, 16))
    >>> z2 = jax.random.normal(jax.random.key(1), (8, 16))
    >>> loss, aux = hard_negative_infonce(z1, z2, temperature=0.5,
    ...                                   tau_plus=0.1, beta=1.0)
  """
  return _debiased_loss(z1, z2, temperature, tau_plus, beta, negatives,
                        negative_mask, stop_gradient_weights, streaming,
                        chunk_size)
