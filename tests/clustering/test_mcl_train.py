"""The cluster methods through `train_and_evaluate` (tiny uci_hapt runs).

MCL: 3 stages of 2 steps; each stage transition stores assignments of the
expected shape in the checkpointed state, logs the clustering time share,
and a run resumed mid-stage-2 runs only the remaining steps, makes the
stage-3 transition its restored stage schedules, and ends bitwise where the
uninterrupted run ends; evaluation concatenates the stages' features.
ClusterNS with cluster-balanced batches: centroids start and live in the
state, the balanced clusters are stored and re-computed.
"""
from __future__ import annotations

import json
import os
import shutil

import jax
import numpy as np
import pytest

from configs import clusterns
from configs import mcl
from contrastive.train import evaluation
from contrastive.train import experiment
from contrastive.train.checkpoint import Checkpointer, abstract_like
from contrastive.train.loop import train_and_evaluate


def _mcl_config():
  config = mcl.get_config("uci_hapt,tiny")
  config.mcl.num_stages = 3     # a transition after the mid-stage resume
  config.mcl.steps_per_stage = 2
  config.train.checkpoint_every = 1
  config.train.keep_checkpoints = 10
  config.eval.nuisance = None  # the tiny test subset holds one subject
  return config


def _restore(config, workdir, step):
  exp = experiment.build_experiment(config)
  shapes = experiment.abstract_state(exp)
  target = abstract_like(shapes, experiment.state_shardings(exp, shapes))
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
  state, data_state = ckpt.restore(target, step)
  ckpt.close()
  return exp, state, data_state


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("mcl") / "straight")
  config = _mcl_config()
  return config, workdir, train_and_evaluate(config, workdir)


def test_stage_transition_stores_assignments(straight_run):
  config, workdir, results = straight_run
  assert results["step"] == 6
  assert 0 < results["mcl/stage1_cluster_share"]
  assert "linear_probe_accuracy" in results
  _, before, _ = _restore(config, workdir, 2)   # saved before the transition
  assert int(before.extra["mcl"].stage) == 1
  assert np.all(np.asarray(before.extra["mcl"].assignments) == -1)
  exp, mid, _ = _restore(config, workdir, 3)
  assignments = np.asarray(mid.extra["mcl"].assignments)
  assert int(mid.extra["mcl"].stage) == 2
  assert assignments.shape == (len(exp.train_data), 2)   # num_stages - 1
  assert set(np.unique(assignments[:, 0])) == {0, 1}     # num_clusters = 2
  assert np.all(assignments[:, 1] == -1)                 # stage 2 runs
  # Stage 1's encoder is kept, and a fresh stage-2 encoder replaced it.
  (stage1,) = evaluation.representation_variables(mid)[:-1]
  same = jax.tree.map(lambda a, b: bool(np.array_equal(a, b)),
                      stage1["params"], before.params)
  assert all(jax.tree.leaves(same))
  assert not np.array_equal(np.asarray(jax.tree.leaves(mid.params)[0]),
                            np.asarray(jax.tree.leaves(before.params)[0]))
  features = evaluation.embed_representation(exp, mid, exp.test_data, 8)
  width = exp.deps.model.apply(
      evaluation._variables(mid), exp.preprocess(exp.test_data[0]["x"])[None],
      train=False)["features"].shape[-1]
  assert features["features"].shape == (8, 2 * width)
  lines = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl"))]
  stages_seen = {l["step"]: l["mcl_stage"] for l in lines if "mcl_stage" in l}
  assert stages_seen == {1: 1.0, 2: 1.0, 3: 2.0, 4: 2.0, 5: 3.0, 6: 3.0}
  # Logged when stage 1 ends (step 2), and again with the final results.
  logged = [l["step"] for l in lines if "mcl/stage1_cluster_share" in l]
  assert logged == [2, 6]
  logged = [l["step"] for l in lines if "mcl/stage2_cluster_share" in l]
  assert logged == [4, 6]
  _, last, _ = _restore(config, workdir, 6)
  assert int(last.extra["mcl"].stage) == 3
  assert set(np.unique(np.asarray(last.extra["mcl"].assignments)[:, 1])) == {0, 1}


