"""Claims on a shared folder: one holder among racing processes, the
heartbeat keeping a live claim, a dead or hung worker's claim taken over."""
from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from contrastive.ablation import claims

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _worker(root, code, *args, slow_listing=False):
  """A Python process running `code` with `claims` imported and `root`;
  with `slow_listing`, each look at a claims folder takes 0.3 s (a slow
  shared filesystem), so that racing workers all decide on the same view
  before any of them creates its claim."""
  script = textwrap.dedent(f"""
      import os, sys, time
      from contrastive.ablation import claims
      root = {str(root)!r}
      if {slow_listing!r}:
        listing = claims._generations
        def slow(folder):
          found = listing(folder)
          time.sleep(0.3)
          return found
        claims._generations = slow
      """) + textwrap.dedent(code)
  return subprocess.Popen([sys.executable, "-c", script, *args], cwd=ROOT,
                          stdout=subprocess.PIPE, text=True)


def _wait_for(predicate, timeout=30.0):
  deadline = time.monotonic() + timeout
  while not predicate():
    assert time.monotonic() < deadline, "timed out"
    time.sleep(0.02)


def test_exactly_one_of_many_racing_for_a_free_key(tmp_path):
  start = time.time() + 1.5
  procs = [_worker(tmp_path, f"""
      board = claims.Claims(root, worker="w{i}", timeout_s=60)
      while time.time() < {start}:
        pass
      claim = board.try_acquire("group")
      print(claim is not None, flush=True)
      time.sleep(1.0)
      """, slow_listing=True) for i in range(6)]
  won = [proc.communicate(timeout=60)[0].strip() == "True" for proc in procs]
  assert sum(won) == 1
  assert sorted(os.listdir(tmp_path / "group")) == ["000000.claim"]


def test_exactly_one_of_many_racing_for_a_stale_claim(tmp_path):
  """Six processes find the same claim stale at the same instant (its
  worker died): one takes it over, none takes over the winner's claim."""
  dead = claims.Claims(str(tmp_path), worker="dead", timeout_s=60)
  dead.try_acquire("group").stop_heartbeat()
  os.utime(tmp_path / "group" / "000000.claim", (1.0, 1.0))
  start = time.time() + 1.5
  procs = [_worker(tmp_path, f"""
      board = claims.Claims(root, worker="w{i}", timeout_s=60)
      while time.time() < {start}:
        pass
      won = []
      for _ in range(5):   # keep looking, as a waiting worker does
        claim = board.try_acquire("group")
        if claim is not None:
          won.append(claim.generation)
      print(won, flush=True)
      time.sleep(1.0)
      """, slow_listing=True) for i in range(6)]
  won = [eval(proc.communicate(timeout=60)[0])  # pylint: disable=eval-used
         for proc in procs]
  assert sorted(sum(won, [])) == [1]
  assert sorted(os.listdir(tmp_path / "group")) == ["000000.claim",
                                                    "000001.claim"]


def test_a_released_claim_is_free_at_once(tmp_path):
  a = claims.Claims(str(tmp_path), worker="a", timeout_s=60)
  b = claims.Claims(str(tmp_path), worker="b", timeout_s=60)
  claim = a.try_acquire("group")
  assert claim is not None and claim.generation == 0
  assert b.try_acquire("group") is None
  assert b.holder("group")["worker"] == "a"
  claim.release()
  assert b.holder("group") is None
  taken = b.try_acquire("group")
  assert taken is not None and taken.generation == 1
  taken.release()


def test_the_heartbeat_keeps_a_claim_past_the_timeout(tmp_path):
  """Held beyond the timeout, the claim stays held while its heartbeat
  runs; once the heartbeat stops (a hung worker), it goes stale."""
  a = claims.Claims(str(tmp_path), worker="a", timeout_s=1.0,
                    heartbeat_s=0.1)
  b = claims.Claims(str(tmp_path), worker="b", timeout_s=1.0)
  claim = a.try_acquire("group")
  time.sleep(1.5)
  assert b.try_acquire("group") is None
  claim.stop_heartbeat()
  assert b.try_acquire("group") is None
  time.sleep(1.2)
  taken = b.try_acquire("group")
  assert taken is not None and taken.generation == 1
  taken.release()


def test_a_holder_taken_over_learns_it_lost(tmp_path):
  lost = []
  a = claims.Claims(str(tmp_path), worker="a", timeout_s=5.0,
                    heartbeat_s=0.5, on_lost=lost.append)
  b = claims.Claims(str(tmp_path), worker="b", timeout_s=5.0)
  claim = a.try_acquire("group")
  os.utime(claim.path, (1.0, 1.0))   # as if its worker had stalled
  taken = b.try_acquire("group")
  assert taken is not None
  _wait_for(lambda: claim.lost, timeout=5)
  assert lost == [claim]
  claim.release()   # a lost claim's release leaves the new holder's alone
  assert a.holder("group")["worker"] == "b"
  taken.release()


