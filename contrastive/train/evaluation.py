"""Evaluation of a train state: kNN during training, the full set at the end.

Features are the backbone's output (`'features'`), as in the linear-probe
protocol of SimCLR and MoCo; alignment and uniformity use the normalised
projections of two augmented views (Wang & Isola 2020). Under MCL the
representation is the concatenation of every stage's features (finished
stages first, then the current encoder); alignment and uniformity are the
current encoder's.
"""
from __future__ import annotations

from typing import Any

import jax
import numpy as np

from contrastive import augment as augment_lib
from contrastive import evaluate as eval_lib
from contrastive.clustering import stages
from contrastive.train import embedding


def _variables(state) -> dict[str, Any]:
  variables = {"params": state.params}
  if state.batch_stats:
    variables["batch_stats"] = state.batch_stats
  return variables


def representation_variables(state) -> list[dict[str, Any]]:
  """The encoders whose features, concatenated in this order, are the
  representation: MCL's finished stages, then the current encoder."""
  mcl = state.extra.get("mcl")
  earlier = stages.finished_encoders(mcl) if mcl is not None else []
  return [*earlier, _variables(state)]


def embed_representation(exp, state, dataset, max_examples=None,
                         metadata=()) -> dict[str, np.ndarray]:
  """'features' (the representation), 'label' and `metadata` of the first
  `max_examples` examples of `dataset`, as NumPy arrays."""
  fn = embedding.make_embed_fn(exp.deps.model, exp.preprocess, ("features",),
                               exp.mesh)
  parts = [embedding.embed_dataset(
      fn, variables, dataset, exp.mesh,
      batch_size=int(exp.config.eval.get("batch_size", 512)),
      max_examples=max_examples, metadata=metadata)
           for variables in representation_variables(state)]
  out = parts[-1]
  out["features"] = np.concatenate([p["features"] for p in parts], axis=-1)
  return out


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
  train = embed_representation(exp, state, exp.train_data,
                               cfg.get("monitor_train_examples", 5000))
  test = embed_representation(exp, state, exp.test_data,
                              cfg.get("monitor_test_examples", 1000))
  return {"knn_monitor": _knn(exp, train, test)}


def _alignment_uniformity(exp, state, dataset, max_examples) -> dict[str, float]:
  x = dataset.get_batch(
      embedding.subset_indices(len(dataset), max_examples))["x"]
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
  train = embed_representation(exp, state, exp.train_data,
                               cfg.get("max_train_examples"), nuisances)
  test = embed_representation(exp, state, exp.test_data,
                              cfg.get("max_test_examples"), nuisances)
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
