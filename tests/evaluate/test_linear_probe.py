"""Linear probe: separable data, scikit-learn agreement, objective, errors."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from contrastive.evaluate import linear_probe

# One shape for every problem below, so that each optimiser compiles once.
N_TRAIN, N_TEST, F, C = 600, 300, 10, 3


def _gaussian_problem(seed, separation):
  """Class-dependent Gaussian means, features of very different scales."""
  rng = np.random.default_rng(seed)
  centres = separation * rng.normal(size=(C, F))
  scales = rng.uniform(0.5, 3.0, F)
  offset = rng.normal(size=F)

  def draw(n):
    y = rng.integers(0, C, n)
    x = (centres[y] + rng.normal(size=(n, F))) * scales + offset
    return x.astype(np.float32), y

  return (*draw(N_TRAIN), *draw(N_TEST))


def _softmax(logits):
  e = np.exp(logits - logits.max(axis=1, keepdims=True))
  return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def noisy():
  return _gaussian_problem(0, separation=0.6)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam", "sgd"])
def test_separable_data_is_learned_perfectly(optimizer):
  x, y, xt, yt = _gaussian_problem(1, separation=10.0)
  result = linear_probe(
      x, y, xt, yt, num_classes=C, optimizer=optimizer, num_epochs=5,
      batch_size=64,
  )
  assert result.train_accuracy == 1.0
  assert result.test_accuracy == 1.0


def test_lbfgs_matches_scikit_learn(noisy):
  """Same objective as LogisticRegression(C=1) on standardised features."""
  x, y, xt, yt = noisy
  mean, std = x.astype(np.float64).mean(0), x.astype(np.float64).std(0)
  reference = LogisticRegression(C=1.0, tol=1e-8, max_iter=1000).fit(
      (x - mean) / std, y
  )
  result = linear_probe(
      x, y, xt, yt, num_classes=C, weight_decay=1.0 / N_TRAIN,
      tolerance=1e-6, return_weights=True,
  )
  assert 0.5 < result.test_accuracy < 0.95  # a noisy problem indeed
  assert result.train_accuracy == pytest.approx(
      reference.score((x - mean) / std, y), abs=0.02
  )
  assert result.test_accuracy == pytest.approx(
      reference.score((xt - mean) / std, yt), abs=0.02
  )
  # Beyond accuracy: the fitted class probabilities agree.
  ours = _softmax(xt @ result.weights + result.bias)
  theirs = reference.predict_proba((xt - mean) / std)
  np.testing.assert_allclose(ours, theirs, atol=1e-3)


def test_objective_and_folded_weights(noisy):
  """Returned weights act on raw features; the objective is the formula's."""
  x, y, xt, yt = noisy
  decay = 0.01
  result = linear_probe(
      x, y, xt, yt, num_classes=C, weight_decay=decay, return_weights=True
  )
  assert result.weights.shape == (F, C) and result.bias.shape == (C,)
  assert 0 < result.num_steps <= 200
  test_predictions = np.argmax(xt @ result.weights + result.bias, axis=1)
  assert result.test_accuracy == pytest.approx(np.mean(test_predictions == yt))
  logits = x.astype(np.float64) @ result.weights + result.bias
  cross_entropy = -np.mean(np.log(_softmax(logits)[np.arange(N_TRAIN), y]))
  # The penalty applies to the weights on standardised features.
  w_standardised = result.weights * x.astype(np.float64).std(0)[:, None]
  objective = cross_entropy + 0.5 * decay * np.sum(w_standardised**2)
  assert result.train_objective == pytest.approx(objective, rel=1e-4)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_minibatch_close_to_lbfgs_and_deterministic(noisy, optimizer):
  x, y, xt, yt = noisy
  # Few steps (one compilation for all tests), hence larger steps for Adam.
  options = dict(num_classes=C, weight_decay=1.0 / N_TRAIN, batch_size=64,
                 num_epochs=5, optimizer=optimizer, seed=3,
                 learning_rate={"adam": 0.05, "sgd": 0.1}[optimizer])
  first = linear_probe(x, y, xt, yt, **options)
  again = linear_probe(x, y, xt, yt, **options)
  assert first == again
  assert first.num_steps == 5 * (N_TRAIN // 64)
  exact = linear_probe(x, y, xt, yt, num_classes=C, weight_decay=1 / N_TRAIN)
  assert first.test_accuracy == pytest.approx(exact.test_accuracy, abs=0.05)
  # L-BFGS finds the minimum; five epochs come within 0.002 (Adam) and 0.005
  # (SGD) of it, while one epoch or a tenth of the step size stays >= 0.045.
  assert (exact.train_objective - 1e-4 <= first.train_objective
          <= exact.train_objective + 0.01)


def test_constant_feature_stays_finite(noisy):
  x, y, xt, yt = noisy
  x, xt = x.copy(), xt.copy()
  x[:, 0] = xt[:, 0] = 4.0
  result = linear_probe(x, y, xt, yt, num_classes=C, return_weights=True)
  assert np.all(np.isfinite(result.weights))
  assert result.test_accuracy > 0.5


def test_divergence_is_an_error(noisy):
  x, y, xt, yt = noisy
  with pytest.raises(ValueError, match="diverged"):
    linear_probe(x, y, xt, yt, num_classes=C, optimizer="sgd",
                 learning_rate=1e30, num_epochs=5, batch_size=64)


@pytest.mark.parametrize(
    "change,message",
    [
        (dict(optimizer="newton"), "valid values are: lbfgs, adam, sgd"),
        (dict(train_labels=np.zeros(N_TRAIN - 1, int)), "entries"),
        (dict(test_labels=np.full(N_TEST, C)), r"\[0, 3\)"),
        (dict(train_features=np.zeros((N_TRAIN, F, 1))), "rank 2"),
        (dict(test_features=np.zeros((N_TEST, F + 1))), "number of features"),
        (dict(weight_decay=-1.0), "weight_decay"),
        (dict(optimizer="adam", learning_rate=0.0), "learning_rate"),
        (dict(optimizer="sgd", batch_size=0), "batch_size"),
        (dict(optimizer="adam", momentum=1.0), "momentum"),
        (dict(max_steps=0), "max_steps"),
    ],
)
def test_errors(noisy, change, message):
  x, y, xt, yt = noisy
  kwargs = dict(train_features=x, train_labels=y, test_features=xt,
                test_labels=yt, num_classes=C)
  kwargs.update(change)
  with pytest.raises(ValueError, match=message):
    linear_probe(**kwargs)