def test_a_killed_local_worker_is_reclaimed_without_waiting(tmp_path):
  """kill -9 of a worker on this machine: its pid is gone (or a zombie),
  so the claim is taken at once, long before the 10-minute timeout."""
  proc = _worker(tmp_path, """
      board = claims.Claims(root, worker="victim", timeout_s=600)
      claim = board.try_acquire("group")
      print("held", flush=True)
      time.sleep(600)
      """)
  assert proc.stdout.readline().strip() == "held"
  board = claims.Claims(str(tmp_path), worker="survivor", timeout_s=600)
  assert board.try_acquire("group") is None
  assert board.holder("group")["pid"] == proc.pid
  proc.kill()
  _wait_for(lambda: claims.process_gone({"host_id": claims.host_id(),
                                         "pid": proc.pid}), timeout=10)
  # Not yet reaped by its parent: a zombie, dead all the same.
  claim = board.try_acquire("group")
  proc.wait()
  assert claim is not None and claim.generation == 1
  claim.release()


def test_a_hung_worker_is_reclaimed_after_the_timeout(tmp_path):
  """A stopped process (alive, not beating: a hung or partitioned node) is
  waited for until its heartbeat is older than the timeout."""
  proc = _worker(tmp_path, """
      board = claims.Claims(root, worker="hung", timeout_s=1.5,
                            heartbeat_s=0.2)
      claim = board.try_acquire("group")
      print("held", flush=True)
      time.sleep(600)
      """)
  try:
    assert proc.stdout.readline().strip() == "held"
    os.kill(proc.pid, signal.SIGSTOP)
    board = claims.Claims(str(tmp_path), worker="survivor", timeout_s=1.5)
    stopped = time.monotonic()
    assert board.try_acquire("group") is None
    claim = None
    while claim is None:
      time.sleep(0.1)
      claim = board.try_acquire("group")
    assert 1.0 < time.monotonic() - stopped < 5.0
    assert claim.generation == 1
    claim.release()
  finally:
    proc.kill()
    proc.wait()


def test_another_machine_s_claim_is_judged_by_its_heartbeat(tmp_path):
  """A claim from another host: its pid means nothing here (may even be
  ours), so only the heartbeat's age tells whether it is live."""
  folder = tmp_path / "group"
  folder.mkdir()
  path = folder / "000000.claim"
  path.write_text(json.dumps({"worker": "far", "host": "elsewhere",
                              "host_id": "elsewhere/boot", "pid": 999999999}))
  board = claims.Claims(str(tmp_path), worker="here", timeout_s=30)
  assert board.try_acquire("group") is None
  assert board.holder("group")["worker"] == "far"
  old = time.time() - 31
  os.utime(path, (old, old))
  claim = board.try_acquire("group")
  assert claim is not None and claim.generation == 1
  claim.release()


def test_a_claim_file_being_written_counts_as_held(tmp_path):
  """Between its O_EXCL create and its write the file is empty: held, as
  long as it is fresh; stale once old (its creator died in between)."""
  (tmp_path / "group").mkdir()
  path = tmp_path / "group" / "000000.claim"
  path.write_text("")
  board = claims.Claims(str(tmp_path), timeout_s=30)
  assert board.try_acquire("group") is None
  os.utime(path, (1.0, 1.0))
  assert board.try_acquire("group").generation == 1


def test_bad_arguments_are_clear(tmp_path):
  with pytest.raises(ValueError, match="timeout_s must be positive"):
    claims.Claims(str(tmp_path), timeout_s=0)
  with pytest.raises(ValueError, match="heartbeat_s .* below timeout_s"):
    claims.Claims(str(tmp_path), timeout_s=1, heartbeat_s=2)
  with pytest.raises(ValueError, match="bad claim key"):
    claims.Claims(str(tmp_path)).try_acquire("a/b")


def test_acquire_waits_and_times_out_naming_the_holder(tmp_path):
  a = claims.Claims(str(tmp_path), worker="a", timeout_s=60)
  held = a.try_acquire("lock")
  b = claims.Claims(str(tmp_path), worker="b", timeout_s=60)
  with pytest.raises(TimeoutError, match="held after 0.3 s by worker a"):
    b.acquire("lock", poll_s=0.05, timeout_s=0.3)
  held.release()
  b.acquire("lock", poll_s=0.05, timeout_s=5).release()


def test_worker_name_follows_slurm(monkeypatch):
  monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "4242")
  monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "7")
  assert claims.worker_name() == "4242_7"
  monkeypatch.delenv("SLURM_ARRAY_TASK_ID")
  assert claims.worker_name().endswith(f"-{os.getpid()}")
