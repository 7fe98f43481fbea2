"""Between-step work of the cluster methods, run by the train loop.

Here rather than in `contrastive.clustering` because it needs the training
experiment (model, mesh, data, `init_state`); the clustering package keeps
the pure parts (stages, masks, configs) and never imports `contrastive.train`.

A hook has `restore(state)` (called once the state is initialised or
restored, before the data iterator's position is restored),
`before_step(state, step) -> (state, metrics)` (called before every step; it
may replace the state) and `summary() -> dict` (merged into the results).
All clustering state lives in the train state, so a resumed run repeats
exactly what an uninterrupted one does.

- `MCLHook`: at the end of each stage but the last, embeds the training split
  with that stage's encoder, clusters it, records the assignments and the
  encoder in `state.extra['mcl']`, and starts the next stage (fresh encoder
  or not, new optimizer state). It prints the time spent clustering as a
  share of the stage's training time.
- `BalancedBatchesHook`: clusters the training split at step 0 (and every N
  steps) and hands the assignments, also kept in
  `state.extra['balanced_clusters']`, to the cluster-balanced sampler.
"""
from __future__ import annotations

import time
from typing import Any, Mapping

import jax
import numpy as np
from absl import logging

from contrastive.clustering import representation
from contrastive.clustering import stages
from contrastive.negatives import kmeans as kmeans_lib
from contrastive.train import embedding
from contrastive.train import experiment as experiment_lib
from contrastive.train import methods as methods_lib

# fold_in offsets that keep the PRNG streams of the hooks apart.
_KMEANS_STREAM, _INIT_STREAM, _BALANCED_STREAM = 1, 2, 3


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
    if output not in representation.OUTPUTS:
      raise ValueError(f"Unknown output {output!r} to cluster; valid:"
                       f" {', '.join(representation.OUTPUTS)}.")
    self._exp, self._output = exp, output
    self._kmeans = representation.check_kmeans_config(kmeans)
    self._batch_size = int(batch_size)
    self._embed = embedding.make_embed_fn(exp.deps.model, exp.preprocess,
                                          (output,), exp.mesh)

  def embed(self, variables: Any) -> np.ndarray:
    """`[N, F]` float32 outputs of the whole training split."""
    out = embedding.embed_dataset(self._embed, variables, self._exp.train_data,
                                  self._exp.mesh, batch_size=self._batch_size)
    return out[self._output]

  def __call__(self, variables: Any, num_clusters: int, rng: jax.Array
               ) -> representation.Clustering:
    start = time.perf_counter()
    features = self.embed(variables)
    embedded = time.perf_counter()
    if num_clusters > len(features):
      raise ValueError(f"cannot make {num_clusters} clusters of"
                       f" {len(features)} training examples.")
    result = kmeans_lib.kmeans(rng, features, num_clusters, **self._kmeans)
    assignments = np.asarray(jax.device_get(result.assignments), np.int32)
    done = time.perf_counter()
    return representation.Clustering(assignments, embedded - start,
                                     done - embedded)


def encoder_variables(state) -> dict[str, Any]:
  """The online encoder's variables (`batch_stats` only when it has some)."""
  variables = {"params": state.params}
  if state.batch_stats:
    variables["batch_stats"] = state.batch_stats
  return variables


def _stream(seed: int, stream: int, count: int) -> jax.Array:
  key = jax.random.fold_in(jax.random.PRNGKey(seed), stream)
  return jax.random.fold_in(key, count)


def _place_like(new_state, old_state):
  """`new_state` with the shardings of `old_state` (same tree structure)."""
  return jax.device_put(new_state, jax.tree.map(lambda x: x.sharding,
                                                old_state))


def _report(message: str) -> None:
  logging.info("%s", message)
  if jax.process_index() == 0:
    print(message, flush=True)


