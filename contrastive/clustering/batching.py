"""`config.balanced_batches`: cluster-balanced global batches, validated.

Its fields, with their defaults::

  balanced_batches = dict(
      num_clusters=32,         # k of the k-means over the training split
      clusters_per_batch=2,    # blocks (clusters) per global batch
      recluster_every=0,       # 0: cluster once, from the initial encoder;
                               # N: re-cluster from the current encoder every
                               # N steps (sampler epochs are then N batches)
      output='features',       # the model output clustered
      kmeans=dict(num_iters=50, spherical=True, tol=1e-4),
  )

The sampler is `balanced.ClusterBalancedSampler`; the clustering between
steps is `hooks.BalancedBatchesHook`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from contrastive import config_sections
from contrastive.clustering import balanced
from contrastive.clustering import representation

DEFAULTS = dict(num_clusters=32, clusters_per_batch=2, recluster_every=0,
                output="features", kmeans={})


@dataclasses.dataclass(frozen=True)
class BalancedConfig:
  """A validated `config.balanced_batches` (see the module docstring)."""

  num_clusters: int
  clusters_per_batch: int
  recluster_every: int
  output: str
  kmeans: Mapping[str, Any]


def parse_config(cfg: Mapping[str, Any] | None, *, batch_size: int,
                 num_examples: int) -> BalancedConfig | None:
  """Validates `config.balanced_batches` (None when absent).

  Raises:
    ValueError: unknown fields (listing the valid ones) or bad values.
  """
  if cfg is None:
    return None
  cfg = config_sections.with_defaults(cfg, DEFAULTS,
                                     "config.balanced_batches")
  k, per_batch = int(cfg["num_clusters"]), int(cfg["clusters_per_batch"])
  if not 1 <= k <= num_examples:
    raise ValueError(f"config.balanced_batches.num_clusters must lie in [1,"
                     f" {num_examples}], got {k}.")
  if per_batch < 1 or batch_size % per_batch:
    raise ValueError(
        f"config.balanced_batches.clusters_per_batch={per_batch} must be >= 1"
        f" and divide the global batch size {batch_size}.")
  every = int(cfg["recluster_every"])
  if every < 0:
    raise ValueError("config.balanced_batches.recluster_every must be >= 0,"
                     f" got {every}.")
  if cfg["output"] not in representation.OUTPUTS:
    raise ValueError(f"Unknown config.balanced_batches.output"
                     f" {cfg['output']!r}; valid:"
                     f" {', '.join(representation.OUTPUTS)}.")
  return BalancedConfig(
      num_clusters=k, clusters_per_batch=per_batch, recluster_every=every,
      output=cfg["output"],
      kmeans=representation.check_kmeans_config(
          cfg["kmeans"], "config.balanced_batches.kmeans"))


def make_sampler(cfg: BalancedConfig, *, batch_size: int, seed: int
                 ) -> balanced.ClusterBalancedSampler:
  """The sampler, without assignments yet (the hook sets them)."""
  epoch_size = cfg.recluster_every * batch_size or None
  return balanced.ClusterBalancedSampler(
      batch_size, clusters_per_batch=cfg.clusters_per_batch, seed=seed,
      epoch_size=epoch_size)
