"""One process of the 2-process localhost run in test_multiprocess.py.

Usage: python tests/train/multiprocess_worker.py OUT.npz NUM_STEPS
with JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID set.
Process 0 writes each step's loss and gradient norm, and the final parameters.
"""
import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

from contrastive.train.distributed import initialize_from_env  # pylint: disable=wrong-import-position


def main(out_path: str, num_steps: int) -> None:
  initialize_from_env()
  from configs import simclr  # pylint: disable=g-import-not-at-top
  from contrastive.train import experiment  # pylint: disable=g-import-not-at-top
  from contrastive.train import mesh as mesh_lib  # pylint: disable=g-import-not-at-top

  assert jax.process_count() == 2 and jax.device_count() == 8
  config = simclr.get_config("uci_hapt,tiny")
  exp = experiment.build_experiment(config)
  state, shardings = experiment.init_state(exp)
  step = experiment.compile_train_step(exp, shardings)
  iterator = exp.train_iterator()
  losses, grad_norms = [], []
  for _ in range(num_steps):
    state, metrics = step(state, mesh_lib.global_batch(next(iterator), exp.mesh))
    losses.append(float(metrics["loss"]))
    grad_norms.append(float(metrics["grad_norm"]))
  params = jax.tree.leaves(state.params)
  if jax.process_index() == 0:
    np.savez(out_path, losses=np.array(losses),
             grad_norms=np.array(grad_norms),
             **{f"p{i}": np.asarray(p) for i, p in enumerate(params)})
  jax.distributed.shutdown()


if __name__ == "__main__":
  main(sys.argv[1], int(sys.argv[2]))
