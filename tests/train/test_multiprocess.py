"""A 2-process run on localhost (2 x 4 CPU devices, jax.distributed) gives
the single-process result: each process feeds its slice of the global batch.

Three steps, since the warm-up makes step 1's learning rate 0: step 3's loss
is the first computed from twice-updated parameters; the gradient norms check
each step's gradient, whose scale AdamW's update would hide."""
from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys

import jax
import numpy as np

from configs import simclr
from contrastive.train import experiment
from contrastive.train import mesh as mesh_lib

ROOT = pathlib.Path(__file__).resolve().parents[2]
WORKER = pathlib.Path(__file__).with_name("multiprocess_worker.py")
NUM_STEPS = 3


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_match_one(tmp_path):
  out = tmp_path / "result.npz"
  env = dict(os.environ, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{_free_port()}",
             JAX_NUM_PROCESSES="2", PYTHONPATH=str(ROOT))
  procs = [
      subprocess.Popen(
          [sys.executable, str(WORKER), str(out), str(NUM_STEPS)], cwd=ROOT,
          env=dict(env, JAX_PROCESS_ID=str(i)), stdout=subprocess.PIPE,
          stderr=subprocess.STDOUT, text=True)
      for i in range(2)
  ]
  logs = [p.communicate(timeout=540)[0] for p in procs]
  for p, log in zip(procs, logs):
    assert p.returncode == 0, log[-3000:]

  config = simclr.get_config("uci_hapt,tiny")
  exp = experiment.build_experiment(config)
  state, shardings = experiment.init_state(exp)
  step = experiment.compile_train_step(exp, shardings)
  iterator = exp.train_iterator()
  losses, grad_norms = [], []
  for _ in range(NUM_STEPS):
    state, metrics = step(state, mesh_lib.global_batch(next(iterator), exp.mesh))
    losses.append(float(metrics["loss"]))
    grad_norms.append(float(metrics["grad_norm"]))

  result = np.load(out)
  np.testing.assert_allclose(result["losses"], losses, rtol=2e-5, atol=2e-5)
  np.testing.assert_allclose(result["grad_norms"], grad_norms, rtol=1e-5)
  for i, p in enumerate(jax.tree.leaves(jax.device_get(state.params))):
    np.testing.assert_allclose(result[f"p{i}"], p, rtol=2e-4, atol=2e-5)
