"""MCL as a training schedule: its config and its negative rule.

`config.mcl` (see configs/mcl.py) turns any in-batch or queue method whose
loss takes a `negative_mask` (`contrastive.train.objectives.
NEGATIVE_MASK_LOSSES`, checked when the experiment is built) into multistage
contrastive learning::

  mcl = dict(
      num_stages=2,            # S
      num_clusters=10,         # k of the clustering after each stage but the
                               # last: one int, or S - 1 of them
      steps_per_stage=0,       # 0: config.train's num_steps (or epochs)
      fresh_encoder=True,      # each stage starts from a new random encoder
                               # (False: continues the previous one)
      min_negatives=1,         # sample-level; fewer -> the fallback
      fallback='all',          # 'all': the method's unrestricted negatives;
                               # 'none': keep the short row
      cluster_output='features',  # or 'projection'
      kmeans=dict(num_iters=50, spherical=True, tol=1e-4),
  )

Each stage has its own optimizer state (learning-rate warm-up and decay
restart); the global step keeps counting. The between-stage work (embed,
cluster, start the next stage) is `contrastive.train.cluster_hooks.MCLHook`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp

from contrastive import config_sections
from contrastive.clustering import representation
from contrastive.clustering import stages

Array = jax.Array

DEFAULTS = dict(num_stages=2, num_clusters=10, steps_per_stage=0,
                fresh_encoder=True, min_negatives=1, fallback="all",
                cluster_output="features", kmeans={})


@dataclasses.dataclass(frozen=True)
class MCLConfig:
  """A validated `config.mcl` (see the module docstring)."""

  num_stages: int
  num_clusters: tuple[int, ...]
  steps_per_stage: int
  fresh_encoder: bool
  min_negatives: int
  fallback: str
  cluster_output: str
  kmeans: Mapping[str, Any]

  @property
  def num_steps(self) -> int:
    return self.num_stages * self.steps_per_stage

  def stage_end(self, stage: int) -> int:
    """The global step at which stage `stage` (1-based) ends."""
    return stage * self.steps_per_stage


def parse_config(cfg: Mapping[str, Any] | None, *, default_steps: int
                 ) -> MCLConfig | None:
  """Validates `config.mcl` (None when the config has none).

  Whether the configured loss takes the negative mask MCL narrows is checked
  with the loss table (`contrastive.train.objectives.check_negative_mask`).

  Args:
    cfg: `config.mcl` or None.
    default_steps: the steps of one stage when `steps_per_stage` is 0.

  Raises:
    ValueError: unknown fields (listing the valid ones) or bad values.
  """
  if cfg is None:
    return None
  cfg = config_sections.with_defaults(cfg, DEFAULTS, "config.mcl")
  num_stages = int(cfg["num_stages"])
  if num_stages < 1:
    raise ValueError(f"config.mcl.num_stages must be >= 1, got {num_stages}.")
  steps = int(cfg["steps_per_stage"]) or int(default_steps)
  if steps < 1:
    raise ValueError(f"config.mcl.steps_per_stage must be >= 1 (or 0 for"
                     f" config.train's length), got {steps}.")
  if int(cfg["min_negatives"]) < 0:
    raise ValueError("config.mcl.min_negatives must be >= 0, got"
                     f" {cfg['min_negatives']}.")
  if cfg["fallback"] not in stages.FALLBACKS:
    raise ValueError(f"Unknown config.mcl.fallback {cfg['fallback']!r};"
                     f" valid: {', '.join(stages.FALLBACKS)}.")
  if cfg["cluster_output"] not in representation.OUTPUTS:
    raise ValueError(
        f"Unknown config.mcl.cluster_output {cfg['cluster_output']!r};"
        f" valid: {', '.join(representation.OUTPUTS)}.")
  num_clusters = cfg["num_clusters"]
  if not isinstance(num_clusters, int):
    num_clusters = tuple(num_clusters)
  return MCLConfig(
      num_stages=num_stages,
      num_clusters=stages.num_clusters_per_stage(num_clusters, num_stages),
      steps_per_stage=steps, fresh_encoder=bool(cfg["fresh_encoder"]),
      min_negatives=int(cfg["min_negatives"]), fallback=cfg["fallback"],
      cluster_output=cfg["cluster_output"],
      kmeans=representation.check_kmeans_config(cfg["kmeans"],
                                                "config.mcl.kmeans"))


@dataclasses.dataclass(frozen=True)
class ClusterNegatives:
  """The train step's `restrict_negatives` rule for MCL.

  Reads `extra['mcl']` (`stages.MCLState`): the batch's examples and the
  candidates (the batch itself, or the queue rows through their 'index'
  metadata, so rows enqueued before a stage ended get that stage's clusters)
  must share their cluster in every finished stage.

  Example:
    >>> rule = ClusterNegatives(min_negatives=4)
    >>> mask, metrics = rule(state.extra, batch, None, ~jnp.eye(b, dtype=bool))
  """

  min_negatives: int = 1
  fallback: str = "all"

  def __call__(self, extra: Mapping[str, Any], batch: Mapping[str, Array],
               queue: Any, base_mask: Array) -> tuple[Array, dict[str, Array]]:
    state = extra["mcl"]
    anchor = stages.stage_ids(state, batch["index"])
    candidate = (anchor if queue is None
                 else stages.stage_ids(state, queue.metadata["index"]))
    mask, fell_back = stages.restricted_mask(
        anchor, candidate, base_mask, min_negatives=self.min_negatives,
        fallback=self.fallback)
    metrics = {
        "mcl_stage": state.stage.astype(jnp.float32),
        "mcl_fallback_rate": jnp.mean(fell_back.astype(jnp.float32)),
        "mcl_negatives": jnp.mean(jnp.sum(mask, axis=-1, dtype=jnp.float32)),
    }
    return mask, metrics
