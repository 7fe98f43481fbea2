"""A whole run, evaluation included: every figure the README promises, and
each one recomputed from the saved final state.

The embeddings of the evaluated subsets are checked against a direct
`model.apply` (rows in order), and kNN accuracy (NumPy, from the formula),
the linear probe's test accuracy (from its weights), the subject chance
accuracy (NumPy majority vote) and the subject probe are recomputed from
them: a run that fed the probe shuffled labels, or the wrong rows, fails.
"""
from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest

from configs import simclr
from contrastive import evaluate as eval_lib
from contrastive.evaluate import nuisance
from contrastive.train import evaluation
from contrastive.train import experiment
from contrastive.train.checkpoint import Checkpointer, abstract_like
from contrastive.train.loop import train_and_evaluate


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """(config, results, workdir) of a 2-step tiny SimCLR run on UCI HAPT."""
  workdir = tmp_path_factory.mktemp("final")
  config = simclr.get_config("uci_hapt,tiny")
  config.train.num_steps = 2
  return config, train_and_evaluate(config, str(workdir)), workdir


@pytest.fixture(scope="module")
def final(run):
  """The experiment, the final state and the embeddings final() evaluated."""
  config, _, workdir = run
  exp = experiment.build_experiment(config)
  shapes = experiment.abstract_state(exp)
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
  state, _ = ckpt.restore(
      abstract_like(shapes, experiment.state_shardings(exp, shapes)))
  ckpt.close()
  assert int(state.step) == 2
  cfg = config.eval
  train = evaluation.embed_representation(
      exp, state, exp.train_data, cfg.max_train_examples)
  test = evaluation.embed_representation(
      exp, state, exp.test_data, cfg.max_test_examples, (cfg.nuisance,))
  return exp, state, train, test


def test_run_writes_every_final_metric(run):
  _, results, workdir = run
  for key in ("knn_accuracy", "linear_probe_accuracy", "subject_probe_accuracy",
              "subject_chance_accuracy"):
    assert 0.0 <= results[key] <= 1.0, (key, results[key])
  # Six activities: better than chance is the least a trained probe shows.
  assert results["linear_probe_train_accuracy"] > 1 / 6
  assert results["alignment"] >= 0.0 and results["uniformity"] <= 0.0
  assert json.loads((workdir / "results.json").read_text()) == results


