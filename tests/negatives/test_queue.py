"""Tests of the MoCo queue against a plain-Python FIFO of (key, metadata)."""
from __future__ import annotations

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.negatives import queue as queue_lib


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _batches(num, b, d, seed=0):
  rng = np.random.default_rng(seed)
  for step in range(num):
    keys = rng.normal(size=(b, d)).astype(np.float32) * 3.0
    labels = np.arange(b, dtype=np.int32) + 100 * step
    yield keys, labels


def test_fifo_order_and_overwrite():
  size, b, d = 8, 2, 3
  queue = queue_lib.init_queue(size, d, metadata=("label",))
  enqueue = jax.jit(queue_lib.enqueue)
  reference = collections.deque(maxlen=size)  # oldest first
  for step, (keys, labels) in enumerate(_batches(7, b, d)):
    queue = enqueue(queue, keys, label=labels)
    reference.extend(zip(_unit(keys), labels))
    filled = len(reference)
    ordered = np.asarray(queue_lib.ordered_keys(queue))
    ordered_labels = np.asarray(queue_lib.ordered_metadata(queue)["label"])
    ref_keys = np.stack([k for k, _ in reference])
    ref_labels = np.array([l for _, l in reference])
    # The newest `filled` rows are the reference, oldest first; rows never
    # written come first, with label -1 and valid False.
    np.testing.assert_allclose(ordered[size - filled:], ref_keys, atol=1e-6)
    np.testing.assert_array_equal(ordered_labels[size - filled:], ref_labels)
    np.testing.assert_array_equal(ordered_labels[: size - filled], -1)
    np.testing.assert_array_equal(ordered[: size - filled], 0.0)
    assert int(queue.count) == (step + 1) * b
    assert int(queue.ptr) == (step + 1) * b % size
    assert int(queue_lib.queue_negative_mask(queue).sum()) == filled
    per_anchor = queue_lib.queue_negative_mask(queue, num_anchors=3)
    np.testing.assert_array_equal(per_anchor, np.tile(queue.valid, (3, 1)))
    valid = np.asarray(queue_lib.ordered_rows(queue, queue.valid))
    np.testing.assert_array_equal(valid, np.arange(size) >= size - filled)


def test_raw_buffer_positions():
  # After 5 batches of 2 in a queue of 6, batch 4 (0-based) sits in rows 2:4.
  queue = queue_lib.init_queue(6, 4, metadata={"cluster": (2,)})
  all_keys = []
  for step, (keys, _) in enumerate(_batches(5, 2, 4, seed=1)):
    cl = np.full((2, 2), step, np.int32)
    queue = queue_lib.enqueue(queue, keys, cluster=cl)
    all_keys.append(_unit(keys))
  np.testing.assert_allclose(queue.keys[2:4], all_keys[4], atol=1e-6)
  np.testing.assert_allclose(queue.keys[0:2], all_keys[3], atol=1e-6)
  np.testing.assert_allclose(queue.keys[4:6], all_keys[2], atol=1e-6)
  np.testing.assert_array_equal(
      queue.metadata["cluster"][:, 0], [3, 3, 4, 4, 2, 2]
  )
  assert queue.metadata["cluster"].shape == (6, 2)


def test_keys_normalized_detached_and_dtype():
  queue = queue_lib.init_queue(4, 3, dtype=jnp.bfloat16)
  keys = jnp.array([[3.0, 4.0, 0.0], [0.0, 0.0, 2.0]])

  def loss(k):
    return jnp.sum(queue_lib.enqueue(queue, k).keys.astype(jnp.float32))

  new = queue_lib.enqueue(queue, keys)
  assert new.keys.dtype == jnp.bfloat16
  np.testing.assert_allclose(
      np.asarray(new.keys[:2], np.float32),
      [[0.6, 0.8, 0.0], [0, 0, 1]],
      atol=1e-2,
  )
  np.testing.assert_array_equal(jax.grad(loss)(keys), 0.0)


def test_random_init_is_unit_and_valid():
  queue = queue_lib.init_queue(
      16, 5, rng=jax.random.key(0), metadata=("label",)
  )
  np.testing.assert_allclose(np.linalg.norm(queue.keys, axis=1), 1.0, rtol=1e-5)
  assert bool(queue.valid.all())
  np.testing.assert_array_equal(queue.metadata["label"], -1)
  # Deterministic from the key, different for another key.
  again = queue_lib.init_queue(16, 5, rng=jax.random.key(0))
  other = queue_lib.init_queue(16, 5, rng=jax.random.key(1))
  np.testing.assert_array_equal(queue.keys, again.keys)
  assert not np.allclose(queue.keys, other.keys)


def test_is_a_pytree_for_scan():
  queue = queue_lib.init_queue(8, 2)
  keys = jnp.arange(2 * 4 * 2, dtype=jnp.float32).reshape(4, 2, 2) + 1.0

  def step(q, k):
    return queue_lib.enqueue(q, k), None

  queue, _ = jax.lax.scan(step, queue, keys)
  np.testing.assert_allclose(
      queue_lib.ordered_keys(queue),
      _unit(np.asarray(keys).reshape(8, 2)),
      rtol=1e-6,
  )
  assert len(jax.tree.leaves(queue)) == 4


def test_errors():
  queue = queue_lib.init_queue(10, 3, metadata=("label",))
  with pytest.raises(ValueError, match=r"K=10 must be a multiple .* b=4"):
    queue_lib.enqueue(queue, jnp.ones((4, 3)), label=jnp.zeros(4, jnp.int32))
  with pytest.raises(ValueError, match="dimension"):
    queue_lib.enqueue(queue, jnp.ones((5, 2)), label=jnp.zeros(5, jnp.int32))
  with pytest.raises(ValueError, match="metadata"):
    queue_lib.enqueue(queue, jnp.ones((5, 3)))
  with pytest.raises(ValueError, match="metadata"):
    queue_lib.enqueue(
        queue, jnp.ones((5, 3)), label=jnp.zeros(5), extra=jnp.zeros(5)
    )
  with pytest.raises(ValueError, match="integer"):
    queue_lib.enqueue(queue, jnp.ones((5, 3)), label=jnp.zeros(5))
  with pytest.raises(ValueError, match="shape"):
    queue_lib.enqueue(queue, jnp.ones((5, 3)), label=jnp.zeros(4, jnp.int32))
  with pytest.raises(ValueError, match="rank 2"):
    queue_lib.enqueue(queue, jnp.ones((5,)), label=jnp.zeros(5, jnp.int32))
  with pytest.raises(ValueError, match="floating"):
    queue_lib.init_queue(4, 2, dtype=jnp.int32)
  with pytest.raises(ValueError, match="size"):
    queue_lib.init_queue(0, 2)
  with pytest.raises(ValueError, match="string"):
    queue_lib.init_queue(4, 2, metadata="label")
