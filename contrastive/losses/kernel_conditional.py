"""Kernel-conditional contrastive learning, CCL-K (Tsai et al., ICLR 2022).

Conditional contrastive objectives draw negatives (fair and hard-negative
learning) or positives (weakly supervised learning) from samples whose
condition `c` is similar to the anchor's. CCL-K replaces that sampling, which
fails when a condition value has few samples in the batch, by weighting every
in-batch sample with the kernel conditional embedding weights
`W = (K_Z + lam I)^-1 K_Z` (see `kernels.conditional_weights`).

With `S_xy[i, j] = s(u1_i, u2_j) / t`, `S_xx[i, j] = s(u1_i, u1_j) / t`
(diagonal excluded), `K_xy = exp(S_xy)`, `K_xx = exp(S_xx)`:

  fair / hard_negative:
    L_x = -mean_i [S_xy[i,i] - log(exp(S_xy[i,i])
                                   + (n-1) ([K_xy W]_ii + [K_xx W]_ii))]
  weakly_supervised:
    pos_i = [K_xx W]_ii + [K_xy W]_ii
    L_x = -mean_i log(pos_i / (pos_i + sum_j K_xy[i,j] + sum_j K_xx[i,j]))

and `L_y` the same with the views swapped (`S_yx = S_xy^T`, `S_yy`, and the
second view's condition); `L = (L_x + L_y) / 2`.

Everything is evaluated in log space (`[K W]_ii = sum_j exp(S[i,j] + log
W[j,i])` as a log-sum-exp), so a temperature of 0.01 cannot overflow; the
reference code instead clamps the denominators to [1e-7, 1e20], which only
differs where those clamps bind. In weakly supervised mode an anchor that no
other sample weighs (`pos_i = 0`, e.g. a categorical condition seen once in
the batch) has an undefined `log 0`; the reference clamps `pos_i` to 1e-7,
here such anchors are left out of the mean (and counted in
`aux['no_positive_frac']`), as SupCon does with anchors without positives.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp

from contrastive import checks
from contrastive.losses import _common
from contrastive.losses import kernels

Array = jax.Array

MODES = ("hard_negative", "fair", "weakly_supervised")


def _log_weights(w: Array) -> Array:
  """log W with zero weights as a large negative logit (finite gradients)."""
  positive = w > 0
  return jnp.where(positive, jnp.log(jnp.where(positive, w, 1.0)),
                   _common.MASKED_LOGIT)


def _direction(
    s_cross: Array, s_same: Array, w: Array, mode: str
) -> tuple[Array, Array]:
  """Per-anchor losses of one direction and a mask of anchors that count.

  Args:
    s_cross: `[n, n]` cross-view logits (`S_xy` for the x direction).
    s_same: `[n, n]` same-view logits, diagonal already masked.
    w: `[n, n]` conditional weights of this direction's condition.
    mode: one of MODES.
  """
  n = s_cross.shape[0]
  # [A W]_ii = sum_j A[i, j] W[j, i]: add log W transposed, reduce rows.
  log_w_t = _log_weights(w).T
  log_cross_w = jax.nn.logsumexp(s_cross + log_w_t, axis=1)
  log_same_w = jax.nn.logsumexp(s_same + log_w_t, axis=1)
  log_weighted = jnp.logaddexp(log_cross_w, log_same_w)
  if mode == "weakly_supervised":
    log_rest = jax.nn.logsumexp(
        jnp.concatenate([s_cross, s_same], axis=1), axis=1)
    per_anchor = jnp.logaddexp(log_weighted, log_rest) - log_weighted
    # pos_i = 0 when no other sample has weight for anchor i (e.g. a
    # categorical condition seen once in the batch): log(0) is undefined, so
    # such an anchor has no positive and is left out of the mean.
    has_positive = jnp.any(w > 0, axis=0)
  else:
    pos = jnp.diagonal(s_cross)
    log_neg = math.log(n - 1) + log_weighted
    per_anchor = jnp.logaddexp(pos, log_neg) - pos
    has_positive = jnp.ones((n,), bool)
  return per_anchor, has_positive


def _masked_mean(x: Array, mask: Array) -> Array:
  count = jnp.sum(mask.astype(jnp.float32))
  return jnp.sum(jnp.where(mask, x, 0.0)) / jnp.maximum(count, 1.0)


def _conditions(
    condition: Any, u1: Array, u2: Array, mode: str, n: int
) -> tuple[Any, Any]:
  """The (x-direction, y-direction) conditions, validated."""
  if condition is None:
    if mode != "hard_negative":
      raise ValueError(
          f"mode {mode!r} needs a condition ([n] or [n, p] per sample, or a"
          " pair of them, one per view); only 'hard_negative' defaults to"
          " the representations themselves."
      )
    return jax.lax.stop_gradient(u1), jax.lax.stop_gradient(u2)
  if isinstance(condition, (tuple, list)):
    if len(condition) != 2:
      raise ValueError(
          "condition given as a sequence must be a pair (condition of view 1,"
          f" condition of view 2), got {len(condition)} items."
      )
    cx, cy = condition
  else:
    cx = cy = condition
  kernels.check_condition("condition", cx, n)
  kernels.check_condition("condition", cy, n)
  return cx, cy


def kernel_conditional_infonce(
    z1: Array,
    z2: Array,
    condition: Array | Sequence[Array] | None = None,
    *,
    temperature: float = 0.5,
    kernel: str = "rbf",
    lam: float = 100.0,
    mode: str = "hard_negative",
    kernel_scale: float = 500.0,
    weight_threshold: float = 1e-6,
) -> tuple[Array, Mapping[str, Array]]:
  """CCL-K loss of two views (Tsai et al., ICLR 2022), symmetric in the views.

  Args:
    z1: `[n, d]` projections of the first view (L2-normalised here).
    z2: `[n, d]` projections of the second view.
    condition: the conditioning variable: `[n]` or `[n, p]` shared by both
      views (an attribute, a speaker or subject id), or a pair
      `(c1, c2)` with one per view (as the reference does for hard negatives,
      conditioning each direction on its own view's backbone features). It is
      used without gradient. `None` is allowed only with `mode='hard_negative'`
      and then means this library's choice: each direction conditions on its
      own normalised projections, `stop_gradient(u1)` and `stop_gradient(u2)`.
    temperature: `t` > 0 of the similarity logits.
    kernel: kernel on conditions, a key of `kernels.KERNELS`.
    lam: ridge `lambda` > 0 of `W = (K_Z + lam I)^-1 K_Z`.
    mode: 'hard_negative' (negatives weighted by similar representations),
      'fair' (negatives weighted by similar sensitive attribute; same formula)
      or 'weakly_supervised' (positives weighted by similar attribute).
    kernel_scale: the `temp_z` > 0 of the kernel.
    weight_threshold: entries of `W` below it are set to 0.

  The defaults are the reference's hard-negative ImageNet-100 run (RBF,
  lambda 100, temp_z 500, batch 512, t 0.5 its script's default), where the
  condition is 2048-d ResNet-50 features; on unit-norm projections (squared
  distances <= 4) an RBF with temp_z 500 is nearly constant, so tune
  `kernel_scale` when conditioning on `u`. The reference's fair run (Colored
  MNIST) used RBF with lambda 0.01, and its weakly supervised runs used the
  cosine kernel with lambda 0.01.

  Returns:
    `(loss, aux)`: the float32 scalar loss and a dict with `pos_sim`,
    `neg_sim`, `top1` (over the `2n` anchors, positive = the other view,
    negatives = the other `2n - 2` embeddings, unweighted), `w_nonzero`
    (fraction of non-zero off-diagonal weights), `w_row_sum` (mean row sum of
    `W`) and `no_positive_frac` (weakly supervised: fraction of anchors left
    out of the mean because no other sample carries weight; 0 otherwise).

  Example:
    >>> loss, aux = kernel_conditional_infonce(
    ...     z1, z2, speaker_ids, mode='fair', kernel='categorical', lam=0.01,
    ...     temperature=0.1)
  """
  _common.check_choice("mode", mode, MODES)
  _common.check_choice("kernel", kernel, kernels.KERNELS)
  checks.check_rank("z1", z1, 2, "[n, d]")
  checks.check_rank("z2", z2, 2, "[n, d]")
  checks.check_same_shape("z1", z1, "z2", z2)
  _common.check_positive("temperature", temperature)
  _common.check_positive("lam", lam)
  _common.check_positive("kernel_scale", kernel_scale)
  n = jnp.shape(z1)[0]
  if n < 2:
    raise ValueError(f"CCL-K needs a batch of n >= 2 samples, got n = {n}.")

  u1 = checks.l2_normalize(z1)
  u2 = checks.l2_normalize(z2)
  cx, cy = _conditions(condition, u1, u2, mode, n)

  def weights(c):
    gram = kernels.condition_kernel(
        jax.lax.stop_gradient(c), kernel=kernel, kernel_scale=kernel_scale)
    return kernels.conditional_weights(
        gram, lam=lam, threshold=weight_threshold)

  w_x = weights(cx)
  w_y = w_x if cy is cx else weights(cy)

  inv_t = 1.0 / jnp.asarray(temperature, jnp.float32)
  diag = jnp.eye(n, dtype=bool)
  cos_xy = u1 @ u2.T
  cos_xx = u1 @ u1.T
  cos_yy = u2 @ u2.T
  s_xy = cos_xy * inv_t
  s_xx = jnp.where(diag, _common.MASKED_LOGIT, cos_xx * inv_t)
  s_yy = jnp.where(diag, _common.MASKED_LOGIT, cos_yy * inv_t)

  l_x, keep_x = _direction(s_xy, s_xx, w_x, mode)
  l_y, keep_y = _direction(s_xy.T, s_yy, w_y, mode)
  loss = 0.5 * (_masked_mean(l_x, keep_x) + _masked_mean(l_y, keep_y))

  # Metrics over the 2n anchors of the SimCLR convention, unweighted.
  pos = jnp.diagonal(cos_xy)
  neg_x = jnp.concatenate([cos_xy, cos_xx], axis=1)  # Anchors u1_i.
  neg_y = jnp.concatenate([cos_xy.T, cos_yy], axis=1)  # Anchors u2_i.
  neg_mask = jnp.concatenate([~diag, ~diag], axis=1)
  negs = jnp.concatenate([neg_x, neg_y], axis=0)
  mask = jnp.concatenate([neg_mask, neg_mask], axis=0)
  neg_mean = jnp.sum(jnp.where(mask, negs, 0.0), axis=1) / (2 * n - 2)
  neg_max = jnp.max(jnp.where(mask, negs, -jnp.inf), axis=1)
  aux = dict(_common.contrastive_metrics(
      jnp.concatenate([pos, pos]), neg_mean, neg_max))
  both_w = jnp.stack([w_x, w_y])
  aux["w_nonzero"] = jnp.mean((both_w > 0).astype(jnp.float32)) * n / (n - 1)
  aux["w_row_sum"] = jnp.mean(jnp.sum(both_w, axis=-1))
  aux["no_positive_frac"] = 1.0 - 0.5 * (
      jnp.mean(keep_x.astype(jnp.float32))
      + jnp.mean(keep_y.astype(jnp.float32)))
  return loss, aux
