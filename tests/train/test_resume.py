"""A run interrupted and resumed ends bitwise where an uninterrupted run does
(on CPU), data position included; SIGTERM saves and exits cleanly."""
from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np

from configs import moco
from contrastive.train import experiment
from contrastive.train.checkpoint import Checkpointer, abstract_like
from contrastive.train.loop import train_and_evaluate
from contrastive.train.preemption import PreemptionGuard

ROOT = pathlib.Path(__file__).resolve().parents[2]


class StopAfter(PreemptionGuard):
  """Acts as if SIGTERM arrived during step `n` (the loop asks before each
  step and after the last, so the (n+1)-th question follows step n)."""

  def __init__(self, n: int):
    super().__init__()
    self._n, self._asked = n, 0

  @property
  def requested(self) -> bool:
    self._asked += 1
    return self._asked > self._n


def _config():
  config = moco.get_config("uci_hapt,tiny")
  config.train.num_steps = 5
  config.train.checkpoint_every = 100   # only the preemption save in between
  config.eval.final = False
  return config


def final_state(config, workdir):
  exp = experiment.build_experiment(config)
  shapes = experiment.abstract_state(exp)
  target = abstract_like(shapes, experiment.state_shardings(exp, shapes))
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
  state, data_state = ckpt.restore(target)
  ckpt.close()
  return jax.device_get(state), data_state


def test_interrupted_run_resumes_bitwise(tmp_path):
  config = _config()
  straight = train_and_evaluate(config, str(tmp_path / "straight"))
  assert straight["step"] == 5
  stopped = train_and_evaluate(config, str(tmp_path / "resumed"),
                               guard=StopAfter(2))
  assert stopped == {"preempted": True, "step": 2}
  resumed = train_and_evaluate(config, str(tmp_path / "resumed"))
  assert resumed["step"] == 5
  a, data_a = final_state(config, tmp_path / "straight")
  b, data_b = final_state(config, tmp_path / "resumed")
  assert data_a == data_b
  leaves_a, tree_a = jax.tree.flatten(a)
  leaves_b, tree_b = jax.tree.flatten(b)
  assert tree_a == tree_b
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  # The resumed call runs steps 3-5 only (a run that ignored its checkpoint
  # would end bitwise the same, training being deterministic, but would log
  # steps 1 and 2 again), and logs the uninterrupted run's losses.
  def losses(workdir):
    lines = (tmp_path / workdir / "metrics.jsonl").read_text().splitlines()
    return [(r["step"], r["loss"]) for r in map(json.loads, lines) if "loss" in r]
  assert [step for step, _ in losses("resumed")] == [1, 2, 3, 4, 5]
  assert losses("straight") == losses("resumed")


def test_rows_logged_after_the_checkpoint_are_not_repeated(tmp_path):
  """A run killed after logging past its last checkpoint (here: steps 3-5
  past checkpoint 2, the later checkpoints gone) logs those steps again
  when resumed; metrics.jsonl keeps one row a step, the final row's step an
  int."""
  config = _config()
  config.train.checkpoint_every = 2
  workdir = tmp_path / "run"
  train_and_evaluate(config, str(workdir))
  for step in (4, 5):
    for path in sorted((workdir / "checkpoints" / str(step)).rglob("*"),
                       reverse=True):
      path.rmdir() if path.is_dir() else path.unlink()
    (workdir / "checkpoints" / str(step)).rmdir()
  train_and_evaluate(config, str(workdir))
  rows = [json.loads(line)
          for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  logged = [r["step"] for r in rows if "loss" in r]
  assert logged == [1, 2, 3, 4, 5]
  assert all(isinstance(r["step"], int) for r in rows)


def test_sigterm_saves_and_exits_cleanly(tmp_path):
  workdir = tmp_path / "run"
  cmd = [sys.executable, "-m", "launch.main",
         "--config=configs/simclr.py:uci_hapt,tiny", f"--workdir={workdir}",
         "--config.train.num_steps=100000", "--config.train.log_every=1",
         "--config.train.checkpoint_every=100000"]
  proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  metrics = workdir / "metrics.jsonl"
  deadline = time.time() + 300
  while not (metrics.exists() and metrics.read_text().strip()):
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    assert time.time() < deadline, "training never logged a step"
    time.sleep(0.5)
  proc.send_signal(signal.SIGTERM)
  out, err = proc.communicate(timeout=300)
  assert proc.returncode == 0, err[-3000:]
  result = json.loads(out[out.index("{"):])
  assert result["preempted"] is True and result["step"] >= 1
  steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir()
                 if p.name.isdigit())
  assert steps == [result["step"]]