def test_resume_mid_stage_restores_the_schedule(straight_run, tmp_path):
  """Resumed from step 3 (mid-stage 2), the stage-3 transition before step 5
  happens only if the hook restored stage 2 from the checkpoint; a run that
  ignored the checkpoint would end bitwise the same but log steps 1-3."""
  config, workdir, _ = straight_run
  resumed = str(tmp_path / "resumed")
  shutil.copytree(os.path.join(workdir, "checkpoints"),
                  os.path.join(resumed, "checkpoints"))
  for step in ("4", "5", "6"):
    shutil.rmtree(os.path.join(resumed, "checkpoints", step))
  config.eval.final = False
  assert train_and_evaluate(config, resumed)["step"] == 6
  lines = [json.loads(l) for l in open(os.path.join(resumed, "metrics.jsonl"))]
  assert [l["step"] for l in lines if "loss" in l] == [4, 5, 6]
  stages_seen = {l["step"]: l["mcl_stage"] for l in lines if "mcl_stage" in l}
  assert stages_seen == {4: 2.0, 5: 3.0, 6: 3.0}
  _, a, data_a = _restore(config, workdir, 6)
  _, b, data_b = _restore(config, resumed, 6)
  assert data_a == data_b
  leaves_a, tree_a = jax.tree.flatten(jax.device_get(a))
  leaves_b, tree_b = jax.tree.flatten(jax.device_get(b))
  assert tree_a == tree_b
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_clusterns_with_balanced_batches(tmp_path):
  config = clusterns.get_config("uci_hapt,tiny,remove,balanced")
  config.loss.start_similarity = 1.0   # start the centroids at once
  config.train.num_steps = 3
  config.eval.final = False
  assert train_and_evaluate(config, str(tmp_path))["step"] == 3
  _, state, _ = _restore(config, str(tmp_path), 3)
  centroids = state.extra["loss"]
  assert bool(centroids.active)
  assert centroids.centroids.shape == (config.loss.num_clusters, 8)
  np.testing.assert_allclose(
      np.linalg.norm(np.asarray(centroids.centroids), axis=1), 1.0, rtol=1e-5)
  clusters = np.asarray(state.extra["balanced_clusters"])
  assert clusters.min() >= 0 and clusters.max() < 4
  lines = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  reclustered = [l["step"] for l in lines if "balanced/cluster_seconds" in l]
  assert reclustered == [0, 2]            # recluster_every = 2
  active = [l["clusterns_active"] for l in lines if "clusterns_active" in l]
  assert active == [0.0, 1.0, 1.0]        # seeded by step 1's update


def test_mcl_population_members_are_their_solo_runs(straight_run, tmp_path):
  """Two seeds of MCL as one population (sequential, each member with its
  own hooks): seed 0 ends bitwise where the solo run does, seed 1 elsewhere."""
  from contrastive.train.loop import train_population
  config, solo_dir, solo_results = straight_run
  other = _mcl_config()
  other.seed = 1
  dirs = [str(tmp_path / "m0"), str(tmp_path / "m1")]
  outcomes = train_population([_mcl_config(), other], dirs)
  results = outcomes[0].unwrap()
  assert {k: v for k, v in results.items() if not k.startswith("mcl/")} == {
      k: v for k, v in solo_results.items() if not k.startswith("mcl/")}
  _, a, _ = _restore(config, dirs[0], 6)
  _, b, _ = _restore(config, solo_dir, 6)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  _, c, _ = _restore(other, dirs[1], 6)
  assert not np.array_equal(np.asarray(c.extra["mcl"].assignments),
                            np.asarray(a.extra["mcl"].assignments))
