"""How much a representation reveals a nuisance variable.

A representation of speech digits should say which digit was spoken, not who
spoke it (speaker, for FSDD); one of human activities should not identify the
person (subject, for UCI HAPT). `nuisance_probe` trains the linear probe of
`linear_probe.py` to predict the nuisance label from frozen features and
reports its accuracy beside the majority-class chance level: the closer to
chance, the less the representation encodes the nuisance (the fairer it is,
in the sense of Tsai et al. 2022's conditional contrastive learning).

The split is a random split stratified by nuisance label over the given
features, not the dataset's subject- or speaker-disjoint split: under that
split the test speakers or subjects never occur in training, so no classifier
could name them and the probe would measure nothing.
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from contrastive.evaluate import _checks
# A `from` import: the package re-exports the function `linear_probe`, which
# shadows this module's attribute on the package.
from contrastive.evaluate.linear_probe import linear_probe

ArrayLike = jax.typing.ArrayLike

# linear_probe's keyword arguments that nuisance_probe sets itself.
_RESERVED_PROBE_OPTIONS = ("num_classes", "seed", "return_weights")


@dataclasses.dataclass(frozen=True)
class NuisanceProbeResult:
  """What `nuisance_probe` returns.

  Attributes:
    accuracy: linear-probe accuracy on the held-out part; lower is fairer.
    train_accuracy: the probe's accuracy on the part it was trained on.
    chance_accuracy: held-out accuracy of always predicting the most frequent
      nuisance value of the training part (the majority-class frequency).
    num_classes: number of distinct nuisance values.
    num_train: examples the probe was trained on.
    num_test: held-out examples.
  """

  accuracy: float
  train_accuracy: float
  chance_accuracy: float
  num_classes: int
  num_train: int
  num_test: int


def stratified_split(
    labels: np.ndarray, *, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
  """Random train/test indices holding out `test_fraction` of every class.

  Each class with `n >= 2` examples puts `round(test_fraction * n)` of them,
  clipped to `[1, n - 1]`, in the test part; a class seen once stays in
  training.

  Args:
    labels: `[N]` class labels (any values `np.unique` can sort).
    test_fraction: fraction in `(0, 1)` to hold out.
    seed: seeds the shuffle (NumPy's default generator).

  Returns:
    Sorted `(train_indices, test_indices)`, disjoint, covering `range(N)`.

  Example:
    >>> train, test = stratified_split(np.array([0, 0, 1, 1]),
    ...                                test_fraction=0.5, seed=0)
    >>> len(train), len(test)
    (2, 2)
  """
  if not 0.0 < test_fraction < 1.0:
    raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}.")
  labels = np.asarray(labels)
  rng = np.random.default_rng(seed)
  test_parts = []
  for value in np.unique(labels):
    members = rng.permutation(np.flatnonzero(labels == value))
    if len(members) >= 2:
      num_test = int(round(test_fraction * len(members)))
      test_parts.append(members[: min(max(num_test, 1), len(members) - 1)])
  test = np.sort(np.concatenate(test_parts)) if test_parts else np.zeros(0, int)
  train = np.setdiff1d(np.arange(len(labels)), test)
  return train, test


def nuisance_probe(
    features: ArrayLike,
    nuisance_labels: ArrayLike,
    *,
    seed: int,
    test_fraction: float = 0.3,
    probe_options: Mapping[str, Any] | None = None,
) -> NuisanceProbeResult:
  """Linear-probe accuracy of a nuisance variable, beside chance level.

  Args:
    features: `[N, F]` frozen features.
    nuisance_labels: `[N]` nuisance value of each example (speaker or subject
      ids, or strings); they are mapped to `0..K-1` internally, `K >= 2`.
    seed: seeds the stratified split and the probe.
    test_fraction: fraction of each nuisance value held out, in `(0, 1)`.
    probe_options: further keyword arguments of `linear_probe` (optimizer,
      weight_decay, ...); its defaults otherwise.

  Returns:
    A `NuisanceProbeResult`.

  Example:
    >>> speaker = np.repeat(np.arange(3), 20)
    >>> feats = np.eye(3)[speaker] + 0.01 * np.arange(60)[:, None]
    >>> result = nuisance_probe(feats, speaker, seed=0)
    >>> result.accuracy, round(result.chance_accuracy, 2)
    (1.0, 0.33)
  """
  _checks.check_features("features", features)
  labels = np.asarray(nuisance_labels)
  if labels.ndim != 1 or labels.shape[0] != jnp.shape(features)[0]:
    raise ValueError(
        "nuisance_labels must have shape [N] with N the number of feature"
        f" rows ({jnp.shape(features)[0]}), got shape {labels.shape}."
    )
  options = dict(probe_options or {})
  valid = set(inspect.signature(linear_probe).parameters)
  valid -= {"train_features", "train_labels", "test_features", "test_labels"}
  valid -= set(_RESERVED_PROBE_OPTIONS)
  unknown = sorted(set(options) - valid)
  if unknown:
    raise ValueError(
        f"Unknown probe_options {unknown}; valid keys are:"
        f" {', '.join(sorted(valid))}."
    )
  classes, codes = np.unique(labels, return_inverse=True)
  if len(classes) < 2:
    raise ValueError(
        "nuisance_labels must take at least 2 distinct values, got"
        f" {len(classes)}."
    )
  train, test = stratified_split(codes, test_fraction=test_fraction, seed=seed)
  if len(test) == 0:
    raise ValueError(
        "No example could be held out: every nuisance value occurs once."
    )
  features = np.asarray(features)
  result = linear_probe(
      features[train], codes[train], features[test], codes[test],
      num_classes=len(classes), seed=seed, **options,
  )
  majority = np.argmax(np.bincount(codes[train], minlength=len(classes)))
  return NuisanceProbeResult(
      accuracy=result.test_accuracy,
      train_accuracy=result.train_accuracy,
      chance_accuracy=float(np.mean(codes[test] == majority)),
      num_classes=len(classes),
      num_train=len(train),
      num_test=len(test),
  )
