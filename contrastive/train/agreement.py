"""Every process of a multi-host run stops after the same step.

A SIGTERM reaches the processes of a job at different moments, or only some
of them; a host-side error (a data read, a hook) happens on one process
only. If each process acted on its own flag, one would start a checkpoint
save (a collective) or the next train step (another collective) that the
others never join, and all of them would hang until the scheduler kills
them, losing the work since the last periodic checkpoint.

So before each step the processes exchange their flags through JAX's
coordination service (the key-value store and a barrier of
`jax.distributed`, host-side RPCs that overlap the device's work) and all
act on the most severe one: an error anywhere stops everyone (the others
raise `PeerFailure` naming the process and its error), a preemption
anywhere makes everyone save the same step and return. A single process
needs no exchange.

Example:
  agreement = StopAgreement(timeout_s=1800)
  for step in ...:
    decision = agreement.agree(Stop.PREEMPTED if guard.requested else
                               Stop.NONE)
    if decision.reason is not Stop.NONE: ...
"""
from __future__ import annotations

import dataclasses
import enum

import jax


class Stop(enum.IntEnum):
  """Why a process wants to stop, in increasing severity (the agreed
  reason is the most severe any process reported)."""

  NONE = 0
  PREEMPTED = 1
  ERROR = 2


@dataclasses.dataclass(frozen=True)
class Decision:
  """The agreed outcome of one exchange.

  Attributes:
    reason: the most severe reason any process reported.
    process: the lowest process index that reported it (-1 for NONE).
    message: that process's message (its error), else ''.
  """

  reason: Stop
  process: int = -1
  message: str = ""


class PeerFailure(RuntimeError):
  """Another process of the run stopped with an error; this one stops too
  instead of waiting for it in a collective."""


class AgreementTimeout(RuntimeError):
  """A process did not reach the exchange in time (it died or hangs)."""


# Values are "<reason>:<message>"; keys live under one prefix per
# agreement object, so that two loops in one job never share a barrier.
_PREFIX = "contrastive/stop"


class StopAgreement:
  """Agrees on whether (and why) to stop, once per call, across processes.

  Every process must call `agree` the same number of times (once before
  each step and once after the last); the i-th calls of all processes form
  one exchange. With one process, `agree` returns the local reason.

  Args:
    timeout_s: how long to wait for the other processes at an exchange (it
      must cover the slowest host-side work between two steps on any
      process: the first step's compilation, an evaluation, a save).
    name: distinguishes the agreements of one job (each loop of a process
      creates one; all processes create them in the same order).
  """

  _instances = 0

  def __init__(self, *, timeout_s: float = 1800.0, name: str | None = None):
    if timeout_s <= 0:
      raise ValueError(f"timeout_s must be > 0, got {timeout_s}.")
    self._timeout_ms = int(timeout_s * 1000)
    StopAgreement._instances += 1
    self._name = name or str(StopAgreement._instances)
    self._calls = 0
    self._client = None
    if jax.process_count() > 1:
      from jax._src import distributed  # pylint: disable=g-import-not-at-top
      self._client = distributed.global_state.client
      if self._client is None:
        raise RuntimeError("jax.process_count() > 1 but jax.distributed has"
                           " no client; call jax.distributed.initialize().")

  @property
  def exchanges(self) -> int:
    """How many exchanges this process has taken part in."""
    return self._calls

  def agree(self, reason: Stop, message: str = "") -> Decision:
    """Reports this process's `reason` and returns the agreed decision.

    Raises:
      AgreementTimeout: some process did not report within `timeout_s`.
    """
    call, self._calls = self._calls, self._calls + 1
    if self._client is None:
      return Decision(reason, 0 if reason else -1, message)
    pid = jax.process_index()
    exchange = f"{_PREFIX}/{self._name}/{call}"
    self._client.key_value_set(f"{exchange}/{pid}",
                               f"{int(reason)}:{message}")
    try:
      self._client.wait_at_barrier(exchange, self._timeout_ms)
    except Exception as e:  # pylint: disable=broad-except
      raise AgreementTimeout(
          f"process {pid}: not every process reached stop exchange {call}"
          f" within {self._timeout_ms / 1000:.0f} s (a process died or"
          f" hangs; raise config.train.agreement_timeout_s if a step or an"
          f" evaluation legitimately takes longer): {e}") from e
    reports = []
    for key, value in self._client.key_value_dir_get(f"{exchange}/"):
      code, _, text = value.partition(":")
      reports.append((Stop(int(code)), int(key.rsplit("/", 1)[-1]), text))
    if call >= 2:
      # Everyone has passed exchange call-1, so all read call-2's keys.
      self._client.key_value_delete(f"{_PREFIX}/{self._name}/{call - 2}/{pid}")
    worst = max(r[0] for r in reports)
    if worst is Stop.NONE:
      return Decision(Stop.NONE)
    first = min((r for r in reports if r[0] is worst), key=lambda r: r[1])
    return Decision(worst, first[1], first[2])
