"""Claims on a shared folder: which worker runs what, surviving dead workers.

Several workers (a SLURM array, or N processes on one machine) run one sweep
from one shared workdir. Before running a (dataset, method) group a worker
claims it here; a claim is a file, so the only thing the workers share is the
filesystem (no server, no database).

Layout: `<root>/<key>/<generation>.claim`, generations 000000, 000001, ...
The holder of `key` is the writer of its highest generation, for as long as
that file's heartbeat is fresh. A claim file holds the worker's identity
(JSON: name, host, pid) and its mtime is the heartbeat, refreshed by a
background thread every `heartbeat_s` while the claim is held.

- Claiming a free key creates generation 0 with O_CREAT | O_EXCL: atomic on
  a local disk and on NFS v3+, so two workers never both create it.
- A claim is stale when its heartbeat is older than `timeout_s` (its worker
  was killed, its node died, or it hung), when it was released (mtime set
  to 0), or at once when its worker is a process of this machine that no
  longer exists (a `kill -9` of a local worker is re-claimed immediately,
  not after the timeout).
- Taking over a stale claim creates the next generation, again with
  O_EXCL: of several workers that judged it stale at the same moment,
  exactly one wins. Files are never deleted, so a generation name is never
  reused and a late worker's view (it read an older top generation) can
  only make its create fail, never steal a live claim.
- A holder that finds a higher generation than its own (it stalled past
  the timeout and was taken over) marks its claim `lost` and stops its
  heartbeat; the caller decides what to do (the sweep logs a warning).

Clocks: staleness compares a file's mtime with this machine's clock, so the
machines' clocks must agree to well within `timeout_s` (NTP does), and
`timeout_s` must exceed the filesystem's attribute caching (NFS `actimeo`,
up to 60 s by default): hence the default of 5 minutes.
"""
from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
import uuid
from typing import Any, Callable

DEFAULT_TIMEOUT_S = 300.0
_NAME = re.compile(r"^(\d{6,})\.claim$")


def worker_name() -> str:
  """This worker's name for logs and claims: SLURM's `<job>_<task>` in an
  array job (as in `sbatch --output=%A_%a`), else `<host>-<pid>`."""
  task = os.environ.get("SLURM_ARRAY_TASK_ID")
  if task is not None:
    job = os.environ.get("SLURM_ARRAY_JOB_ID", os.environ.get("SLURM_JOB_ID",
                                                              "slurm"))
    return f"{job}_{task}"
  return f"{socket.gethostname()}-{os.getpid()}"


def _read(path: str) -> str | None:
  try:
    with open(path) as f:
      return f.read()
  except OSError:
    return None


def host_id() -> str:
  """Names this machine and PID namespace, so that a claim's pid is checked
  only where it means the same process: hostname, kernel boot id and PID
  namespace (two containers on one host have different namespaces; two
  hosts, different boot ids)."""
  parts = [socket.gethostname()]
  boot = _read("/proc/sys/kernel/random/boot_id")
  if boot:
    parts.append(boot.strip())
  try:
    parts.append(os.readlink("/proc/self/ns/pid"))
  except OSError:
    pass
  return "/".join(parts)


def _proc_stat(pid: int) -> tuple[str, str] | None:
  """(state, start time in clock ticks) of a Linux process, or None."""
  text = _read(f"/proc/{pid}/stat")
  if not text:
    return None
  # The command name (field 2) may hold spaces; the rest follows its ')'.
  fields = text[text.rfind(")") + 2:].split()
  return fields[0], fields[19]


def _identity() -> dict[str, Any]:
  pid = os.getpid()
  stat = _proc_stat(pid)
  return {"host": socket.gethostname(), "host_id": host_id(), "pid": pid,
          "pid_start": stat[1] if stat else None}


def process_gone(info: dict[str, Any]) -> bool:
  """Whether the claim's worker is known to be dead: a process of this
  machine (same `host_id`) that no longer runs, is a zombie, or whose pid
  was reused (another start time). False when it cannot be told (another
  machine), so that only the heartbeat decides."""
  if info.get("host_id") != host_id() or not isinstance(info.get("pid"), int):
    return False
  pid = info["pid"]
  if os.path.isdir("/proc/self"):
    stat = _proc_stat(pid)
    if stat is None:
      return True
    state, start = stat
    return state in ("Z", "X") or (info.get("pid_start") not in (None, start))
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return True
  except PermissionError:
    return False
  return False


class Claim:
  """A held claim; `release()` it (or use `with`) when the work is done.

  Attributes:
    key: what is claimed.
    path: the claim file (this worker's generation).
    generation: its generation number.
    lost: set when another worker took the claim over (this one's heartbeat
      had gone stale); the work may then be done twice.
  """

  def __init__(self, key: str, path: str, generation: int,
               heartbeat_s: float, on_lost: Callable[["Claim"], None]):
    self.key, self.path, self.generation = key, path, generation
    self.lost = False
    self._on_lost = on_lost
    self._stop = threading.Event()
    self._thread = threading.Thread(
        target=self._beat, args=(heartbeat_s,), daemon=True,
        name=f"claim-heartbeat-{key}")
    self._thread.start()

  def _superseded(self) -> bool:
    return any(g > self.generation
               for g in _generations(os.path.dirname(self.path)))

  def _beat(self, interval: float) -> None:
    while not self._stop.wait(interval):
      try:
        os.utime(self.path)
        superseded = self._superseded()
      except OSError:
        superseded = True   # the claims folder was removed under us
      if superseded:
        self.lost = True
        self._on_lost(self)
        return

  def stop_heartbeat(self) -> None:
    """Stops refreshing the heartbeat without releasing (as a hung worker
    would); the claim goes stale after the timeout. For tests."""
    self._stop.set()
    self._thread.join()

  def release(self) -> None:
    """Marks the claim released (mtime 0): anyone may take it at once."""
    self.stop_heartbeat()
    if not self.lost:
      try:
        os.utime(self.path, (0, 0))
      except OSError:
        pass

  def __enter__(self) -> "Claim":
    return self

  def __exit__(self, *exc) -> None:
    self.release()


