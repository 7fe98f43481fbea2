"""The sweep's bookkeeping, with stand-in trainers (no training): failures
recorded and the sweep going on, resuming, retrying, SIGTERM; several
workers sharing a sweep, a dead worker's group taken over."""
from __future__ import annotations

import json
import os
import threading
import time

import pytest

from configs import ablation as ablation_config
from contrastive.ablation import runner


def _sweep(methods=("simclr", "dcl")):
  sweep = ablation_config.get_config("smoke")
  sweep.methods = methods
  sweep.method_specs.dcl = {"config": "dcl"}
  sweep.seeds = (0, 1)
  return sweep


class FakeTrainer:
  """Records its calls; fails for the runs named in `fail`."""

  def __init__(self, fail=(), preempt=()):
    self.calls, self.fail, self.preempt = [], set(fail), set(preempt)

  def __call__(self, config, workdir):
    key = (config.loss.name, int(config.seed))
    self.calls.append(key)
    if key in self.fail:
      raise FloatingPointError("loss is nan at step 3")
    if key in self.preempt:
      return {"preempted": True, "step": 1}
    with open(os.path.join(workdir, "results.json"), "w") as f:
      json.dump({"knn_accuracy": 0.5}, f)
    return {"knn_accuracy": 0.5}


def _run(tmp_path, trainer, **kwargs):
  return runner.run_sweep(_sweep(), str(tmp_path), histograms=False,
                          train_fns={"contrastive":
                                     runner.one_at_a_time(trainer)},
                          log=lambda _: None, **kwargs)


def test_a_failed_run_is_recorded_and_the_sweep_goes_on(tmp_path):
  trainer = FakeTrainer(fail={("infonce", 1)})
  records = _run(tmp_path, trainer)
  assert [r.status for r in records] == ["done", "failed", "done", "done"]
  assert len(trainer.calls) == 4
  status = runner.read_status(records[1].workdir)
  assert status["status"] == "failed"
  assert status["error"] == "FloatingPointError: loss is nan at step 3"
  assert "Traceback" in status["traceback"]
  config = json.load(open(os.path.join(records[1].workdir, "config.json")))
  assert config["seed"] == 1 and config["loss"]["name"] == "infonce"


def test_resume_skips_finished_and_failed_runs(tmp_path):
  _run(tmp_path, FakeTrainer(fail={("dcl", 0)}))
  again = FakeTrainer()
  records = _run(tmp_path, again)
  assert again.calls == []
  assert [r.status for r in records] == ["done", "done", "failed", "done"]
  retry = FakeTrainer()
  records = _run(tmp_path, retry, retry_failed=True)
  assert retry.calls == [("dcl", 0)]
  assert all(r.status == "done" for r in records)
  assert runner.read_status(records[2].workdir)["attempts"] == 2
  meta = json.load(open(tmp_path / "sweep.json"))
  assert len(meta["sessions"]) == 3
  assert all(s["wall_s"] >= 0 for s in meta["sessions"])


def test_a_run_left_running_is_resumed(tmp_path):
  """A sweep killed mid-run leaves status 'running': the next session runs
  it again (the trainer resumes from the run's checkpoint)."""
  _run(tmp_path, FakeTrainer())
  run_dir = tmp_path / "runs" / "uci_hapt__dcl__seed0"
  status = runner.read_status(str(run_dir))
  status["status"] = "running"
  (run_dir / "status.json").write_text(json.dumps(status))
  again = FakeTrainer()
  _run(tmp_path, again)
  assert again.calls == [("dcl", 0)]


def test_sigterm_stops_the_sweep_and_marks_the_rest_pending(tmp_path):
  trainer = FakeTrainer(preempt={("infonce", 1)})
  records = _run(tmp_path, trainer)
  assert [r.status for r in records] == ["done", "interrupted", "pending",
                                         "pending"]
  assert len(trainer.calls) == 2
  resumed = FakeTrainer()
  records = _run(tmp_path, resumed)
  assert resumed.calls == [("infonce", 1), ("dcl", 0), ("dcl", 1)]
  assert all(r.status == "done" for r in records)


def test_a_bad_sweep_fails_before_any_run(tmp_path):
  sweep = _sweep()
  sweep.methods = ("simclr", "missing")
  trainer = FakeTrainer()
  with pytest.raises(ValueError, match="missing"):
    runner.run_sweep(sweep, str(tmp_path),
                     train_fns={"contrastive": runner.one_at_a_time(trainer)},
                     log=lambda _: None)
  assert trainer.calls == []


class SharedTrainer:
  """A stand-in trainer for several workers (threads): records which run
  each call trained, and takes `seconds` a run so that workers overlap."""

  def __init__(self, seconds=0.1, fail=(), gate=None):
    self.calls, self.seconds, self.fail = [], seconds, set(fail)
    self.gate = gate   # called before training: waits for something
    self._lock = threading.Lock()

  def __call__(self, config, workdir):
    if self.gate is not None:
      self.gate()
    run_id = os.path.basename(workdir)
    with self._lock:
      self.calls.append(run_id)
    time.sleep(self.seconds)
    if run_id in self.fail:
      raise FloatingPointError("loss is nan at step 3")
    with open(os.path.join(workdir, "results.json"), "w") as f:
      json.dump({"knn_accuracy": 0.5}, f)
    return {"knn_accuracy": 0.5}


