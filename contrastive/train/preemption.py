"""SIGTERM handling: finish the current step, save, exit cleanly.

Cluster schedulers (SLURM, Cloud TPU maintenance, Kubernetes) send SIGTERM
before killing a job. The handler only sets a flag; the training loop checks
it between steps, writes a checkpoint and returns, so no work is lost.
"""
from __future__ import annotations

import signal
import threading


class PreemptionGuard:
  """Context manager that turns SIGTERM (and optionally SIGINT) into a flag.

  Example:
    with PreemptionGuard() as guard:
      for step in ...:
        ...
        if guard.requested:
          save(); break
  """

  def __init__(self, signals: tuple[int, ...] = (signal.SIGTERM,)):
    self._signals = signals
    self._event = threading.Event()
    self._previous = {}

  @property
  def requested(self) -> bool:
    return self._event.is_set()

  def request(self) -> None:
    """Asks the loop to stop at the next step boundary (also for tests)."""
    self._event.set()

  def _handler(self, signum, frame):
    del signum, frame
    self._event.set()

  def __enter__(self) -> "PreemptionGuard":
    # Signal handlers can only be installed from the main thread.
    if threading.current_thread() is threading.main_thread():
      for sig in self._signals:
        self._previous[sig] = signal.signal(sig, self._handler)
    return self

  def __exit__(self, *exc) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous.clear()
