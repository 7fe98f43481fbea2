"""`launch.main` with a data failure injected into one process (for
test_multiprocess_launcher.py): process `--fail_process` raises on its
`--fail_at_batch`-th training batch, as a corrupt file or a lost mount
would on one host of a cluster."""
from __future__ import annotations

import sys

from absl import app
from absl import flags

sys.path.insert(0, ".")
from launch import main as launch_main  # pylint: disable=g-import-not-at-top,wrong-import-position

_FAIL_PROCESS = flags.DEFINE_integer("fail_process", 1, "Which process fails.")
_FAIL_AT = flags.DEFINE_integer("fail_at_batch", 10, "Its failing batch.")


class _Failing:
  """Wraps a batch iterator; raises on the chosen batch."""

  def __init__(self, inner, fail_at: int):
    self._inner, self._fail_at, self._count = inner, fail_at, 0

  def __next__(self):
    self._count += 1
    if self._count == self._fail_at:
      raise OSError("injected data failure (test): a shard went missing")
    return next(self._inner)

  def __getattr__(self, name):
    return getattr(self._inner, name)


def main(argv):
  import jax  # pylint: disable=g-import-not-at-top
  from contrastive.train import experiment  # pylint: disable=g-import-not-at-top
  original = experiment.Experiment.train_iterator

  def train_iterator(self):
    iterator = original(self)
    if jax.process_index() == _FAIL_PROCESS.value:
      return _Failing(iterator, _FAIL_AT.value)
    return iterator

  experiment.Experiment.train_iterator = train_iterator
  launch_main.main(argv)


if __name__ == "__main__":
  app.run(main)
