"""Deterministic, process-sharded, resumable batches over a random-access split.

An `IndexSampler` gives, for each epoch, the global order of example indices.
`BatchIterator` cuts that order into global batches of `batch_size` and
yields, on each process, only that process's contiguous slice of every
global batch: process p of P gets rows [p * B / P, (p + 1) * B / P). So the
slices concatenated in process order are exactly the global batch, whatever
the number of processes, and the global order depends only on the seed.

The state is `{'epoch', 'position', 'seed'}` with `position` the number of
examples of the epoch's order already consumed by all processes together;
it does not depend on the process count, so a run may resume on another
number of processes and still see the same global batches. A dataset that
crops its training views on the host (`host_crops`) is asked for them with
the epoch and the seed, so they too are the same on resumption and on any
number of processes.
"""
from __future__ import annotations

from typing import Any, Mapping, Protocol, runtime_checkable

import numpy as np

from contrastive.data import base


@runtime_checkable
class IndexSampler(Protocol):
  """epoch -> the global order of example indices for that epoch.

  An order may repeat or omit examples (e.g. a class- or cluster-balanced
  sampler); it must depend only on the sampler's arguments and `epoch`.
  """

  def epoch_order(self, epoch: int) -> np.ndarray:
    ...


class SequentialSampler:
  """Every epoch visits 0, 1, ..., num_examples - 1 in order."""

  def __init__(self, num_examples: int):
    if num_examples < 0:
      raise ValueError(f"num_examples must be >= 0, got {num_examples}.")
    self.num_examples = num_examples

  def epoch_order(self, epoch: int) -> np.ndarray:
    del epoch  # The same order every epoch.
    return np.arange(self.num_examples, dtype=np.int64)


class ShuffleSampler:
  """A fresh permutation of all examples per epoch, from (seed, epoch).

  The permutation is `np.random.default_rng([seed, epoch])`'s (PCG64 seeded
  through a SeedSequence), so it needs no state besides the epoch number.

  Example:
    ShuffleSampler(5, seed=0).epoch_order(3)  # a permutation of 0..4
  """

  def __init__(self, num_examples: int, seed: int):
    if num_examples < 0 or seed < 0:
      raise ValueError(f"num_examples and seed must be >= 0, got"
                       f" {num_examples} and {seed}.")
    self.num_examples, self.seed = num_examples, int(seed)

  def epoch_order(self, epoch: int) -> np.ndarray:
    rng = np.random.default_rng([self.seed, int(epoch)])
    return rng.permutation(self.num_examples).astype(np.int64)


def load_batch(dataset: base.Dataset, indices: np.ndarray, *, epoch: int,
               seed: int) -> base.Example:
  """The examples at `indices`: `dataset.get_views(indices, epoch=, seed=)`
  for a dataset that draws its training views on the host (its `crop` is
  set: `host_crops`), whose crops depend on (seed, epoch, index, view)
  only, else `dataset.get_batch(indices)`."""
  if getattr(dataset, "crop", None) is not None and hasattr(
      dataset, "get_views"):
    return dataset.get_views(indices, epoch=epoch, seed=seed)
  return dataset.get_batch(indices)


def _check_int(name: str, value: Any, low: int) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise ValueError(f"{name} must be an int, got {value!r}.")
  if value < low:
    raise ValueError(f"{name} must be >= {low}, got {value}.")
  return int(value)


