"""How much each negative of a batch counts, per method (the loss explorer).

For two views `z1, z2 [n, d]` of a batch, anchor `i` is `u1_i`, its positive
`u2_i` and its negatives the other rows `u2_j`, `j != i` (the cross-view
negatives that every method below shares; `s_ij = s(u1_i, u2_j)`). The weight
of negative `j` for anchor `i` is

- for a loss (InfoNCE, DCL, HCL, CCL-K): `dL_i / d(s_ij / t)`, how hard the
  gradient pushes `u2_j` away from `u1_i`. For InfoNCE it is the softmax
  share `e^(s_ij/t) / (e^(s_ii/t) + sum_k e^(s_ik/t))`; DCL rescales it by
  `1 / (1 - tau_plus)` and the removed positive mass (Chuang et al. 2020);
  HCL tilts it towards similar negatives by `e^(beta s/t)` (Robinson et al.
  2021), with the gradient through its weights, so that easy negatives can
  get a negative weight; CCL-K multiplies it by the kernel-conditional
  weight `(n - 1) W_ji` of the anchor's condition (Tsai et al. 2022).
- for SimANS, the probability of drawing `u2_j` as anchor `i`'s negative,
  `p_ij ∝ exp(-a (s_ij - s_ii - b)^2)` (Zhou et al. 2022).

The losses are assembled from the library's own pieces
(`losses.debiased.log_debiased_negatives`, `losses.condition_kernel`,
`losses.conditional_weights`) in the in-batch, cross-view setting above, and
`jax.grad` gives the weights; tests check the assembled losses against
`losses.infonce` / `debiased_infonce` / `hard_negative_infonce` (queue mode
with the batch as queue) and `kernel_conditional_infonce`.
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from contrastive import losses
from contrastive.checks import l2_normalize
from contrastive.losses.debiased import log_debiased_negatives
from contrastive.losses.infonce import nce_from_log_negatives
from contrastive.negatives import simans

Array = jax.Array


class NegativeWeights(NamedTuple):
  """`similarity [n, n]` cosines `s(u1_i, u2_j)`; `weight [n, n]` of negative
  `j` for anchor `i`; `mask [n, n]` True off the diagonal (the negatives)."""

  similarity: Array
  weight: Array
  mask: Array


def _check(z1: Any, z2: Any, temperature: float | None = None) -> None:
  if jnp.ndim(z1) != 2 or jnp.shape(z1) != jnp.shape(z2):
    raise ValueError(
        "z1 and z2 must both be [n, d] with the same shape, got"
        f" {jnp.shape(z1)} and {jnp.shape(z2)}.")
  if jnp.shape(z1)[0] < 2:
    raise ValueError(f"a batch needs n >= 2 rows, got {jnp.shape(z1)[0]}.")
  if temperature is not None and not temperature > 0:
    raise ValueError(f"temperature must be > 0, got {temperature}.")


def _normalize(z1, z2) -> tuple[Array, Array]:
  u1, u2 = l2_normalize(jnp.asarray(z1)), l2_normalize(jnp.asarray(z2))
  return u1, u2


def infonce_family_losses(similarity: Array, *, temperature: float,
                          tau_plus: float | None = None,
                          beta: float | None = None) -> Array:
  """`[n]` per-anchor InfoNCE (both None), DCL (`tau_plus`) or HCL (`tau_plus`
  and `beta`) losses from the cross-view cosines `similarity [n, n]`, whose
  diagonal holds the positives and off-diagonal the negatives."""
  n = similarity.shape[0]
  off = ~jnp.eye(n, dtype=bool)
  pos = jnp.diagonal(similarity) / temperature
  count = jnp.full((n,), n - 1.0)

  def lse(scale):
    return jax.nn.logsumexp(
        jnp.where(off, scale * similarity / temperature, -jnp.inf), axis=1)

  if tau_plus is None:
    log_ng = lse(1.0)
  else:
    log_r = lse(1.0) if beta is None else (
        math.log(n - 1) + lse(1.0 + beta) - lse(beta))
    log_ng, _ = log_debiased_negatives(log_r, pos, count, tau_plus,
                                       temperature)
  return nce_from_log_negatives(log_ng, pos, count)


def _loss_weights(z1, z2, temperature, per_anchor: Callable[[Array], Array]
                  ) -> NegativeWeights:
  u1, u2 = _normalize(z1, z2)
  sim = u1 @ u2.T
  # Row i of the gradient of sum_i L_i is dL_i / ds_i. (only L_i uses row i).
  grad = jax.grad(lambda s: jnp.sum(per_anchor(s)))(sim)
  mask = ~jnp.eye(sim.shape[0], dtype=bool)
  return NegativeWeights(sim, jnp.where(mask, grad * temperature, 0.0), mask)


def infonce_weights(z1, z2, *, temperature: float = 0.5) -> NegativeWeights:
  """InfoNCE's weights: the softmax share of each negative.

  Args:
    z1: `[n, d]` anchors' projections (L2-normalised here).
    z2: `[n, d]` positives' projections; row `j != i` is a negative of `i`.
    temperature: `t > 0`.

  Example:
    >>> w = infonce_weights(z1, z2, temperature=0.5).weight  # [n, n]
  """
  _check(z1, z2, temperature)
  return _loss_weights(z1, z2, temperature, lambda s: infonce_family_losses(
      s, temperature=temperature))


def dcl_weights(z1, z2, *, temperature: float = 0.5,
                tau_plus: float = 0.1) -> NegativeWeights:
  """DCL's weights (Chuang et al. 2020); arguments as `infonce_weights`,
  `tau_plus` in [0, 1) the class prior. Zero where the clamp is active."""
  _check(z1, z2, temperature)
  return _loss_weights(z1, z2, temperature, lambda s: infonce_family_losses(
      s, temperature=temperature, tau_plus=tau_plus))


def hcl_weights(z1, z2, *, temperature: float = 0.5, tau_plus: float = 0.1,
                beta: float = 1.0) -> NegativeWeights:
  """HCL's weights (Robinson et al. 2021), gradient through `w = e^(beta s/t)`
  as in the reference code; `beta >= 0` the concentration."""
  _check(z1, z2, temperature)
  return _loss_weights(z1, z2, temperature, lambda s: infonce_family_losses(
      s, temperature=temperature, tau_plus=tau_plus, beta=beta))


def cclk_direction_losses(similarity: Array, same_view: Array, w: Array, *,
                          temperature: float) -> Array:
  """`[n]` CCL-K per-anchor losses of one direction (hard-negative / fair).

  Args:
    similarity: `[n, n]` cross-view cosines (positives on the diagonal).
    same_view: `[n, n]` same-view cosines (diagonal ignored).
    w: `[n, n]` conditional weights `W` of this direction's condition.
    temperature: `t`.
  """
  n = similarity.shape[0]
  eye = jnp.eye(n, dtype=bool)
  pos = jnp.diagonal(similarity) / temperature
  log_w_t = jnp.where(w.T > 0, jnp.log(jnp.where(w.T > 0, w.T, 1.0)), -jnp.inf)
  cross = jax.nn.logsumexp(similarity / temperature + log_w_t, axis=1)
  same = jax.nn.logsumexp(
      jnp.where(eye, -jnp.inf, same_view / temperature) + log_w_t, axis=1)
  log_neg = math.log(n - 1) + jnp.logaddexp(cross, same)
  return jnp.logaddexp(pos, log_neg) - pos


def cclk_weights(z1, z2, condition=None, *, temperature: float = 0.1,
                 kernel: str = "rbf", kernel_scale: float = 1.0,
                 lam: float = 1.0) -> NegativeWeights:
  """CCL-K's weights for the x direction (anchors `u1`), Tsai et al. 2022.

  `condition` `[n]` or `[n, p]` (e.g. speaker ids with
  `kernel='categorical'`: the fair mode); None conditions on `u1` itself
  (the hard-negative mode). The defaults are configs/cclk.py's.
  """
  _check(z1, z2, temperature)
  u1, u2 = _normalize(z1, z2)
  c = u1 if condition is None else jnp.asarray(condition)
  gram = losses.condition_kernel(c, kernel=kernel, kernel_scale=kernel_scale)
  w = losses.conditional_weights(gram, lam=lam)
  same = u1 @ u1.T
  return _loss_weights(z1, z2, temperature, lambda s: cclk_direction_losses(
      s, same, w, temperature=temperature))


def simans_weights(z1, z2, *, a: float = 0.5, b: float = 0.0
                   ) -> NegativeWeights:
  """SimANS's sampling probabilities over each anchor's negatives (Zhou et
  al. 2022): peaked where a negative is as similar as the positive (+ b)."""
  _check(z1, z2)
  u1, u2 = _normalize(z1, z2)
  n = u1.shape[0]
  mask = ~jnp.eye(n, dtype=bool)
  p = simans.simans_probabilities(u1, u2, u2, a=a, b=b, mask=mask)
  return NegativeWeights(u1 @ u2.T, p, mask)


WEIGHT_FNS: dict[str, Callable[..., NegativeWeights]] = {
    "infonce": infonce_weights,
    "dcl": dcl_weights,
    "hcl": hcl_weights,
    "cclk": cclk_weights,
    "simans": simans_weights,
}


def negative_weights(z1, z2, method: str, **hparams) -> NegativeWeights:
  """Dispatches to `WEIGHT_FNS[method]` with the method's hyperparameters.

  Example:
    >>> w = negative_weights(z1, z2, 'hcl', beta=2.0)
    >>> plt.scatter(w.similarity[w.mask], w.weight[w.mask])
  """
  if method not in WEIGHT_FNS:
    raise ValueError(f"unknown method {method!r}; valid methods:"
                     f" {', '.join(WEIGHT_FNS)}.")
  return WEIGHT_FNS[method](z1, z2, **hparams)
