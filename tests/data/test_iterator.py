"""BatchIterator: determinism, coverage, process sharding, resumption."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from contrastive.data import base
from contrastive.data import iterator as iterator_lib


def _dataset(n: int = 23) -> base.ArrayDataset:
  info = base.DatasetInfo(
      name="toy", split="train", modality="sensor", num_classes=3,
      class_names=("a", "b", "c"), input_shape=(2,), input_dtype="float32")
  x = np.stack([np.arange(n), -np.arange(n)], axis=1).astype(np.float32)
  return base.ArrayDataset({"x": x, "label": np.arange(n, dtype=np.int32) % 3},
                           info)


def _indices(it, steps):
  return [next(it)["index"].tolist() for _ in range(steps)]


def test_same_seed_same_batches_other_seed_differs():
  ds = _dataset()
  a = _indices(iterator_lib.BatchIterator(ds, 4, seed=3), 12)
  b = _indices(iterator_lib.BatchIterator(ds, 4, seed=3), 12)
  c = _indices(iterator_lib.BatchIterator(ds, 4, seed=4), 12)
  assert a == b and a != c


def test_every_example_once_per_epoch_fresh_order():
  ds = _dataset(24)
  it = iterator_lib.BatchIterator(ds, 6, seed=0, num_epochs=3)
  epochs = [sum(_indices(it, 4), []) for _ in range(3)]
  for order in epochs:
    assert sorted(order) == list(range(24))
  assert epochs[0] != epochs[1] != epochs[2]
  with pytest.raises(StopIteration):
    next(it)
  # The order is the sampler's: ShuffleSampler(seed, epoch) permutations.
  sampler = iterator_lib.ShuffleSampler(24, seed=0)
  assert epochs[1] == sampler.epoch_order(1).tolist()


def test_batch_contents_match_the_dataset():
  ds = _dataset()
  batch = next(iterator_lib.BatchIterator(ds, 5, seed=1))
  np.testing.assert_array_equal(batch["x"][:, 0], batch["index"])
  np.testing.assert_array_equal(batch["label"], batch["index"] % 3)


def test_drop_remainder():
  ds = _dataset(23)
  dropped = iterator_lib.BatchIterator(ds, 5, shuffle=False, num_epochs=1)
  assert [len(b) for b in _indices(dropped, 4)] == [5] * 4
  with pytest.raises(StopIteration):
    next(dropped)
  kept = iterator_lib.BatchIterator(ds, 5, shuffle=False, num_epochs=1,
                                    drop_remainder=False)
  batches = list(iter(kept))
  assert [len(b["index"]) for b in batches] == [5, 5, 5, 5, 3]
  assert np.concatenate([b["index"] for b in batches]).tolist() == list(
      range(23))
  assert kept.steps_per_epoch() == 5 and dropped.steps_per_epoch() == 4


@pytest.mark.parametrize("count", [2, 4])
@pytest.mark.parametrize("drop_remainder", [True, False])
def test_process_slices_concatenate_to_the_global_batch(count, drop_remainder):
  ds = _dataset(23)
  kwargs = dict(seed=7, num_epochs=2, drop_remainder=drop_remainder)
  single = list(iterator_lib.BatchIterator(ds, 8, **kwargs))
  per_process = [list(iterator_lib.BatchIterator(
      ds, 8, process_index=p, process_count=count, **kwargs))
                 for p in range(count)]
  assert all(len(batches) == len(single) for batches in per_process)
  for step, global_batch in enumerate(single):
    for key in global_batch:
      joined = np.concatenate([per_process[p][step][key]
                               for p in range(count)])
      np.testing.assert_array_equal(joined, global_batch[key])
    if len(global_batch["index"]) == 8:
      assert all(len(per_process[p][step]["index"]) == 8 // count
                 for p in range(count))


@pytest.mark.parametrize("stop", [0, 3, 4, 5, 9])
def test_resume_gives_identical_batches(stop):
  ds = _dataset(23)
  reference = _indices(iterator_lib.BatchIterator(ds, 5, seed=11), 14)
  first = iterator_lib.BatchIterator(ds, 5, seed=11)
  _indices(first, stop)
  state = json.loads(json.dumps(first.get_state()))  # As a checkpoint does.
  resumed = iterator_lib.BatchIterator(ds, 5, seed=11)
  resumed.set_state(state)
  assert _indices(resumed, 14 - stop) == reference[stop:]


def test_resume_on_another_process_count():
  ds = _dataset(24)
  single = iterator_lib.BatchIterator(ds, 6, seed=2)
  _indices(single, 5)
  state = single.get_state()
  expected = _indices(single, 3)
  halves = []
  for p in range(2):
    it = iterator_lib.BatchIterator(ds, 6, seed=2, process_index=p,
                                    process_count=2)
    it.set_state(state)
    halves.append(_indices(it, 3))
  assert [a + b for a, b in zip(*halves)] == expected


def test_state_is_small_and_json():
  it = iterator_lib.BatchIterator(_dataset(), 4, seed=5)
  _indices(it, 7)
  state = it.get_state()
  assert state == {"epoch": 1, "position": 8, "seed": 5}
  assert json.loads(json.dumps(state)) == state


class _EveryOtherSampler:
  """A custom sampler: even indices, repeated twice, shuffled by epoch."""

  def epoch_order(self, epoch):
    order = np.repeat(np.arange(0, 10, 2), 2)
    return np.random.default_rng(epoch).permutation(order)


def test_custom_sampler_plugs_in():
  it = iterator_lib.BatchIterator(_dataset(), 5, sampler=_EveryOtherSampler(),
                                  num_epochs=2)
  seen = [b["index"] for b in it]
  assert len(seen) == 4
  for epoch in range(2):
    order = np.concatenate(seen[2 * epoch:2 * epoch + 2])
    np.testing.assert_array_equal(order,
                                  _EveryOtherSampler().epoch_order(epoch))


def test_sequential_sampler():
  it = iterator_lib.BatchIterator(_dataset(6), 3, shuffle=False)
  assert list(itertools.islice((b["index"].tolist() for b in it), 3)) == [
      [0, 1, 2], [3, 4, 5], [0, 1, 2]]


def test_bad_arguments():
  ds = _dataset()
  with pytest.raises(ValueError, match="divisible by process_count"):
    iterator_lib.BatchIterator(ds, 6, process_count=4)
  with pytest.raises(ValueError, match=r"process_index must be in \[0, 2\)"):
    iterator_lib.BatchIterator(ds, 6, process_index=2, process_count=2)
  with pytest.raises(ValueError, match="batch_size must be >= 1"):
    iterator_lib.BatchIterator(ds, 0)
  with pytest.raises(ValueError, match="batch_size must be an int"):
    iterator_lib.BatchIterator(ds, 4.0)
  with pytest.raises(ValueError, match="epoch_order"):
    iterator_lib.BatchIterator(ds, 4, sampler=object())
  too_big = iterator_lib.BatchIterator(ds, 24)
  with pytest.raises(ValueError, match="fewer than one global batch"):
    next(too_big)


def test_bad_states():
  it = iterator_lib.BatchIterator(_dataset(), 4, seed=1)
  with pytest.raises(ValueError, match="seed 2"):
    it.set_state({"epoch": 0, "position": 0, "seed": 2})
  with pytest.raises(ValueError, match="exceeds the 23 examples"):
    it.set_state({"epoch": 0, "position": 24})
  with pytest.raises(ValueError, match="needs 'epoch' and 'position'"):
    it.set_state({"epoch": 0})
  with pytest.raises(ValueError, match="must be >= 0"):
    it.set_state({"epoch": -1, "position": 0})
