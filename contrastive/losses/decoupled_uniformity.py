"""Decoupled uniformity with an optional kernel prior (Dufumier et al., 2023).

"Integrating Prior Knowledge in Contrastive Learning with Kernel" (ICML 2023).
Each sample's `v` views are averaged into a centroid `mu_i` and the loss is
the uniformity (Wang and Isola, 2020) of the centroids:

  L = log( mean_{i<j} exp(-t ||mu_i - mu_j||^2) ).

There is no positive-negative coupling: a centroid is long (and the loss low)
only when its views agree, so alignment enters through the centroids. With a
prior `c` per sample (weak attributes, or a generative model's
representation) and a kernel `K` on it, the centroids become the kernel
conditional mean embeddings `mu = alpha @ mean_views(u)` with
`alpha = (K + lam I)^-1 K`, without gradient through `alpha`.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp

from contrastive import checks
from contrastive.losses import _common
from contrastive.losses import kernels

Array = jax.Array

_HIGHEST = jax.lax.Precision.HIGHEST


def _view_metrics(u: Array) -> dict[str, Array]:
  """pos_sim / neg_sim / top1 over the `n v` views taken as anchors.

  The positives of view `(i, a)` are the other views `(i, b)`; its negatives
  all views of the other samples. With `v = 2` this is the SimCLR convention
  (one positive, `2n - 2` negatives); with more views `top1` asks the mean
  positive similarity to beat every negative.
  """
  n, v, d = u.shape
  flat = u.reshape(n * v, d)
  cos = jnp.matmul(flat, flat.T, precision=_HIGHEST)
  sample = jnp.repeat(jnp.arange(n), v)
  same = sample[:, None] == sample[None, :]
  not_self = ~jnp.eye(n * v, dtype=bool)
  pos_mask = same & not_self
  pos = jnp.sum(jnp.where(pos_mask, cos, 0.0), axis=1) / (v - 1)
  neg_mean = jnp.sum(jnp.where(same, 0.0, cos), axis=1) / ((n - 1) * v)
  neg_max = jnp.max(jnp.where(same, -jnp.inf, cos), axis=1)
  return dict(_common.contrastive_metrics(pos, neg_mean, neg_max))


def decoupled_uniformity(
    views: Array,
    *,
    prior: Array | None = None,
    kernel: str | None = None,
    lam: float | None = None,
    t: float = 2.0,
    kernel_scale: float = 1.0,
) -> tuple[Array, Mapping[str, Array]]:
  """Decoupled uniformity loss of multi-view embeddings (Dufumier et al.).

  Args:
    views: `[n, v, d]` embeddings of `v >= 2` views of `n >= 2` samples,
      L2-normalised here.
    prior: optional `[n]` or `[n, p]` prior per sample (weak attributes, a
      generative model's representation); used without gradient. Needs
      `kernel`.
    kernel: kernel on the prior, a key of `kernels.KERNELS`; needs `prior`.
      The reference code offers 'rbf' (`exp(-||c_i - c_j||^2 / (2 sigma^2))`,
      i.e. `kernel_scale = 2 sigma^2`) and 'cosine'.
    lam: ridge `lambda` > 0 of `alpha = (K + lam I)^-1 K`; `None` means the
      paper's default `1 / sqrt(n)`.
    t: the uniformity scale `t` > 0 (2 in the paper).
    kernel_scale: the kernel's scale > 0 (see `kernels.condition_kernel`).

  Returns:
    `(loss, aux)`: the float32 scalar loss and a dict with `pos_sim` (mean
    cosine between views of the same sample), `neg_sim` (mean cosine between
    views of different samples), `top1` (see `_view_metrics`),
    `centroid_norm` (mean `||mu_i||`, 1 when all views of a sample agree and
    no prior) and `alignment` (mean `||mu_i||^2`, the reference's alignment
    metric with the sign flipped). The metrics carry no gradient.

  Example:
    >>> views = jnp.stack([z1, z2], axis=1)  # [n, 2, d]
    >>> loss, aux = decoupled_uniformity(views)
    >>> loss, aux = decoupled_uniformity(views, prior=attributes,
    ...                                  kernel='rbf', kernel_scale=2.0)
  """
  checks.check_rank("views", views, 3, "[n, v, d]: samples, views, features")
  n, v, _ = jnp.shape(views)
  if n < 2 or v < 2:
    raise ValueError(
        "views needs n >= 2 samples and v >= 2 views per sample, got shape"
        f" {jnp.shape(views)}."
    )
  if (prior is None) != (kernel is None):
    raise ValueError(
        "prior and kernel go together: give both (a prior [n] or [n, p] and"
        f" a kernel in {tuple(kernels.KERNELS)}) or neither; got"
        f" prior={'None' if prior is None else 'an array'}, kernel={kernel!r}."
    )
  _common.check_positive("t", t)
  if kernel is not None:
    _common.check_choice("kernel", kernel, kernels.KERNELS)
    kernels.check_condition("prior", prior, n)
  if lam is not None:
    _common.check_positive("lam", lam)

  u = checks.l2_normalize(views)
  mu = jnp.mean(u, axis=1)
  if prior is not None:
    lam = 1.0 / math.sqrt(n) if lam is None else lam
    gram = kernels.condition_kernel(
        jax.lax.stop_gradient(prior), kernel=kernel, kernel_scale=kernel_scale)
    # No thresholding and no zeroed diagonal here, unlike CCL-K's W: alpha
    # is the conditional mean embedding itself.
    alpha = jax.lax.stop_gradient(jnp.linalg.solve(
        gram + lam * jnp.eye(n, dtype=jnp.float32), gram))
    mu = jnp.matmul(alpha, mu, precision=_HIGHEST)

  sq = jnp.sum(mu * mu, axis=-1)
  gram_mu = jnp.matmul(mu, mu.T, precision=_HIGHEST)
  d2 = jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * gram_mu, 0.0)
  upper = jnp.triu(jnp.ones((n, n), bool), k=1)
  logits = jnp.where(upper, -jnp.asarray(t, jnp.float32) * d2,
                     _common.MASKED_LOGIT)
  num_pairs = n * (n - 1) // 2
  loss = jax.nn.logsumexp(logits) - math.log(num_pairs)

  aux = _view_metrics(u)
  norms = jnp.sqrt(jax.lax.stop_gradient(sq))
  aux["centroid_norm"] = jnp.mean(norms)
  aux["alignment"] = jnp.mean(jax.lax.stop_gradient(sq))
  return loss, aux
