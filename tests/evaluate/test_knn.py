"""Weighted kNN against a loop-based NumPy implementation of Wu et al. 2018."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.evaluate import knn_accuracy
from contrastive.evaluate import knn_predict

NUM_CLASSES = 4


def _reference_predict(train_x, train_y, test_x, num_classes, k, temperature):
  """Loops, float64, written from the formula; also returns tie margins."""
  train_u = train_x / np.linalg.norm(train_x, axis=1, keepdims=True)
  predictions, neighbour_gaps, score_gaps = [], [], []
  for query in test_x:
    q = query / np.linalg.norm(query)
    sims = np.array([float(np.dot(q, t)) for t in train_u])
    order = np.argsort(-sims, kind="stable")
    scores = np.zeros(num_classes)
    for idx in order[:k]:
      scores[train_y[idx]] += np.exp(sims[idx] / temperature)
    predictions.append(int(np.argmax(scores)))
    if k < len(sims):
      neighbour_gaps.append(sims[order[k - 1]] - sims[order[k]])
    top_two = np.sort(scores)[-2:]
    score_gaps.append((top_two[1] - top_two[0]) / top_two[1])
  gaps = (min(neighbour_gaps, default=np.inf), min(score_gaps))
  return np.array(predictions), gaps


@pytest.fixture(scope="module")
def data():
  rng = np.random.default_rng(0)
  train_x = rng.normal(size=(50, 8)).astype(np.float32)
  train_y = rng.integers(0, NUM_CLASSES, 50)
  test_x = rng.normal(size=(30, 8)).astype(np.float32)
  return train_x, train_y, test_x


@pytest.mark.parametrize(
    "k,temperature,chunk_size",
    [(1, 0.07, 256), (5, 0.07, 7), (20, 0.07, 1), (20, 0.5, 30),
     (50, 0.1, 8)],
)
def test_matches_numpy_reference(data, k, temperature, chunk_size):
  train_x, train_y, test_x = data
  expected, (neighbour_gap, score_gap) = _reference_predict(
      train_x.astype(np.float64), train_y, test_x.astype(np.float64),
      NUM_CLASSES, k, temperature,
  )
  # The data must be free of (near-)ties for the comparison to be defined.
  assert neighbour_gap > 1e-5 and score_gap > 1e-4
  got = knn_predict(
      train_x, train_y, test_x, num_classes=NUM_CLASSES, k=k,
      temperature=temperature, chunk_size=chunk_size,
  )
  assert got.shape == (30,) and got.dtype == jnp.int32
  np.testing.assert_array_equal(np.asarray(got), expected)


def test_k1_is_exact_nearest_neighbour(data):
  train_x, train_y, test_x = data
  train_u = train_x / np.linalg.norm(train_x, axis=1, keepdims=True)
  test_u = test_x / np.linalg.norm(test_x, axis=1, keepdims=True)
  nearest = np.argmax(test_u @ train_u.T, axis=1)
  got = knn_predict(train_x, train_y, test_x, num_classes=NUM_CLASSES, k=1)
  np.testing.assert_array_equal(np.asarray(got), train_y[nearest])
  # Each training point (rescaled: cosine ignores length) finds itself.
  scaled = train_x * np.linspace(0.1, 10.0, 50)[:, None].astype(np.float32)
  got = knn_predict(train_x, train_y, scaled, num_classes=NUM_CLASSES, k=1)
  np.testing.assert_array_equal(np.asarray(got), train_y)


def test_temperature_limits(data):
  """t -> 0 is the 1-NN rule; t -> infinity is an unweighted majority vote."""
  train_x, train_y, test_x = data
  train_y = train_y % 2  # two classes and odd k: the majority has no ties
  one_nn = knn_predict(train_x, train_y, test_x, num_classes=2, k=1)
  cold = knn_predict(
      train_x, train_y, test_x, num_classes=2, k=9, temperature=1e-4
  )
  np.testing.assert_array_equal(np.asarray(cold), np.asarray(one_nn))
  hot = knn_predict(
      train_x, train_y, test_x, num_classes=2, k=9, temperature=1e6
  )
  train_u = train_x / np.linalg.norm(train_x, axis=1, keepdims=True)
  top9 = np.argsort(-(test_x @ train_u.T), axis=1)[:, :9]
  majority = (train_y[top9].sum(axis=1) > 4).astype(int)
  np.testing.assert_array_equal(np.asarray(hot), majority)


def test_accuracy_is_mean_of_correct_predictions(data):
  train_x, train_y, test_x = data
  test_y = np.arange(30) % NUM_CLASSES
  predictions = knn_predict(
      train_x, train_y, test_x, num_classes=NUM_CLASSES, k=5
  )
  accuracy = knn_accuracy(
      train_x, train_y, test_x, test_y, num_classes=NUM_CLASSES, k=5
  )
  assert isinstance(accuracy, float)
  assert accuracy == pytest.approx(np.mean(np.asarray(predictions) == test_y))


def test_separated_clusters_are_classified_perfectly():
  rng = np.random.default_rng(1)
  centres = 5.0 * np.eye(3, 6)
  train_y, test_y = rng.integers(0, 3, 60), rng.integers(0, 3, 20)
  train_x = centres[train_y] + 0.3 * rng.normal(size=(60, 6))
  test_x = centres[test_y] + 0.3 * rng.normal(size=(20, 6))
  assert knn_accuracy(
      train_x, train_y, test_x, test_y, num_classes=3, k=20
  ) == 1.0
  # Labels shifted by one class make every prediction wrong.
  assert knn_accuracy(
      train_x, train_y, test_x, (test_y + 1) % 3, num_classes=3, k=20
  ) == 0.0


def test_jit_matches_eager(data):
  train_x, train_y, test_x = data
  predict = functools.partial(
      knn_predict, num_classes=NUM_CLASSES, k=5, chunk_size=8
  )
  eager = predict(train_x, train_y, test_x, temperature=0.1)
  jitted = jax.jit(predict)(
      jnp.asarray(train_x), jnp.asarray(train_y), jnp.asarray(test_x),
      temperature=0.1,
  )
  np.testing.assert_array_equal(np.asarray(jitted), np.asarray(eager))


@pytest.mark.parametrize(
    "change,message",
    [
        (dict(train_labels=np.zeros(49, int)), "49 entries"),
        (dict(train_labels=np.full(50, NUM_CLASSES)), r"\[0, 4\)"),
        (dict(train_labels=np.full(50, -1)), r"\[0, 4\)"),
        (dict(train_labels=np.zeros(50, np.float32)), "integers"),
        (dict(train_labels=np.zeros((50, 1), int)), "rank 1"),
        (dict(train_features=np.zeros(50)), "rank 2"),
        (dict(test_features=np.zeros((2, 30, 8))), "rank 2"),
        (dict(test_features=np.zeros((30, 7))), "same number of features"),
        (dict(k=51), "k must be <= the number of training examples"),
        (dict(k=0), "k must be >= 1"),
        (dict(temperature=0.0), "temperature"),
        (dict(chunk_size=0), "chunk_size"),
        (dict(num_classes=0), "num_classes"),
    ],
)
def test_errors(data, change, message):
  train_x, train_y, test_x = data
  kwargs = dict(
      train_features=train_x, train_labels=train_y, test_features=test_x,
      num_classes=NUM_CLASSES, k=5, temperature=0.07, chunk_size=4,
  )
  kwargs.update(change)
  with pytest.raises(ValueError, match=message):
    knn_predict(**kwargs)


def test_accuracy_errors(data):
  train_x, train_y, test_x = data
  with pytest.raises(ValueError, match="test_labels has 29 entries"):
    knn_accuracy(train_x, train_y, test_x, np.zeros(29, int), num_classes=4)
  with pytest.raises(ValueError, match="test_labels must lie in"):
    knn_accuracy(train_x, train_y, test_x, np.full(30, 7), num_classes=4)
  nan_x = train_x.copy()
  nan_x[3, 2] = np.nan
  with pytest.raises(ValueError, match="NaN"):
    knn_accuracy(nan_x, train_y, test_x, np.zeros(30, int), num_classes=4)