class MCLHook:
  """Runs the MCL schedule of `exp.mcl` (`contrastive.clustering.mcl`)."""

  def __init__(self, exp):
    self._exp, self._cfg = exp, exp.mcl
    self._clusterer = None
    self._stage, self._clock = 1, time.perf_counter()
    self._summary: dict[str, float] = {}

  def restore(self, state) -> None:
    self._stage = int(state.extra["mcl"].stage)
    self._clock = time.perf_counter()

  def before_step(self, state, step: int):
    cfg = self._cfg
    if self._stage >= cfg.num_stages or step != cfg.stage_end(self._stage):
      return state, {}
    return self.advance(state)

  def advance(self, state):
    """Ends the current stage: cluster, record, start the next stage."""
    jax.block_until_ready(state)
    s, cfg, exp = self._stage, self._cfg, self._exp
    train_seconds = time.perf_counter() - self._clock
    if self._clusterer is None:
      self._clusterer = TrainSetClusterer(
          exp, output=cfg.cluster_output, kmeans=cfg.kmeans,
          batch_size=int(exp.config.eval.get("batch_size", 1024)))
    variables = encoder_variables(state)
    seed = int(exp.config.seed)
    result = self._clusterer(variables, cfg.num_clusters[s - 1],
                             _stream(seed, _KMEANS_STREAM, s))
    mcl = stages.record_stage(state.extra["mcl"], result.assignments,
                              variables)
    if cfg.fresh_encoder:
      fresh, _ = experiment_lib.init_state(
          exp, rng=_stream(seed, _INIT_STREAM, s + 1))
      new = fresh.replace(step=state.step, rng=state.rng,
                          extra={**fresh.extra, "mcl": mcl})
    else:
      new = state.replace(opt_state=exp.deps.tx.init(state.params),
                          extra={**state.extra, "mcl": mcl})
    new = _place_like(new, state)
    jax.block_until_ready(new)
    self._stage, self._clock = s + 1, time.perf_counter()
    share = result.seconds / max(train_seconds, 1e-9)
    sizes = np.bincount(result.assignments, minlength=cfg.num_clusters[s - 1])
    _report(
        f"MCL stage {s}/{cfg.num_stages}: trained {cfg.steps_per_stage} steps"
        f" in {train_seconds:.1f} s; clustering {result.seconds:.1f} s (embed"
        f" {result.embed_seconds:.1f} s, k-means {result.kmeans_seconds:.1f}"
        f" s) = {100 * share:.1f}% of the stage's training time;"
        f" {len(sizes)} clusters of {sizes.min()}-{sizes.max()} examples.")
    metrics = {f"mcl/stage{s}_train_seconds": train_seconds,
               f"mcl/stage{s}_cluster_seconds": result.seconds,
               f"mcl/stage{s}_cluster_share": share}
    self._summary.update(metrics)
    return new, metrics

  def summary(self) -> dict[str, float]:
    return dict(self._summary)


class BalancedBatchesHook:
  """Keeps `exp.sampler`'s clusters current (`config.balanced_batches`)."""

  def __init__(self, exp):
    self._exp, self._cfg = exp, exp.balanced
    self._clusterer = None
    self._done = False
    self._seconds = 0.0

  def restore(self, state) -> None:
    assignments = np.asarray(jax.device_get(state.extra["balanced_clusters"]))
    self._done = bool(np.all(assignments >= 0))
    if self._done:
      self._exp.sampler.set_assignments(assignments)

  def before_step(self, state, step: int):
    every = self._cfg.recluster_every
    if self._done and not (every and step % every == 0):
      return state, {}
    if self._clusterer is None:
      self._clusterer = TrainSetClusterer(
          self._exp, output=self._cfg.output, kmeans=self._cfg.kmeans,
          batch_size=int(self._exp.config.eval.get("batch_size", 1024)))
    result = self._clusterer(
        encoder_variables(state), self._cfg.num_clusters,
        _stream(int(self._exp.config.seed), _BALANCED_STREAM, step))
    self._exp.sampler.set_assignments(result.assignments)
    new = state.replace(extra={
        **state.extra, "balanced_clusters": result.assignments})
    self._done, self._seconds = True, self._seconds + result.seconds
    return _place_like(new, state), {"balanced/cluster_seconds":
                                     result.seconds}

  def summary(self) -> dict[str, float]:
    return {"balanced/cluster_seconds_total": self._seconds}


def build_hooks(exp) -> list[Any]:
  """The hooks of the cluster options `exp` uses, in the order of
  `methods.CLUSTER_OPTIONS` (an empty list for most runs); each option
  names its hook class of this module."""
  return [globals()[option.hook](exp)
          for option in methods_lib.active_options(exp)]
