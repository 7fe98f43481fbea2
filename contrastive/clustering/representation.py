"""Embed the whole training split with an encoder and cluster it, timed.

MCL clusters after every stage and cluster-balanced batching clusters once or
every N steps; both embed the un-augmented training split (the encoder in
eval mode, sharded over the mesh by `contrastive.train.embedding`) and run
the library's JAX k-means (`contrastive.negatives.kmeans`) on the result.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Mapping

import jax
import numpy as np

from contrastive import config_sections
from contrastive.negatives import kmeans as kmeans_lib
from contrastive.train import embedding

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


class TrainSetClusterer:
  """Embeds `exp.train_data` with given variables and runs k-means on it.

  The embedding program is compiled once per clusterer and reused.

  Args:
    exp: the `Experiment` (model, preprocessing, mesh, training split).
    output: the model output to cluster, 'features' (the backbone) or
      'projection'.
    kmeans: fields of `contrastive.negatives.kmeans.kmeans` (`num_iters`,
      `spherical`, `tol`).
    batch_size: examples per embedding batch.

  Example:
    >>> clusterer = TrainSetClusterer(exp)
    >>> result = clusterer(variables, 10, jax.random.PRNGKey(0))
  """

  def __init__(self, exp, *, output: str = "features",
               kmeans: Mapping[str, Any] | None = None,
               batch_size: int = 1024):
    if output not in OUTPUTS:
      raise ValueError(f"Unknown output {output!r} to cluster; valid:"
                       f" {', '.join(OUTPUTS)}.")
    self._exp, self._output = exp, output
    self._kmeans = check_kmeans_config(kmeans)
    self._batch_size = int(batch_size)
    self._embed = embedding.make_embed_fn(exp.deps.model, exp.preprocess,
                                          (output,), exp.mesh)

  def embed(self, variables: Any) -> np.ndarray:
    """`[N, F]` float32 outputs of the whole training split."""
    out = embedding.embed_dataset(self._embed, variables, self._exp.train_data,
                                  self._exp.mesh, batch_size=self._batch_size)
    return out[self._output]

  def __call__(self, variables: Any, num_clusters: int, rng: jax.Array
               ) -> Clustering:
    start = time.perf_counter()
    features = self.embed(variables)
    embedded = time.perf_counter()
    if num_clusters > len(features):
      raise ValueError(f"cannot make {num_clusters} clusters of"
                       f" {len(features)} training examples.")
    result = kmeans_lib.kmeans(rng, features, num_clusters, **self._kmeans)
    assignments = np.asarray(jax.device_get(result.assignments), np.int32)
    done = time.perf_counter()
    return Clustering(assignments, embedded - start, done - embedded)
