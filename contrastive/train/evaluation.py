"""Evaluation of a train state: kNN during training, the full set at the end.

Features are the backbone's output (`'features'`), as in the linear-probe
protocol of SimCLR and MoCo; alignment and uniformity use the normalised
projections of two augmented views (Wang & Isola 2020).
"""
from __future__ import annotations

from typing import Any

import jax
import numpy as np

from contrastive import augment as augment_lib
from contrastive import evaluate as eval_lib
from contrastive.train import embedding


def _variables(state) -> dict[str, Any]:
  variables = {"params": state.params}
  if state.batch_stats:
    variables["batch_stats"] = state.batch_stats
  return variables


def _embed(exp, state, dataset, max_examples, metadata=()):
  fn = embedding.make_embed_fn(exp.deps.model, exp.preprocess, ("features",),
                               exp.mesh)
  return embedding.embed_dataset(
      fn, _variables(state), dataset, exp.mesh,
      batch_size=int(exp.config.eval.get("batch_size", 512)),
      max_examples=max_examples, metadata=metadata)


def _knn(exp, train, test) -> float:
  cfg = exp.config.eval
  return float(eval_lib.knn_accuracy(
      train["features"], train["label"], test["features"], test["label"],
      num_classes=exp.train_data.info.num_classes,
      k=int(cfg.get("knn_k", 20)),
      temperature=float(cfg.get("knn_temperature", 0.07))))


def monitor(exp, state) -> dict[str, float]:
  """Cheap kNN accuracy on subsets, logged during training."""
  cfg = exp.config.eval
  train = _embed(exp, state, exp.train_data, cfg.get("monitor_train_examples", 5000))
  test = _embed(exp, state, exp.test_data, cfg.get("monitor_test_examples", 1000))
  return {"knn_monitor": _knn(exp, train, test)}


def _alignment_uniformity(exp, state, dataset, max_examples) -> dict[str, float]:
  n = min(len(dataset), max_examples)
  x = dataset.get_batch(np.arange(n))["x"]
  rng = jax.random.PRNGKey(int(exp.config.seed) + 1)
  views = augment_lib.make_views(rng, x, exp.deps.augment, num_views=2)
  model = exp.deps.model

  @jax.jit
  def project(variables, v):
    return model.apply(variables, v, train=False)["projection"]

  z1 = np.asarray(project(_variables(state), views[0]))
  z2 = np.asarray(project(_variables(state), views[1]))
  return {"alignment": float(eval_lib.alignment(z1, z2)),
          "uniformity": float(eval_lib.uniformity(np.concatenate([z1, z2])))}


def final(exp, state) -> dict[str, Any]:
  """kNN and linear-probe accuracy on the test split, alignment/uniformity,
  and a probe of each nuisance variable (speaker, subject) if present."""
  cfg = exp.config.eval
  nuisances = (cfg.nuisance,) if cfg.get("nuisance") else ()
  train = _embed(exp, state, exp.train_data, cfg.get("max_train_examples"),
                 nuisances)
  test = _embed(exp, state, exp.test_data, cfg.get("max_test_examples"),
                nuisances)
  results: dict[str, Any] = {"knn_accuracy": _knn(exp, train, test)}
  probe = eval_lib.linear_probe(
      train["features"], train["label"], test["features"], test["label"],
      num_classes=exp.train_data.info.num_classes,
      **dict(cfg.get("linear_probe", {})))
  results["linear_probe_accuracy"] = float(probe.test_accuracy)
  results["linear_probe_train_accuracy"] = float(probe.train_accuracy)
  results.update(_alignment_uniformity(
      exp, state, exp.test_data, int(cfg.get("alignment_examples", 512))))
  for name in nuisances:
    # Test-split features: the nuisance probe splits them at random, since a
    # subject-disjoint split would never show the probe the test subjects.
    nuisance = eval_lib.nuisance_probe(test["features"], test[name],
                                       seed=int(exp.config.seed))
    results[f"{name}_probe_accuracy"] = float(nuisance.accuracy)
    results[f"{name}_chance_accuracy"] = float(nuisance.chance_accuracy)
  return results
