"""What the cluster methods cluster, and how: outputs, k-means options, result.

MCL clusters after every stage and cluster-balanced batching clusters once or
every N steps; both embed the un-augmented training split and run the
library's JAX k-means (`contrastive.negatives.kmeans`) on it. This module
holds what their configs choose (`OUTPUTS`, `check_kmeans_config`) and the
timed result (`Clustering`); the embedding and clustering itself needs the
training experiment (model, mesh, data) and lives with the loop, in
`contrastive.train.cluster_hooks.TrainSetClusterer`, so that this package
never imports `contrastive.train`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from contrastive import config_sections

# Model outputs that can be clustered.
OUTPUTS = ("features", "projection")
# config fields of the k-means run, with their defaults.
KMEANS_DEFAULTS = dict(num_iters=50, spherical=True, tol=1e-4)


@dataclasses.dataclass
class Clustering:
  """The outcome of one `TrainSetClusterer.__call__`.

  Attributes:
    assignments: `[N]` int32 cluster of every training example.
    embed_seconds: wall time spent embedding the split.
    kmeans_seconds: wall time spent in k-means.
  """

  assignments: np.ndarray
  embed_seconds: float
  kmeans_seconds: float

  @property
  def seconds(self) -> float:
    return self.embed_seconds + self.kmeans_seconds


def check_kmeans_config(cfg: Mapping[str, Any] | None,
                        section: str = "the k-means config") -> dict[str, Any]:
  """`cfg` over `KMEANS_DEFAULTS`; unknown fields raise ValueError naming
  `section` (e.g. 'config.mcl.kmeans')."""
  return config_sections.with_defaults(cfg, KMEANS_DEFAULTS, section)