def _generations(folder: str) -> list[int]:
  try:
    names = os.listdir(folder)
  except FileNotFoundError:
    return []
  return sorted(int(m.group(1)) for m in map(_NAME.match, names) if m)


class Claims:
  """The claims of one shared folder, as seen by one worker.

  Args:
    root: the folder (e.g. `<sweep workdir>/claims`); created if needed.
    worker: this worker's name (`worker_name()` by default), written into
      its claims for whoever inspects them.
    timeout_s: a claim whose heartbeat is older is stale.
    heartbeat_s: how often a held claim's heartbeat is refreshed (default
      `timeout_s / 5`, at most 30 s).
    on_lost: called (from the heartbeat thread) with a claim that another
      worker took over.

  Example:
    >>> claims = Claims('/shared/sweep/claims')
    >>> claim = claims.try_acquire('uci_hapt__simclr')
    >>> if claim is not None:
    ...   with claim:
    ...     ...  # the work; nobody else holds the key meanwhile
  """

  def __init__(self, root: str, *, worker: str | None = None,
               timeout_s: float = DEFAULT_TIMEOUT_S,
               heartbeat_s: float | None = None,
               on_lost: Callable[[Claim], None] | None = None):
    if timeout_s <= 0:
      raise ValueError(f"claim timeout_s must be positive, got {timeout_s}.")
    self.root = root
    self.worker = worker or worker_name()
    self.timeout_s = float(timeout_s)
    self.heartbeat_s = float(heartbeat_s or min(self.timeout_s / 5, 30.0))
    if self.heartbeat_s >= self.timeout_s:
      raise ValueError(
          f"heartbeat_s ({self.heartbeat_s}) must be below timeout_s"
          f" ({self.timeout_s}), or a held claim looks stale between beats.")
    self._on_lost = on_lost or (lambda claim: None)
    self._identity = _identity()
    os.makedirs(root, exist_ok=True)

  def _folder(self, key: str) -> str:
    if not key or "/" in key or key.startswith("."):
      raise ValueError(f"bad claim key {key!r}: a plain file name is needed.")
    return os.path.join(self.root, key)

  def _live(self, folder: str, generation: int) -> dict[str, Any] | None:
    """The claim file `generation` of `folder` (its JSON, plus `generation`
    and `age_s`) if it is live, else None (stale, released or gone)."""
    path = os.path.join(folder, f"{generation:06d}.claim")
    try:
      mtime = os.stat(path).st_mtime
    except FileNotFoundError:
      return None
    try:
      info = json.loads(_read(path) or "")
    except ValueError:
      info = {}   # being written by its creator (or it died doing so)
    info.update(generation=generation, age_s=time.time() - mtime)
    if info["age_s"] > self.timeout_s or process_gone(info):
      return None
    return info

  def holder(self, key: str) -> dict[str, Any] | None:
    """The live holder's claim (its JSON, plus `generation` and `age_s`),
    or None if `key` is free (never claimed, released or stale)."""
    folder = self._folder(key)
    generations = _generations(folder)
    return self._live(folder, generations[-1]) if generations else None

  def try_acquire(self, key: str) -> Claim | None:
    """Claims `key` if it is free or its claim is stale; None if another
    worker holds it (or won the race for it)."""
    folder = self._folder(key)
    os.makedirs(folder, exist_ok=True)
    generations = _generations(folder)
    if generations and self._live(folder, generations[-1]) is not None:
      return None
    # The next generation, never a reused name: if another worker created
    # it meanwhile (or our listing was out of date), O_EXCL fails.
    generation = generations[-1] + 1 if generations else 0
    path = os.path.join(folder, f"{generation:06d}.claim")
    try:
      fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      return None
    info = dict(self._identity, worker=self.worker, key=key,
                generation=generation, token=uuid.uuid4().hex,
                acquired=time.time(), timeout_s=self.timeout_s)
    with os.fdopen(fd, "w") as f:
      json.dump(info, f)
    return Claim(key, path, generation, self.heartbeat_s, self._on_lost)

  def acquire(self, key: str, *, poll_s: float = 0.2,
              timeout_s: float | None = None) -> Claim:
    """Waits for `key` (polling every `poll_s`), for short critical
    sections such as rewriting a shared file.

    Raises:
      TimeoutError: if not acquired within `timeout_s` (None: no limit; a
        dead holder's claim goes stale after `self.timeout_s` anyway).
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
      claim = self.try_acquire(key)
      if claim is not None:
        return claim
      if deadline is not None and time.monotonic() > deadline:
        holder = self.holder(key) or {}
        raise TimeoutError(
            f"claim {key!r} in {self.root} still held after {timeout_s} s by"
            f" worker {holder.get('worker', '?')} (pid {holder.get('pid')} on"
            f" {holder.get('host', '?')}).")
      time.sleep(poll_s)
