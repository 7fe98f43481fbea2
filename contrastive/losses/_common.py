"""Shared pieces of the losses: hyperparameter checks, the masked logit and
the metrics every loss returns.

Private to `contrastive.losses`. The array checks (rank, shapes) and
`l2_normalize` are shared with the other packages and live in
`contrastive.checks`. Every loss in this package computes in float32
whatever its input dtype (`checks.l2_normalize` upcasts bfloat16
projections), so that a temperature of 0.01 never overflows the
exponentials.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import jax
import jax.numpy as jnp

from contrastive import checks

Array = jax.Array

# A large negative logit used instead of -inf for masked entries: -inf turns
# into NaN in gradients (0 * inf) and in rows where every entry is masked.
MASKED_LOGIT = -1e9


def check_positive(name: str, value: Any) -> None:
  """Raises ValueError if a concrete `value` is not > 0 (traced values pass)."""
  if checks.is_concrete(value) and not float(value) > 0:
    raise ValueError(f"{name} must be > 0, got {value}.")


def check_non_negative(name: str, value: Any) -> None:
  if checks.is_concrete(value) and not float(value) >= 0:
    raise ValueError(f"{name} must be >= 0, got {value}.")


def check_tau_plus(tau_plus: Any) -> None:
  """The class prior of DCL/HCL must lie in [0, 1)."""
  if checks.is_concrete(tau_plus) and not 0.0 <= float(tau_plus) < 1.0:
    raise ValueError(
        "tau_plus (the class prior: the probability that a negative shares"
        f" the anchor's class) must lie in [0, 1), got {tau_plus}."
    )


def check_choice(name: str, value: str, allowed: Iterable[str]) -> None:
  allowed = tuple(allowed)
  if value not in allowed:
    raise ValueError(
        f"Unknown {name} {value!r}; valid values are: {', '.join(allowed)}."
    )


def min_negative_term(num_negatives: Any, temperature: float) -> Array:
  """The DCL/HCL clamp `N * e^(-1/t)` (Chuang et al. 2020, eq. 6).

  It is the smallest value the negative term can take on the unit sphere
  (every cosine similarity equal to -1), and keeps the debiased estimate
  positive so that its logarithm exists.
  """
  return jnp.asarray(num_negatives, jnp.float32) * jnp.exp(
      -1.0 / jnp.asarray(temperature, jnp.float32)
  )


def contrastive_metrics(
    pos_sim: Array,
    neg_sim_mean: Array,
    neg_sim_max: Array,
) -> Mapping[str, Array]:
  """The `aux` every loss returns, from per-anchor cosine similarities.

  Args:
    pos_sim: `[m]` cosine similarity of each anchor with its positive.
    neg_sim_mean: `[m]` mean cosine similarity with the anchor's negatives.
    neg_sim_max: `[m]` largest cosine similarity with a negative.

  Returns:
    A dict with `pos_sim` and `neg_sim` (means over anchors) and `top1`, the
    fraction of anchors whose positive is more similar than every negative.
    All are float32 scalars without gradient.
  """
  pos_sim, neg_sim_mean, neg_sim_max = jax.lax.stop_gradient(
      (pos_sim, neg_sim_mean, neg_sim_max)
  )
  return {
      "pos_sim": jnp.mean(pos_sim),
      "neg_sim": jnp.mean(neg_sim_mean),
      "top1": jnp.mean((pos_sim > neg_sim_max).astype(jnp.float32)),
  }
