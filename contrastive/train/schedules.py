"""Learning-rate and momentum-encoder schedules, built from the config."""
from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import optax


def learning_rate_schedule(
    base_lr: float, batch_size: int, num_steps: int, warmup_steps: int,
    scaling: str = "linear",
) -> optax.Schedule:
  """Linear warm-up then cosine decay to zero (SimCLR, MoCo v2).

  `scaling='linear'` multiplies `base_lr` by batch_size / 256 (Goyal et al.
  2017), `'sqrt'` by sqrt(batch_size) (SimCLR with LARS), `'none'` keeps it.
  """
  factors = {
      "linear": batch_size / 256.0,
      "sqrt": batch_size ** 0.5,
      "none": 1.0,
  }
  if scaling not in factors:
    raise ValueError(
        f"Unknown lr scaling {scaling!r}; valid values: {', '.join(factors)}."
    )
  peak = base_lr * factors[scaling]
  warmup_steps = min(warmup_steps, max(num_steps - 1, 0))
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=peak, warmup_steps=warmup_steps,
      decay_steps=max(num_steps, warmup_steps + 1), end_value=0.0,
  )


def momentum_schedule(start: float, end: float, num_steps: int) -> Any:
  """EMA coefficient of the momentum encoder, cosine from `start` to `end`.

  m(step) = end - (end - start) * (cos(pi * step / num_steps) + 1) / 2, as in
  BYOL and solo-learn's MoCo v2+ (0.99 -> 0.999). With start == end it is
  MoCo's constant momentum.
  """
  if not (0.0 <= start <= 1.0 and 0.0 <= end <= 1.0):
    raise ValueError(
        f"momentum start/end must lie in [0, 1], got {start} and {end}."
    )

  def schedule(step):
    progress = jnp.clip(step / max(num_steps, 1), 0.0, 1.0)
    return end - (end - start) * (jnp.cos(jnp.pi * progress) + 1.0) / 2.0

  return schedule
