"""Cluster-balanced sampler: composition, determinism, per-host slices."""
from __future__ import annotations

import numpy as np
import pytest

from contrastive.clustering import balanced
from contrastive.clustering import batching
from contrastive.data import ArrayDataset, BatchIterator, DatasetInfo

N, B = 103, 12


def _assignments(seed=0, k=5):
  return np.random.default_rng(seed).integers(0, k, N)


def _dataset():
  info = DatasetInfo(name="toy", split="train", modality="sensor",
                     num_classes=5, class_names=tuple("abcde"),
                     input_shape=(1,), input_dtype="float32")
  return ArrayDataset({"x": np.arange(N, dtype=np.float32)[:, None],
                       "label": np.zeros(N, np.int32)}, info)


@pytest.mark.parametrize("per_batch", [1, 2, 3])
def test_each_batch_is_blocks_of_single_clusters(per_batch):
  a = _assignments()
  sampler = balanced.ClusterBalancedSampler(
      B, clusters_per_batch=per_batch, seed=3, assignments=a)
  order = sampler.epoch_order(0)
  assert set(order) == set(range(N))          # a pass visits every example
  block = B // per_batch
  full = order[:len(order) // B * B].reshape(-1, per_batch, block)
  for batch in full:
    for blk in batch:
      assert len(set(a[blk])) == 1            # one cluster per block
    assert len(set(a[batch.reshape(-1)])) <= per_batch
  # Blocks repeat members only to complete a cluster's last block.
  counts = np.bincount(order, minlength=N)
  for c in range(5):
    members = np.flatnonzero(a == c)
    assert counts[members].sum() == -(-len(members) // block) * block


def test_deterministic_from_seed_and_epoch():
  a = _assignments()
  make = lambda seed: balanced.ClusterBalancedSampler(
      B, clusters_per_batch=2, seed=seed, assignments=a)
  np.testing.assert_array_equal(make(0).epoch_order(4), make(0).epoch_order(4))
  assert not np.array_equal(make(0).epoch_order(4), make(0).epoch_order(5))
  assert not np.array_equal(make(0).epoch_order(4), make(1).epoch_order(4))


def test_epoch_size_takes_consecutive_passes():
  sampler = balanced.ClusterBalancedSampler(
      B, clusters_per_batch=2, seed=0, epoch_size=30 * B,
      assignments=_assignments())
  order = sampler.epoch_order(2)
  assert len(order) == 30 * B                 # longer than one pass
  np.testing.assert_array_equal(order, sampler.epoch_order(2))


def _batches(process_index, process_count, steps, state=None):
  sampler = balanced.ClusterBalancedSampler(
      B, clusters_per_batch=2, seed=7, assignments=_assignments(1))
  it = BatchIterator(_dataset(), B, seed=7, sampler=sampler,
                     process_index=process_index, process_count=process_count)
  if state is not None:
    it.set_state(state)
  return [next(it)["index"] for _ in range(steps)], it.get_state()


def test_processes_slice_the_same_global_batches():
  """Three hosts' slices, concatenated in process order, are the one-host
  global batches, across an epoch boundary; a resume continues them."""
  steps = 12                                   # > one pass of ~10 batches
  single, _ = _batches(0, 1, steps)
  hosts = [_batches(p, 3, steps)[0] for p in range(3)]
  for t in range(steps):
    np.testing.assert_array_equal(
        np.concatenate([h[t] for h in hosts]), single[t])
  _, state = _batches(1, 3, 5)
  resumed, _ = _batches(1, 3, steps - 5, state)
  for t in range(5, steps):
    np.testing.assert_array_equal(resumed[t - 5], hosts[1][t])


def test_errors():
  with pytest.raises(ValueError, match="must divide the global batch"):
    balanced.ClusterBalancedSampler(B, clusters_per_batch=5)
  with pytest.raises(ValueError, match="multiple of the batch size"):
    balanced.ClusterBalancedSampler(B, epoch_size=B + 1)
  sampler = balanced.ClusterBalancedSampler(B)
  with pytest.raises(ValueError, match="set_assignments"):
    sampler.epoch_order(0)
  with pytest.raises(ValueError, match="ids >= 0"):
    sampler.set_assignments(np.full(N, -1))
  with pytest.raises(ValueError, match="unknown fields.*clusters_per_batch"):
    batching.parse_config({"clusters": 3}, batch_size=B, num_examples=N)
  with pytest.raises(ValueError, match="divide the global batch size 12"):
    batching.parse_config({"clusters_per_batch": 5}, batch_size=B,
                          num_examples=N)
  cfg = batching.parse_config({"recluster_every": 3}, batch_size=B,
                              num_examples=N)
  assert batching.make_sampler(cfg, batch_size=B, seed=0).epoch_size == 3 * B
