"""`BatchIterator`'s batches made ahead by grain worker processes.

Decoding and cropping images costs milliseconds an image on the host, so a
GPU or TPU host makes its batches in worker processes while the device
trains. `PrefetchIterator(iterator, num_workers)` yields exactly the
batches that `iterator` would (the same indices, the same host crops, which
depend only on (seed, epoch, index, view)), made by `num_workers` grain
worker processes (`grain`'s `mp_prefetch`; each worker makes whole batches,
in turn, on one thread, at most `buffer_size` ahead, and the batches come
back in order), and its state is the
wrapped iterator's `{'epoch', 'position', 'seed'}` after the last batch
*yielded*, not after the last one made: it is saved in checkpoints as
before, and a resumed run restarts the workers from it.

Batch k after the state `(epoch e, position p)` is the iterator's batch at
global batch number `e * S + p / B + k`, where S, the batches per epoch, must
be the same every epoch (the default samplers; a sampler of varying epoch
length needs `num_workers=0`, the plain iterator). `num_workers=0` yields
from the wrapped iterator in this process.

Example:
  it = PrefetchIterator(BatchIterator(ds, 256, seed=0), num_workers=8)
  batch = next(it); state = it.get_state(); it.set_state(state)
  it.close()
"""
from __future__ import annotations

import copy
from typing import Any, Mapping

from contrastive.data import base
from contrastive.data import iterator as iterator_lib

# grain reads absl flags in its workers; a program that has not parsed them
# (a test, a benchmark) would fail there.
_FLAGS_READY = False


def _ready_flags() -> None:
  global _FLAGS_READY
  if not _FLAGS_READY:
    from absl import flags  # pylint: disable=g-import-not-at-top
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()
    _FLAGS_READY = True


class _BatchAt:
  """Global batch number -> that batch, from a private copy of the iterator
  (pickled into each worker)."""

  def __init__(self, iterator: iterator_lib.BatchIterator, batch_size: int,
               steps_per_epoch: int):
    self._iterator = iterator
    self._batch_size, self._steps = batch_size, steps_per_epoch

  def __call__(self, number: int) -> base.Example:
    epoch, step = divmod(int(number), self._steps)
    self._iterator.set_state({"epoch": epoch,
                              "position": step * self._batch_size})
    return next(self._iterator)


class PrefetchIterator:
  """Yields `iterator`'s batches, made by `num_workers` worker processes.

  Args:
    iterator: a `BatchIterator` (its current state is the starting point).
    num_workers: worker processes; 0 makes the batches in this process.
    buffer_size: batches each worker makes ahead.
  """

  def __init__(self, iterator: iterator_lib.BatchIterator, num_workers: int,
               buffer_size: int = 2):
    if num_workers < 0 or buffer_size < 1:
      raise ValueError(f"num_workers must be >= 0 and buffer_size >= 1, got"
                       f" {num_workers} and {buffer_size}.")
    self._iterator = iterator
    self._num_workers, self._buffer_size = int(num_workers), int(buffer_size)
    self._stream = None
    self._start_number = 0

  @property
  def local_batch_size(self) -> int:
    return self._iterator.local_batch_size

  def _global_number(self) -> tuple[int, int]:
    """(global batch number of the next batch, batches per epoch)."""
    state = self._iterator.get_state()
    steps = self._iterator.steps_per_epoch(state["epoch"])
    # Batches per epoch must not vary: check the next epoch too.
    if steps < 1 or self._iterator.steps_per_epoch(
        state["epoch"] + 1) != steps:
      raise ValueError("PrefetchIterator needs the same number of batches"
                       " every epoch; use num_workers=0 with this sampler.")
    batch = self._iterator.batch_size
    if not self._iterator.drop_remainder or state["position"] % batch:
      raise ValueError("PrefetchIterator needs drop_remainder=True and a"
                       " state at a batch boundary.")
    return state["epoch"] * steps + state["position"] // batch, steps

  def _start(self) -> None:
    import grain  # pylint: disable=g-import-not-at-top
    _ready_flags()
    number, steps = self._global_number()
    batch, num_epochs = self._iterator.batch_size, self._iterator.num_epochs
    stop = 2**62 if num_epochs is None else num_epochs * steps
    make = _BatchAt(copy.deepcopy(self._iterator), batch, steps)
    dataset = grain.MapDataset.range(number, max(number, stop)).map(make)
    # No reading threads inside a worker (grain's default is 16 threads and
    # 500 elements ahead each): one worker is one core, and at most
    # `buffer_size` batches per worker wait in shared memory.
    read = grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)
    self._stream = iter(dataset.to_iter_dataset(read).mp_prefetch(
        grain.MultiprocessingOptions(
            num_workers=self._num_workers,
            per_worker_buffer_size=self._buffer_size)))

  def __iter__(self) -> PrefetchIterator:
    return self

  def __next__(self) -> base.Example:
    if self._num_workers == 0:
      return next(self._iterator)
    if self._stream is None:
      self._start()
    batch = next(self._stream)
    # Advance the wrapped iterator's state past this batch without loading
    # it: its position after the batch is the state to save.
    self._advance()
    return batch

  def _advance(self) -> None:
    it = self._iterator
    state = it.get_state()
    steps = it.steps_per_epoch(state["epoch"])
    position, epoch = state["position"] + it.batch_size, state["epoch"]
    if position // it.batch_size > steps:  # the batch opens the next epoch
      epoch, position = epoch + 1, it.batch_size
    it.set_state({"epoch": epoch, "position": position, "seed": state["seed"]})

  def get_state(self) -> dict[str, int]:
    """The position after the last batch yielded (as `BatchIterator`)."""
    return self._iterator.get_state()

  def set_state(self, state: Mapping[str, Any]) -> None:
    """Resumes from `state`: the workers restart from there."""
    self.close()
    self._iterator.set_state(state)

  def close(self) -> None:
    """Stops the worker processes (they restart on the next batch)."""
    if self._stream is not None:
      close = getattr(self._stream, "close", None)
      if close is not None:
        close()
      self._stream = None

  def __del__(self):
    try:
      self.close()
    except Exception:  # pylint: disable=broad-except
      pass
