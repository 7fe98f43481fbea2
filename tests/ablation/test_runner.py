"""The sweep's bookkeeping, with stand-in trainers (no training): failures
recorded and the sweep going on, resuming, retrying, SIGTERM."""
from __future__ import annotations

import json
import os

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
