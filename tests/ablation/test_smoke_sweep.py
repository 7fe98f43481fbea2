"""The smoke sweep end to end, through the launcher: real training on UCI
HAPT (tiny), a run that fails on purpose, the table and the plots; then the
same command again resumes (nothing re-runs); then three workers sharing a
workdir, one of them killed mid-run, give the same table."""
from __future__ import annotations

import json
import math
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

SWEEP = '''
from configs import ablation


def get_config(arg=None):
  sweep = ablation.get_config("smoke")
  sweep.methods = (*sweep.methods, "broken")
  # Fails on purpose: the trainer rejects the unknown loss at start-up.
  sweep.method_specs.broken = dict(
      config="simclr", overrides=dict(loss=dict(name="no_such_loss")))
  return sweep
'''


def _env():
  env = dict(os.environ)
  # One CPU device (conftest simulates 8 in this process): fewer programs
  # to partition, as on a user's machine.
  flags = [f for f in env.get("XLA_FLAGS", "").split()
           if not f.startswith("--xla_force_host_platform_device_count")]
  env["XLA_FLAGS"] = " ".join(flags)
  if not flags:
    del env["XLA_FLAGS"]
  return env


def _launch(config_file, workdir):
  proc = subprocess.run(
      [sys.executable, "-m", "launch.ablate", f"--config={config_file}",
       f"--workdir={workdir}"],
      cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
  return proc.stdout


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, shared_data_dir):
  del shared_data_dir  # the runs read ../shared/data/uci_hapt
  folder = tmp_path_factory.mktemp("smoke")
  config_file = folder / "sweep.py"
  config_file.write_text(SWEEP)
  workdir = folder / "sweep"
  stdout = _launch(config_file, workdir)
  return config_file, workdir, stdout


def _status(workdir, run_id):
  return json.loads((workdir / "runs" / run_id / "status.json").read_text())


def test_runs_done_and_the_broken_run_failed(sweep):
  _, workdir, stdout = sweep
  for method in ("random_init", "simclr", "supervised"):
    for seed in (0, 1):
      status = _status(workdir, f"uci_hapt__{method}__seed{seed}")
      assert status["status"] == "done", status.get("traceback")
  for seed in (0, 1):
    status = _status(workdir, f"uci_hapt__broken__seed{seed}")
    assert status["status"] == "failed"
    assert "Unknown loss 'no_such_loss'" in status["error"]
  assert "| uci_hapt | broken | 0 (2 failed) |" in stdout


def test_table_matches_the_runs_results(sweep):
  _, workdir, _ = sweep
  table = {r["method"]: r for r in json.loads(
      (workdir / "summary.json").read_text())}
  assert list(table) == ["random_init", "input_summary_stats", "simclr",
                         "supervised", "broken"]
  # The input row: one seed, scored without training, no view histogram.
  stats = json.loads((workdir / "runs" / "uci_hapt__input_summary_stats__seed0"
                      / "results.json").read_text())
  assert table["input_summary_stats"]["seeds"] == 1
  assert table["input_summary_stats"]["linear_probe_accuracy_mean"] == (
      pytest.approx(stats["linear_probe_accuracy"]))
  assert stats["step"] == 0 and 0.5 < stats["linear_probe_accuracy"] <= 1
  assert not (workdir / "runs" / "uci_hapt__input_summary_stats__seed0"
              / "similarities.json").exists()
  for method in ("random_init", "simclr", "supervised"):
    results = [json.loads((workdir / "runs" / f"uci_hapt__{method}__seed{s}"
                           / "results.json").read_text()) for s in (0, 1)]
    for key in ("linear_probe_accuracy", "knn_accuracy", "uniformity"):
      values = [r[key] for r in results]
      assert table[method][f"{key}_mean"] == pytest.approx(np.mean(values))
      assert table[method][f"{key}_std"] == pytest.approx(
          np.std(values, ddof=1))
    probe = [r["subject_probe_accuracy"] for r in results]
    assert table[method]["nuisance_probe_accuracy_mean"] == pytest.approx(
        np.mean(probe))
    assert 0 < table[method]["nuisance_chance_accuracy_mean"] < 1
  assert table["broken"]["linear_probe_accuracy_mean"] is None
  md = (workdir / "summary.md").read_text()
  assert "9 runs (7 done, 2 failed)" in md
  for name in ("accuracy.png", "curves.png", "similarities.png",
               "summary.csv"):
    assert (workdir / name).stat().st_size > 0


def test_floor_has_no_steps_and_the_runs_trained(sweep):
  _, workdir, _ = sweep
  floor = workdir / "runs" / "uci_hapt__random_init__seed0"
  assert json.loads((floor / "results.json").read_text())["step"] == 0
  simclr = workdir / "runs" / "uci_hapt__simclr__seed0"
  assert json.loads((simclr / "results.json").read_text())["step"] == 3
  hist = json.loads((simclr / "similarities.json").read_text())
  assert sum(hist["positive"]) == 64
  assert len(hist["edges"]) == len(hist["negative"]) + 1