def _worker_sweep():
  sweep = _sweep(("simclr", "dcl", "hcl", "decoupled_uniformity"))
  for name in ("hcl", "decoupled_uniformity"):
    sweep.method_specs[name] = {"config": name}
  return sweep


def _workers(tmp_path, trainer, n, **kwargs):
  """Runs `n` workers (threads) on one workdir; returns their records."""
  results, errors = {}, []

  def work(i):
    try:
      results[i] = runner.run_sweep(
          _worker_sweep(), str(tmp_path), histograms=False,
          train_fns={"contrastive": runner.one_at_a_time(trainer)},
          log=lambda _: None, worker=f"w{i}", poll_s=0.05, **kwargs)
    except BaseException as e:  # pylint: disable=broad-except
      errors.append(e)
  threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  assert not errors, errors
  return [results[i] for i in range(n)]


def test_workers_sharing_a_sweep_run_each_run_once(tmp_path):
  trainer = SharedTrainer()
  per_worker = _workers(tmp_path, trainer, 3)
  run_ids = [r.run.run_id for r in per_worker[0]]
  assert sorted(trainer.calls) == sorted(run_ids)   # all, none twice
  for records in per_worker:   # each returns when all are finished
    assert [r.status for r in records] == ["done"] * len(run_ids)
  statuses = [runner.read_status(str(tmp_path / "runs" / r)) for r in run_ids]
  assert all(len(s["history"]) == 1 for s in statuses)
  assert len({s["worker"] for s in statuses}) >= 2   # the work was shared
  meta = json.load(open(tmp_path / "sweep.json"))
  assert sorted(s["worker"] for s in meta["sessions"]) == ["w0", "w1", "w2"]
  assert all(s["wall_s"] > 0 for s in meta["sessions"])


def test_a_dead_worker_s_group_is_taken_over_after_the_timeout(tmp_path):
  """A worker on another machine died running dcl: its claim is fresh at
  first, so this worker runs the rest, waits, then takes dcl over."""
  sweep_dir = tmp_path / "runs"
  for seed in (0, 1):
    run_dir = sweep_dir / f"uci_hapt__dcl__seed{seed}"
    run_dir.mkdir(parents=True)
    (run_dir / "status.json").write_text(json.dumps({
        "status": "running", "attempts": 1, "worker": "far",
        "history": [{"worker": "far", "status": "running"}]}))
  claim_dir = tmp_path / runner.CLAIMS_DIR / "uci_hapt__dcl"
  claim_dir.mkdir(parents=True)
  (claim_dir / "000000.claim").write_text(json.dumps(
      {"worker": "far", "host_id": "another/machine", "pid": 1}))
  trainer, lines = SharedTrainer(seconds=0.0), []
  start = time.monotonic()
  records = runner.run_sweep(
      _sweep(), str(tmp_path), histograms=False,
      train_fns={"contrastive": runner.one_at_a_time(trainer)},
      log=lines.append, worker="here", claim_timeout_s=1.0, poll_s=0.05)
  assert time.monotonic() - start > 0.8
  assert [r.status for r in records] == ["done"] * 4
  assert trainer.calls[-2:] == ["uci_hapt__dcl__seed0", "uci_hapt__dcl__seed1"]
  assert any("waiting for 1 group(s)" in line and "uci_hapt__dcl" in line
             for line in lines)
  status = runner.read_status(str(sweep_dir / "uci_hapt__dcl__seed0"))
  assert status["attempts"] == 2 and status["worker"] == "here"
  assert [h["worker"] for h in status["history"]] == ["far", "here"]
  assert [h["status"] for h in status["history"]] == ["running", "done"]


def test_workers_retrying_failures_retry_each_once(tmp_path):
  """With --retry_failed on workers started together, a run that fails
  again is not retried by the next worker: each retries only the failures
  from before it started."""
  first = SharedTrainer(seconds=0.0, fail={"uci_hapt__dcl__seed0"})
  _workers(tmp_path, first, 1)

  def all_started():   # the three workers' sessions are in sweep.json
    while len(json.load(open(tmp_path / "sweep.json"))["sessions"]) < 4:
      time.sleep(0.01)
  again = SharedTrainer(fail={"uci_hapt__dcl__seed0"}, gate=all_started)
  per_worker = _workers(tmp_path, again, 3, retry_failed=True)
  assert again.calls == ["uci_hapt__dcl__seed0"]
  for records in per_worker:
    assert sum(r.status == "failed" for r in records) == 1
  status = runner.read_status(str(tmp_path / "runs" / "uci_hapt__dcl__seed0"))
  assert [h["status"] for h in status["history"]] == ["failed", "failed"]