class BatchIterator:
  """Yields this process's slice of each global batch, as a dict of arrays.

  Args:
    dataset: a random-access `Dataset` (len, get_batch).
    batch_size: the GLOBAL batch size, divisible by `process_count`.
    seed: seeds the default shuffling (ignored by a custom `sampler`, but
      kept in the state so a resume with another seed is caught).
    shuffle: a fresh permutation per epoch (default sampler only).
    drop_remainder: drop each epoch's last, incomplete global batch. If
      False, that batch is yielded and split over processes like
      `np.array_split` (slices may then differ in size by one).
    process_index: this process, in [0, process_count).
    process_count: the number of processes sharing each global batch.
    num_epochs: stop after this many epochs; None never stops.
    sampler: the `IndexSampler`; default `ShuffleSampler(len(dataset), seed)`
      or `SequentialSampler` when `shuffle` is False.

  Example:
    it = BatchIterator(ds, 256, seed=0, process_index=jax.process_index(),
                       process_count=jax.process_count())
    batch = next(it)                  # {'x': [256 / P, ...], 'label': ...}
    state = it.get_state()            # save beside the checkpoint
    it.set_state(state)               # later: the same next batches
  """

  def __init__(self, dataset: base.Dataset, batch_size: int, *, seed: int = 0,
               shuffle: bool = True, drop_remainder: bool = True,
               process_index: int = 0, process_count: int = 1,
               num_epochs: int | None = None,
               sampler: IndexSampler | None = None):
    self._batch_size = _check_int("batch_size", batch_size, 1)
    self._count = _check_int("process_count", process_count, 1)
    self._index = _check_int("process_index", process_index, 0)
    if self._index >= self._count:
      raise ValueError(f"process_index must be in [0, {self._count}), got"
                       f" {process_index}.")
    if self._batch_size % self._count:
      raise ValueError(f"batch_size {batch_size} must be divisible by"
                       f" process_count {process_count}.")
    if num_epochs is not None:
      num_epochs = _check_int("num_epochs", num_epochs, 0)
    self._seed = _check_int("seed", seed, 0)
    if sampler is None:
      sampler = (ShuffleSampler(len(dataset), self._seed) if shuffle
                 else SequentialSampler(len(dataset)))
    elif not isinstance(sampler, IndexSampler):
      raise ValueError(
          f"sampler must have epoch_order(epoch), got {sampler!r}.")
    self._dataset, self._sampler = dataset, sampler
    self._drop_remainder, self._num_epochs = drop_remainder, num_epochs
    self._epoch, self._position = 0, 0
    self._order_epoch, self._order = -1, np.zeros(0, np.int64)

  @property
  def local_batch_size(self) -> int:
    return self._batch_size // self._count

  @property
  def batch_size(self) -> int:
    """The global batch size."""
    return self._batch_size

  @property
  def drop_remainder(self) -> bool:
    return self._drop_remainder

  @property
  def num_epochs(self) -> int | None:
    return self._num_epochs

  def _epoch_order(self, epoch: int) -> np.ndarray:
    if self._order_epoch != epoch:
      order = np.asarray(self._sampler.epoch_order(epoch))
      if order.ndim != 1 or not np.issubdtype(order.dtype, np.integer):
        raise ValueError(f"epoch_order({epoch}) must be a 1-D integer array,"
                         f" got {order.dtype} {order.shape}.")
      self._order_epoch, self._order = epoch, order.astype(np.int64)
    return self._order

  def _batch_end(self, order_size: int) -> int | None:
    """End of the next global batch in the current epoch, None if none."""
    end = self._position + self._batch_size
    if end <= order_size:
      return end
    if not self._drop_remainder and self._position < order_size:
      return order_size
    return None

  def steps_per_epoch(self, epoch: int = 0) -> int:
    """Global batches in `epoch` (for samplers of varying epoch length)."""
    size = len(self._epoch_order(epoch))
    full, rest = divmod(size, self._batch_size)
    return full + (1 if rest and not self._drop_remainder else 0)

  def __iter__(self) -> BatchIterator:
    return self

  def __next__(self) -> base.Example:
    while True:
      if self._num_epochs is not None and self._epoch >= self._num_epochs:
        raise StopIteration
      order = self._epoch_order(self._epoch)
      end = self._batch_end(len(order))
      if end is not None:
        break
      if self._position == 0:
        raise ValueError(
            f"epoch {self._epoch} has {len(order)} examples, fewer than one"
            f" global batch of {self._batch_size} (drop_remainder="
            f"{self._drop_remainder}); it would loop forever.")
      self._epoch, self._position = self._epoch + 1, 0
    global_batch = order[self._position:end]
    if len(global_batch) == self._batch_size:
      size = self.local_batch_size
      local = global_batch[self._index * size:(self._index + 1) * size]
    else:
      local = np.array_split(global_batch, self._count)[self._index]
    self._position = end
    return load_batch(self._dataset, local, epoch=self._epoch,
                      seed=self._seed)

  def get_state(self) -> dict[str, int]:
    """The position after the last yielded batch; small and JSON-friendly."""
    return {"epoch": self._epoch, "position": self._position,
            "seed": self._seed}

  def set_state(self, state: Mapping[str, Any]) -> None:
    """Resumes from `get_state()`'s dict: the next batches are the same."""
    missing = {"epoch", "position"} - set(state)
    if missing:
      raise ValueError(
          f"state needs 'epoch' and 'position', got {dict(state)}.")
    if "seed" in state and int(state["seed"]) != self._seed:
      raise ValueError(f"state was saved with seed {state['seed']}, this"
                       f" iterator has seed {self._seed}.")
    epoch = _check_int("state['epoch']", state["epoch"], 0)
    position = _check_int("state['position']", state["position"], 0)
    size = len(self._epoch_order(epoch))
    if position > size:
      raise ValueError(f"state['position']={position} exceeds the {size}"
                       f" examples of epoch {epoch}.")
    self._epoch, self._position = epoch, position