def test_embeddings_are_the_encoder_s_features(final):
  """Evenly spaced examples of each split, in order, as model.apply gives."""
  exp, state, train, test = final
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  for data, embedded, keys in ((exp.train_data, train, ("label",)),
                               (exp.test_data, test, ("label", "subject"))):
    n = len(embedded["label"])
    assert 8 < n < len(data)   # a subset, of more than the rows checked
    rows = np.array([0, 1, n // 2, n - 1])
    index = np.linspace(0, len(data) - 1, n).round().astype(int)[rows]
    batch = data.get_batch(index)
    direct = exp.deps.model.apply(
        variables, jax.vmap(exp.preprocess)(batch["x"]),
        train=False)["features"]
    np.testing.assert_allclose(embedded["features"][rows], direct, atol=1e-5)
    for key in keys:
      np.testing.assert_array_equal(embedded[key][rows], batch[key])


def _knn_accuracy(train, test, *, num_classes, k, temperature):
  """Wu et al. 2018's weighted kNN vote, in NumPy float64."""
  unit = lambda f: f / np.linalg.norm(f, axis=1, keepdims=True)
  sims = unit(test["features"].astype(np.float64)) @ unit(
      train["features"].astype(np.float64)).T
  top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
  top_sims = np.take_along_axis(sims, top, axis=1)
  weights = np.exp((top_sims - top_sims[:, :1]) / temperature)
  scores = np.zeros((len(sims), num_classes))
  np.add.at(scores, (np.arange(len(sims))[:, None], train["label"][top]),
            weights)
  return np.mean(np.argmax(scores, axis=1) == test["label"])


def test_reported_accuracies_follow_from_the_embeddings(run, final):
  config, results, _ = run
  exp, _, train, test = final
  cfg = config.eval
  num_classes = exp.train_data.info.num_classes
  assert results["knn_accuracy"] == pytest.approx(_knn_accuracy(
      train, test, num_classes=num_classes, k=cfg.knn_k,
      temperature=cfg.knn_temperature))
  probe = eval_lib.linear_probe(
      train["features"], train["label"], test["features"], test["label"],
      num_classes=num_classes, return_weights=True, **cfg.linear_probe)
  predicted = np.argmax(
      test["features"].astype(np.float64) @ probe.weights + probe.bias, axis=1)
  assert results["linear_probe_accuracy"] == pytest.approx(
      np.mean(predicted == test["label"]))
  assert results["linear_probe_train_accuracy"] == pytest.approx(
      probe.train_accuracy)
  # Subjects: majority vote of the probe's training part, scored held out.
  subject = test["subject"]
  fit, held_out = nuisance.stratified_split(
      subject, test_fraction=0.3, seed=config.seed)
  values, counts = np.unique(subject[fit], return_counts=True)
  majority = values[np.argmax(counts)]
  assert results["subject_chance_accuracy"] == pytest.approx(
      np.mean(subject[held_out] == majority))
  assert results["subject_probe_accuracy"] == pytest.approx(
      eval_lib.nuisance_probe(test["features"], subject,
                              seed=config.seed).accuracy)


def test_baselines_are_scored_on_the_final_protocol(tmp_path):
  """eval.baselines: the random-init encoder (the seed's initial state) and
  every input representation of the modality, each scored as the trained
  encoder is; the launcher's table lists them."""
  from contrastive.evaluate import input_features
  from contrastive.evaluate import protocol
  config = simclr.get_config("uci_hapt,tiny")
  config.train.num_steps = 1
  config.eval.baselines = ("random_init", "input")
  results = train_and_evaluate(config, str(tmp_path))
  baselines = results["baselines"]
  assert list(baselines) == ["random_init", "input_windows",
                             "input_summary_stats"]
  exp = experiment.build_experiment(config)
  init, _ = experiment.init_state(exp)
  cfg = config.eval
  train = evaluation.embed_representation(exp, init, exp.train_data,
                                          cfg.max_train_examples)
  test = evaluation.embed_representation(
      exp, init, exp.test_data, cfg.max_test_examples, ("subject",))
  expected = protocol.score_with_config(
      train, test, num_classes=6, eval_config=cfg, seed=config.seed)
  assert baselines["random_init"] == pytest.approx(expected)
  train_f, test_f = input_features.input_features(
      "summary_stats", exp.train_data, exp.test_data)
  index = lambda n, m: np.linspace(0, n - 1, m).round().astype(int)
  i = index(len(exp.train_data), cfg.max_train_examples)
  j = index(len(exp.test_data), cfg.max_test_examples)
  stats = protocol.score_with_config(
      {"features": train_f[i], "label": exp.train_data.get_batch(i)["label"]},
      {"features": test_f[j], **{k: exp.test_data.get_batch(j)[k]
                                 for k in ("label", "subject")}},
      num_classes=6, eval_config=cfg, seed=config.seed)
  assert baselines["input_summary_stats"] == pytest.approx(stats)
  table = evaluation.results_table(results, "simclr")
  assert "| input_summary_stats |" in table and "| random_init |" in table
  assert table.splitlines()[2].startswith("| simclr |")


def test_results_table_of_a_population_averages_members_and_baselines():
  member = lambda knn, probe, rand: {
      "knn_accuracy": knn, "linear_probe_accuracy": probe,
      "baselines": {"random_init": {"knn_accuracy": rand,
                                    "linear_probe_accuracy": rand},
                    "input_pixels": {"knn_accuracy": 0.5,
                                     "linear_probe_accuracy": 0.25}}}
  results = {"members": {"seed0": member(0.8, 0.9, 0.6),
                         "seed1": member(0.7, 0.8, 0.4)}}
  lines = evaluation.results_table(results, "simclr").splitlines()
  assert lines[2:] == [
      "| simclr seed0 | 80.0 | 90.0 |",
      "| simclr seed1 | 70.0 | 80.0 |",
      "| simclr, mean of 2 | 75.0 | 85.0 |",
      "| random_init, mean of 2 | 50.0 | 50.0 |",
      "| input_pixels | 50.0 | 25.0 |"]
