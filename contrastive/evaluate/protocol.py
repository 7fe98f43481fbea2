"""The evaluation protocol: one function that scores any representation.

A trained encoder's features, a random-init encoder's, and the simple input
features of `input_features` are all scored by `score_representation`, so
that every number of a results table is measured the same way:

* `knn_accuracy`: weighted kNN (k = 20, t = 0.07 by default) of each test
  example among the training features (`knn.py`);
* `linear_probe_accuracy` (and `linear_probe_train_accuracy`): multinomial
  logistic regression trained on the training features (`linear_probe.py`);
* for each nuisance variable (speaker, subject), `<name>_probe_accuracy` and
  `<name>_chance_accuracy` on the test features (`nuisance.py`).

The standard protocol uses every example of both splits (Fashion-MNIST:
60,000 training features, 10,000 test images; FSDD and UCI HAPT: their
whole splits); a config may cap them for quick monitors.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from contrastive.evaluate.knn import knn_accuracy
from contrastive.evaluate.linear_probe import linear_probe
from contrastive.evaluate.nuisance import nuisance_probe


def score_representation(
    train: Mapping[str, np.ndarray],
    test: Mapping[str, np.ndarray],
    *,
    num_classes: int,
    knn_k: int = 20,
    knn_temperature: float = 0.07,
    probe_options: Mapping[str, Any] | None = None,
    nuisances: Sequence[str] = (),
    seed: int = 0,
) -> dict[str, float]:
  """kNN, linear-probe and nuisance-probe accuracies of a representation.

  Args:
    train: `{'features': [N, F], 'label': [N]}` of the training split.
    test: `{'features': [M, F], 'label': [M], <nuisance>: [M]}` of the test
      split.
    num_classes: number of classes of `label`.
    knn_k: neighbours of the kNN vote.
    knn_temperature: temperature of the kNN vote's weights.
    probe_options: keyword arguments of `linear_probe` (e.g. `max_steps`).
    nuisances: names of test-split fields to probe (e.g. `('speaker',)`).
    seed: seeds the nuisance probes' stratified splits.

  Returns:
    `{'knn_accuracy', 'linear_probe_accuracy', 'linear_probe_train_accuracy',
    '<nuisance>_probe_accuracy', '<nuisance>_chance_accuracy'}`, floats in
    [0, 1].

  Example:
    >>> scores = score_representation(
    ...     {'features': x_train, 'label': y_train},
    ...     {'features': x_test, 'label': y_test}, num_classes=10)
    >>> scores['linear_probe_accuracy']
  """
  results = {"knn_accuracy": float(knn_accuracy(
      train["features"], train["label"], test["features"], test["label"],
      num_classes=num_classes, k=int(knn_k),
      temperature=float(knn_temperature)))}
  probe = linear_probe(
      train["features"], train["label"], test["features"], test["label"],
      num_classes=num_classes, **dict(probe_options or {}))
  results["linear_probe_accuracy"] = float(probe.test_accuracy)
  results["linear_probe_train_accuracy"] = float(probe.train_accuracy)
  for name in nuisances:
    # Test-split features: the nuisance probe splits them at random, since a
    # subject-disjoint split would never show the probe the test subjects.
    nuisance = nuisance_probe(test["features"], test[name], seed=int(seed))
    results[f"{name}_probe_accuracy"] = float(nuisance.accuracy)
    results[f"{name}_chance_accuracy"] = float(nuisance.chance_accuracy)
  return results


def score_with_config(train, test, *, num_classes: int, eval_config,
                      seed: int) -> dict[str, float]:
  """`score_representation` with the options of a run's `config.eval`
  (`knn_k`, `knn_temperature`, `linear_probe`, `nuisance`)."""
  nuisance = eval_config.get("nuisance")
  return score_representation(
      train, test, num_classes=num_classes,
      knn_k=int(eval_config.get("knn_k", 20)),
      knn_temperature=float(eval_config.get("knn_temperature", 0.07)),
      probe_options=dict(eval_config.get("linear_probe", {})),
      nuisances=(nuisance,) if nuisance else (), seed=seed)
