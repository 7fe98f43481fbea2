"""The whole launcher across 2 processes (2 x 4 CPU devices, jax.distributed
on localhost): periodic checkpoints, a SIGTERM that reaches one process
only (both stop after the same step and exit 0), the resume (bitwise the
uninterrupted 2-process run) and the final evaluation (that of one process
on the same state); an error on one process stops both instead of leaving
the other in a collective."""
from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import numpy as np

from configs import simclr
from contrastive.train import evaluation
from contrastive.train import experiment
from contrastive.train.checkpoint import Checkpointer
from contrastive.train.checkpoint import abstract_like

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIG = "configs/simclr.py:uci_hapt,tiny"
NUM_STEPS = 80
STOP_AFTER = 20
OVERRIDES = {"train.num_steps": NUM_STEPS, "train.checkpoint_every": 10,
             "train.log_every": 1, "train.agreement_timeout_s": 120.0}
# Generous: two processes share this project's 2 CPU cores with the others.
TIMEOUT_S = 480


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _launch(workdir: pathlib.Path, module_args=("-m", "launch.main"),
            extra=()) -> list[subprocess.Popen]:
  env = dict(os.environ, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{_free_port()}",
             JAX_NUM_PROCESSES="2", PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=4")
  args = [sys.executable, *module_args, "--distributed", f"--config={CONFIG}",
          f"--workdir={workdir}", *extra]
  args += [f"--config.{k}={v}" for k, v in OVERRIDES.items()]
  return [subprocess.Popen(args, cwd=ROOT, env=dict(env, JAX_PROCESS_ID=str(i)),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
          for i in range(2)]


def _wait(procs) -> list[str]:
  return [p.communicate(timeout=TIMEOUT_S)[0] for p in procs]


def _logged_steps(workdir: pathlib.Path) -> list[int]:
  path = workdir / "metrics.jsonl"
  if not path.exists():
    return []
  rows = [json.loads(line) for line in path.read_text().splitlines()
          if line.strip()]
  return [row["step"] for row in rows if "loss" in row]


def _losses(workdir: pathlib.Path) -> dict[int, float]:
  rows = [json.loads(line)
          for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  return {row["step"]: row["loss"] for row in rows if "loss" in row}


def _config():
  config = simclr.get_config("uci_hapt,tiny")
  for key, value in OVERRIDES.items():
    section, field = key.split(".")
    config[section][field] = value
  return config


def _evaluate_in_one_process(workdir: pathlib.Path) -> dict:
  """The final evaluation of `workdir`'s last checkpoint, redone in this
  single process (8 simulated devices)."""
  config = _config()
  exp = experiment.build_experiment(config)
  shapes = experiment.abstract_state(exp)
  ckpt = Checkpointer(str(workdir / "checkpoints"))
  step, state, _ = ckpt.restore_latest(
      abstract_like(shapes, experiment.state_shardings(exp, shapes)))
  ckpt.close()
  assert step == NUM_STEPS
  return evaluation.final(exp, state)


def test_sigterm_to_one_process_stops_both_and_resumes(tmp_path):
  workdir = tmp_path / "interrupted"
  procs = _launch(workdir)
  deadline = time.monotonic() + TIMEOUT_S
  while not any(s >= STOP_AFTER for s in _logged_steps(workdir)):
    assert time.monotonic() < deadline, f"no step {STOP_AFTER} logged"
    assert all(p.poll() is None for p in procs), _wait(procs)[0][-3000:]
    time.sleep(0.05)
  procs[1].send_signal(signal.SIGTERM)  # process 1 only
  logs = _wait(procs)
  for p, log in zip(procs, logs):
    assert p.returncode == 0, log[-3000:]
  stopped = json.loads(logs[0][logs[0].index("{"):logs[0].index("}") + 1])
  assert stopped["preempted"] is True
  stop = stopped["step"]
  assert STOP_AFTER <= stop < NUM_STEPS
  checkpoints = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir()
                       if p.name.isdigit())
  assert checkpoints[-1] == stop, checkpoints   # the agreed step, saved once
  assert max(_logged_steps(workdir)) == stop    # nobody trained past it

  for p, log in zip(procs := _launch(workdir), _wait(procs)):
    assert p.returncode == 0, log[-3000:]
  resumed = json.loads((workdir / "results.json").read_text())
  assert resumed["step"] == NUM_STEPS

  # The resumed run is the uninterrupted one, bit for bit.
  straight_dir = tmp_path / "straight"
  for p, log in zip(procs := _launch(straight_dir), _wait(procs)):
    assert p.returncode == 0, log[-3000:]
  straight = json.loads((straight_dir / "results.json").read_text())
  assert _losses(workdir) == _losses(straight_dir)
  assert sorted(_losses(workdir)) == list(range(1, NUM_STEPS + 1))
  assert resumed == straight

  # The 2-process evaluation is the 1-process evaluation of the same state.
  # (Training itself matches one process to float rounding, which grows
  # over steps: tests/train/test_multiprocess.py checks it step by step.)
  alone = _evaluate_in_one_process(workdir)
  for key in ("knn_accuracy", "linear_probe_accuracy",
              "subject_probe_accuracy"):
    np.testing.assert_allclose(resumed[key], alone[key], atol=0.01,
                               err_msg=key)
  for key in ("alignment", "uniformity"):
    np.testing.assert_allclose(resumed[key], alone[key], rtol=1e-4,
                               err_msg=key)


def test_error_on_one_process_stops_both(tmp_path):
  """Process 1's data fails at step 12: both exit non-zero at once; process
  0 names process 1 and its error instead of waiting in the next step."""
  workdir = tmp_path / "failing"
  start = time.monotonic()
  procs = _launch(workdir, module_args=(
      str(ROOT / "tests" / "train" / "failing_launcher.py"),),
                  extra=("--fail_process=1", "--fail_at_batch=12"))
  logs = _wait(procs)
  assert time.monotonic() - start < TIMEOUT_S
  assert procs[1].returncode != 0 and "injected data failure" in logs[1]
  assert procs[0].returncode != 0, logs[0][-3000:]
  assert "PeerFailure" in logs[0] and "process 1" in logs[0], logs[0][-3000:]
  assert "injected data failure" in logs[0]
