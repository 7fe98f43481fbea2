"""Nuisance probe: stratified split, encoded vs independent nuisance, errors."""
from __future__ import annotations

import numpy as np
import pytest

from contrastive.evaluate import nuisance_probe
from contrastive.evaluate import stratified_split

# One shape for the probes below, so the linear probe compiles once.
N, F, K = 300, 6, 3


def _speakers(seed):
  return np.random.default_rng(seed).permutation(np.arange(N) % K)


def test_stratified_split_partitions_each_class():
  labels = np.repeat([0, 1, 2, 3], [10, 7, 2, 1])
  train, test = stratified_split(labels, test_fraction=0.3, seed=0)
  assert len(np.intersect1d(train, test)) == 0
  np.testing.assert_array_equal(np.union1d(train, test), np.arange(20))
  # round(0.3 n) clipped to [1, n - 1]; a singleton class stays in training.
  np.testing.assert_array_equal(
      np.bincount(labels[test], minlength=4), [3, 2, 1, 0]
  )
  again = stratified_split(labels, test_fraction=0.3, seed=0)
  np.testing.assert_array_equal(again[1], test)
  other = stratified_split(labels, test_fraction=0.3, seed=1)
  assert not np.array_equal(other[1], test)


def test_features_that_encode_the_nuisance_reveal_it():
  speaker = _speakers(0)
  rng = np.random.default_rng(0)
  features = np.eye(F)[speaker] * 2.0 + 0.5 * rng.normal(size=(N, F))
  result = nuisance_probe(features, speaker, seed=0)
  assert result.num_classes == K
  assert (result.num_train, result.num_test) == (210, 90)
  assert result.accuracy > 0.95
  assert result.chance_accuracy == pytest.approx(1 / K)


def test_independent_features_give_chance_accuracy():
  speaker = _speakers(1)
  features = np.random.default_rng(1).normal(size=(N, F))
  result = nuisance_probe(features, speaker, seed=1)
  # 90 held-out examples: the standard error of an accuracy is about 0.05.
  assert abs(result.accuracy - result.chance_accuracy) < 0.15


def test_chance_is_the_majority_frequency_and_labels_may_be_strings():
  names = np.array(["alice"] * 210 + ["bob"] * 60 + ["carol"] * 30)
  features = np.random.default_rng(2).normal(size=(N, F))
  result = nuisance_probe(
      features, names, seed=2, probe_options={"weight_decay": 0.1}
  )
  assert result.chance_accuracy == pytest.approx(0.7)
  assert result.accuracy >= result.chance_accuracy - 0.1


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(nuisance_labels=np.zeros(N, int)), "at least 2 distinct"),
        (dict(nuisance_labels=np.arange(N - 1) % K), "shape"),
        (dict(nuisance_labels=np.arange(N)), "every nuisance value occurs"),
        (dict(test_fraction=1.0), "test_fraction"),
        (dict(probe_options={"learning_rat": 0.1}), "valid keys are"),
        (dict(probe_options={"num_classes": 2}), "Unknown probe_options"),
        (dict(features=np.zeros(N)), "rank 2"),
    ],
)
def test_errors(kwargs, message):
  arguments = dict(
      features=np.zeros((N, F)), nuisance_labels=np.arange(N) % K, seed=0
  )
  arguments.update(kwargs)
  with pytest.raises(ValueError, match=message):
    nuisance_probe(**arguments)