def test_supervised_starts_at_log_num_classes(sweep):
  """The classifier starts at zero: every logit is 0, so the first step's
  cross-entropy is exactly log(6) on HAPT's six activities."""
  _, workdir, _ = sweep
  lines = (workdir / "runs" / "uci_hapt__supervised__seed0" /
           "metrics.jsonl").read_text().splitlines()
  first = json.loads(lines[0])
  assert first["step"] == 1
  assert first["loss"] == pytest.approx(math.log(6), rel=1e-5)


def test_rerunning_the_command_resumes_without_training(sweep):
  config_file, workdir, _ = sweep
  before = {p.name: _status(workdir, p.name)["finished"]
            for p in (workdir / "runs").iterdir()}
  _launch(config_file, workdir)
  after = {p.name: _status(workdir, p.name)["finished"]
           for p in (workdir / "runs").iterdir()}
  assert before == after
  meta = json.loads((workdir / "sweep.json").read_text())
  assert len(meta["sessions"]) == 2


def _wait_for_status(workdir, run_id, state, procs, timeout=600):
  """The run's status once it is `state`, polling while the workers run."""
  path = workdir / "runs" / run_id / "status.json"
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    try:
      status = json.loads(path.read_text())
    except (OSError, ValueError):
      status = {}
    if status.get("status") == state:
      return status
    exited = {n: p.returncode for n, p in procs.items() if p.poll() is not None}
    assert not exited, f"workers exited before {run_id} was {state}: {exited}"
    time.sleep(0.05)
  raise AssertionError(f"{run_id} not {state} after {timeout} s")


def test_three_workers_one_killed_give_the_one_worker_table(sweep, tmp_path):
  """Three workers share a workdir; the one that runs SimCLR is killed
  (SIGKILL) while training it. The survivors take its claim over and resume
  the group: every run finished exactly once, and the merged table equals
  the one-worker sweep's (all but the wall times)."""
  config_file, one_worker, _ = sweep
  workdir = tmp_path / "sweep"
  logs = {f"w{i}": tmp_path / f"w{i}.log" for i in range(3)}
  procs = {}
  for name, log in logs.items():
    with open(log, "w") as f:
      procs[name] = subprocess.Popen(
          [sys.executable, "-m", "launch.ablate", f"--config={config_file}",
           f"--workdir={workdir}", f"--worker_name={name}",
           "--claim_timeout=60", "--claim_poll=0.5"],
          cwd=ROOT, env=_env(), stdout=f, stderr=subprocess.STDOUT)
  try:
    victim = _wait_for_status(workdir, "uci_hapt__simclr__seed0", "running",
                              procs)["worker"]
    time.sleep(1.0)   # into its population's set-up and training
    procs[victim].send_signal(signal.SIGKILL)
    assert procs[victim].wait(timeout=60) == -signal.SIGKILL
    for name, proc in procs.items():
      assert proc.wait(timeout=600) in (0, -signal.SIGKILL), (
          logs[name].read_text()[-5000:])
  finally:
    for proc in procs.values():
      if proc.poll() is None:
        proc.kill()
  out = {name: log.read_text() for name, log in logs.items()}
  survivors = sorted(set(procs) - {victim})
  for name in survivors:
    assert procs[name].returncode == 0, out[name][-5000:]

  run_ids = json.loads((workdir / "sweep.json").read_text())["run_ids"]
  for run_id in run_ids:
    status = _status(workdir, run_id)
    assert status["status"] == _status(one_worker, run_id)["status"]
    # Finished once: one attempt ended, in the statuses and in the logs.
    ended = [h for h in status["history"] if h["status"] != "running"]
    assert len(ended) == 1, status["history"]
    logged = [line for text in out.values() for line in text.splitlines()
              if f"] {run_id}: done" in line or f"] {run_id}: failed" in line]
    assert len(logged) == 1, logged
  for seed in (0, 1):   # the killed worker's group, taken over
    history = _status(workdir, f"uci_hapt__simclr__seed{seed}")["history"]
    assert [h["worker"] for h in history][0] == victim
    assert history[1]["worker"] in survivors
    assert [h["status"] for h in history] == ["running", "done"]
  # Both survivors waited for the last group; one of them wrote the table.
  assert sum("already written" in out[name] for name in survivors) == 1

  def table(folder):
    return [{k: v for k, v in row.items() if not k.startswith("wall_s")}
            for row in json.loads((folder / "summary.json").read_text())]
  assert table(workdir) == table(one_worker)
  assert "9 runs (7 done, 2 failed)" in (workdir / "summary.md").read_text()
