"""Weighted k-nearest-neighbour classification of frozen features.

The monitor of Wu et al. 2018 ("Unsupervised Feature Learning via
Non-Parametric Instance Discrimination", section 3.4), used by SimCLR/MoCo
style code bases to track representation quality during training: features
are L2-normalised, each test query takes its `k` most cosine-similar training
examples, neighbour `i` votes for its class with weight `exp(s_i / t)`, and
the prediction is the class with the largest sum of weights.

Queries are processed in chunks of `chunk_size` (a `jax.lax.map` inside one
compiled function), so the similarity matrix held in memory is
`[chunk_size, N_train]`: 256 x 60,000 float32 is 61 MB.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from contrastive import checks
from contrastive.evaluate import _checks

Array = jax.Array
ArrayLike = jax.typing.ArrayLike


@functools.partial(
    jax.jit, static_argnames=("num_classes", "k", "chunk_size")
)
def _knn_predict(
    train_features: Array,
    train_labels: Array,
    test_features: Array,
    temperature: Array,
    *,
    num_classes: int,
    k: int,
    chunk_size: int,
) -> Array:
  train_u = checks.l2_normalize(train_features)
  test_u = checks.l2_normalize(test_features)
  train_labels = jnp.asarray(train_labels, jnp.int32)
  num_test, num_features = test_u.shape
  chunk = min(chunk_size, num_test)
  num_chunks = -(-num_test // chunk)
  padded = jnp.pad(test_u, ((0, num_chunks * chunk - num_test), (0, 0)))
  chunks = padded.reshape(num_chunks, chunk, num_features)

  def predict_chunk(queries: Array) -> Array:
    # HIGHEST precision: accelerators otherwise round float32 matmuls to
    # bfloat16 passes, which reorders close neighbours.
    sims = jnp.matmul(
        queries, train_u.T, precision=jax.lax.Precision.HIGHEST
    )
    top_sims, top_idx = jax.lax.top_k(sims, k)
    # Without the barrier XLA:CPU fuses top_k with the ops below and falls
    # back to a full sort of every row: 20x slower at N_train = 60,000.
    top_sims, top_idx = jax.lax.optimization_barrier((top_sims, top_idx))
    # exp((s - s_max) / t) is exp(s / t) divided by a per-query constant: the
    # argmax is unchanged, and neither overflow (s / t up to 1 / t) nor
    # underflow of every weight (small t) can happen.
    weights = jnp.exp((top_sims - top_sims[:, :1]) / temperature)
    votes = jax.nn.one_hot(train_labels[top_idx], num_classes)
    scores = jnp.einsum("qk,qkc->qc", weights, votes)
    return jnp.argmax(scores, axis=-1).astype(jnp.int32)

  predictions = jax.lax.map(predict_chunk, chunks)
  return predictions.reshape(-1)[:num_test]


def knn_predict(
    train_features: ArrayLike,
    train_labels: ArrayLike,
    test_features: ArrayLike,
    *,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    chunk_size: int = 256,
) -> Array:
  """Predicts test labels by a similarity-weighted vote of the k nearest.

  Cosine similarity `s` on L2-normalised features; each of the `k` most
  similar training examples votes for its label with weight `exp(s / t)`;
  the prediction is the class with the largest total weight (ties go to the
  smaller class index). Wu et al. 2018 use `k = 200, t = 0.07`; `k = 20` is
  the common cheaper monitor.

  Args:
    train_features: `[N_train, F]` features of the labelled reference set.
    train_labels: `[N_train]` integer labels in `[0, num_classes)`.
    test_features: `[N_test, F]` features to classify.
    num_classes: number of classes `C`.
    k: number of neighbours, `1 <= k <= N_train`.
    temperature: `t > 0` of the weights `exp(s / t)`.
    chunk_size: queries per chunk; memory is `chunk_size * N_train` floats.

  Returns:
    `[N_test]` int32 predicted labels.

  Example:
    >>> train = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> knn_predict(train, jnp.array([0, 1]), jnp.array([[2.0, 0.1]]),
    ...             num_classes=2, k=1)
    Array([0], dtype=int32)
  """
  _checks.check_features("train_features", train_features)
  _checks.check_features("test_features", test_features)
  checks.check_same_feature_dim(
      "train_features", train_features, "test_features", test_features
  )
  _checks.check_int_at_least("num_classes", num_classes, 1)
  num_train = jnp.shape(train_features)[0]
  _checks.check_labels("train_labels", train_labels, num_train, num_classes)
  _checks.check_int_at_least("k", k, 1)
  if k > num_train:
    raise ValueError(
        f"k must be <= the number of training examples ({num_train}), got"
        f" k={k}."
    )
  _checks.check_positive("temperature", temperature)
  _checks.check_int_at_least("chunk_size", chunk_size, 1)
  return _knn_predict(
      jnp.asarray(train_features),
      jnp.asarray(train_labels),
      jnp.asarray(test_features),
      jnp.asarray(temperature, jnp.float32),
      num_classes=int(num_classes),
      k=int(k),
      chunk_size=int(chunk_size),
  )


def knn_accuracy(
    train_features: ArrayLike,
    train_labels: ArrayLike,
    test_features: ArrayLike,
    test_labels: ArrayLike,
    *,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    chunk_size: int = 256,
) -> float:
  """Fraction of test examples whose weighted kNN prediction is correct.

  See `knn_predict` for the classifier (Wu et al. 2018) and the arguments;
  `test_labels` is `[N_test]` integers in `[0, num_classes)`.

  Returns:
    The accuracy in `[0, 1]` as a Python float.

  Example:
    >>> train = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]])
    >>> knn_accuracy(train, jnp.array([0, 1, 0]), train[:2], jnp.array([0, 1]),
    ...              num_classes=2, k=1)
    1.0
  """
  _checks.check_features("test_features", test_features)
  _checks.check_int_at_least("num_classes", num_classes, 1)
  _checks.check_labels(
      "test_labels", test_labels, jnp.shape(test_features)[0], num_classes
  )
  predictions = knn_predict(
      train_features,
      train_labels,
      test_features,
      num_classes=num_classes,
      k=k,
      temperature=temperature,
      chunk_size=chunk_size,
  )
  correct = np.asarray(predictions) == np.asarray(test_labels)
  return float(np.mean(correct))
