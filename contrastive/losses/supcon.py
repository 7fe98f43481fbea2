"""Supervised contrastive loss, SupCon (Khosla et al., NeurIPS 2020).

The `L_out` form of the paper (its eq. 2, the one it recommends)::

    L_i = -1/|P(i)| sum_{p in P(i)} log(exp(s_ip/t) / sum_{a != i} exp(s_ia/t))

where `P(i)` are the other embeddings with anchor `i`'s label. The loss is
the mean of `L_i` over the anchors that have at least one positive.
"""
from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp

from contrastive import checks
from contrastive.losses import _common
from contrastive.losses import streaming as streaming_lib

Array = jax.Array


def _flatten_views(z: Any, labels: Any) -> tuple[Array, Array]:
  """Checks shapes; `[n, v, d]` and `[n]` labels become `[n*v, d]`, `[n*v]`."""
  if jnp.ndim(z) not in (2, 3):
    raise ValueError(
        "z must have rank 2 ([m, d] embeddings) or 3 ([n, v, d]: v views of"
        f" n samples), got shape {jnp.shape(z)}."
    )
  checks.check_rank("labels", labels, 1, "one label per sample")
  if jnp.shape(labels)[0] != jnp.shape(z)[0]:
    raise ValueError(
        f"labels must have one entry per row of z ({jnp.shape(z)[0]}), got"
        f" shape {jnp.shape(labels)}."
    )
  dtype = jnp.result_type(labels)
  if not (jnp.issubdtype(dtype, jnp.integer) or dtype == jnp.bool_):
    raise ValueError(f"labels must be integers or booleans, got {dtype}.")
  z, labels = jnp.asarray(z), jnp.asarray(labels)
  if z.ndim == 3:
    n, views, d = z.shape
    # Sample i's views are rows i*v .. i*v + v-1, so each label repeats v times.
    return z.reshape(n * views, d), jnp.repeat(labels, views)
  return z, labels


def supervised_infonce(
    z: Array,
    labels: Array,
    *,
    temperature: float,
) -> tuple[Array, Mapping[str, Array]]:
  """SupCon `L_out` over a set of labelled embeddings.

  Anchors with no positive (a label seen only once) are left out of the mean;
  if no anchor has a positive the loss is 0 (with zero gradient) and
  `aux['no_positive_pairs']` is 1.

  Args:
    z: `[m, d]` embeddings (e.g. the `2n` views concatenated), or `[n, v, d]`
      (`v` views per sample, flattened here); any float dtype, L2-normalised
      and computed in float32.
    labels: `[m]` (or `[n]` for 3-D `z`) integer class labels.
    temperature: `t > 0` (paper: 0.1).

  Returns:
    `(loss, aux)` with `pos_sim` and `neg_sim` (mean cosine with positives /
    with other-label embeddings, averaged over anchors that have some),
    `top1` (fraction of anchors with a positive whose nearest other embedding
    shares their label), `num_anchors` (anchors with a positive) and
    `no_positive_pairs`.

  Example:
    >>> z = jax.random.normal(jax.random.key(0), (4, 2, 16))  # 2 views
    >>> loss, aux = supervised_infonce(z, jnp.array([0, 1, 0, 2]),
    ...                                temperature=0.1)
  """
  z, labels = _flatten_views(z, labels)
  _common.check_positive("temperature", temperature)
  u = checks.l2_normalize(z)
  m = u.shape[0]
  sims = u @ u.T
  not_self = ~jnp.eye(m, dtype=bool)
  same = (labels[:, None] == labels[None, :]) & not_self
  other = (labels[:, None] != labels[None, :])
  logits = sims / jnp.asarray(temperature, jnp.float32)
  log_denominator = streaming_lib.masked_logsumexp(logits, not_self)
  num_pos = jnp.sum(same, axis=1, dtype=jnp.float32)
  has_pos = num_pos > 0
  safe_num_pos = jnp.maximum(num_pos, 1.0)
  mean_pos_logit = jnp.sum(jnp.where(same, logits, 0.0), axis=1) / safe_num_pos
  safe_denominator = jnp.where(has_pos, log_denominator, 0.0)
  per_anchor = jnp.where(has_pos, safe_denominator - mean_pos_logit, 0.0)
  num_anchors = jnp.sum(has_pos, dtype=jnp.float32)
  loss = jnp.sum(per_anchor) / jnp.maximum(num_anchors, 1.0)
  aux = _supcon_metrics(jax.lax.stop_gradient(sims), same, other, not_self,
                        has_pos, num_pos, num_anchors)
  return loss, aux


def _supcon_metrics(sims, same, other, not_self, has_pos, num_pos,
                    num_anchors) -> Mapping[str, Array]:
  num_neg = jnp.sum(other, axis=1, dtype=jnp.float32)
  has_neg = num_neg > 0
  pos_mean = jnp.sum(jnp.where(same, sims, 0.0), 1) / jnp.maximum(num_pos, 1)
  neg_mean = jnp.sum(jnp.where(other, sims, 0.0), 1) / jnp.maximum(num_neg, 1)
  nearest = jnp.argmax(jnp.where(not_self, sims, -jnp.inf), axis=1)
  hit = jnp.take_along_axis(same, nearest[:, None], axis=1)[:, 0] & has_pos
  safe = jnp.maximum(num_anchors, 1.0)
  return {
      "pos_sim": jnp.sum(jnp.where(has_pos, pos_mean, 0.0)) / safe,
      "neg_sim": jnp.sum(jnp.where(has_neg, neg_mean, 0.0)) / jnp.maximum(
          jnp.sum(has_neg), 1),
      "top1": jnp.sum(hit) / safe,
      "num_anchors": num_anchors,
      "no_positive_pairs": (num_anchors == 0).astype(jnp.float32),
  }
