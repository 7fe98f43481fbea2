"""The optimizer named by `config.optimizer`."""
from __future__ import annotations

from typing import Any, Mapping

import jax
import optax

from contrastive.train.schedules import learning_rate_schedule

OPTIMIZERS = ("sgd", "lars", "adamw")


def decay_mask(params: Any) -> Any:
  """True for kernels; biases and normalisation scales are not decayed.

  Excluding them follows SimCLR/LARS and MoCo v3 practice: decaying a BN
  scale or a bias only fights the normalisation.
  """
  return jax.tree.map(lambda p: p.ndim > 1, params)


def build_optimizer(
    config: Mapping[str, Any], *, batch_size: int, num_steps: int
) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """Returns `(tx, learning_rate_schedule)`.

  Fields of `config`: `name` (sgd | lars | adamw), `learning_rate` (base, for a
  batch of 256 under linear scaling), `lr_scaling` (linear | sqrt | none),
  `warmup_steps`, `weight_decay`, `momentum` (sgd, lars), `b1`, `b2` (adamw),
  `trust_coefficient` (lars).
  """
  name = config["name"]
  if name not in OPTIMIZERS:
    raise ValueError(
        f"Unknown optimizer {name!r} (config.optimizer.name); valid:"
        f" {', '.join(OPTIMIZERS)}."
    )
  schedule = learning_rate_schedule(
      config["learning_rate"], batch_size, num_steps,
      config.get("warmup_steps", 0), config.get("lr_scaling", "linear"))
  wd = config.get("weight_decay", 0.0)
  if name == "sgd":
    tx = optax.chain(
        optax.add_decayed_weights(wd, mask=decay_mask),
        optax.sgd(schedule, momentum=config.get("momentum", 0.9)),
    )
  elif name == "lars":
    tx = optax.lars(
        schedule, weight_decay=wd, weight_decay_mask=decay_mask,
        trust_coefficient=config.get("trust_coefficient", 0.001),
        trust_ratio_mask=decay_mask, momentum=config.get("momentum", 0.9),
    )
  else:
    tx = optax.adamw(
        schedule, b1=config.get("b1", 0.9), b2=config.get("b2", 0.999),
        weight_decay=wd, mask=decay_mask,
    )
  return tx, schedule
