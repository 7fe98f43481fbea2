"""Multi-host start-up: `jax.distributed.initialize` from the environment."""
from __future__ import annotations

import os

import jax


def initialize_from_env() -> None:
  """Joins the multi-process JAX runtime.

  Explicit variables win: `JAX_COORDINATOR_ADDRESS` (host:port),
  `JAX_NUM_PROCESSES` and `JAX_PROCESS_ID` (used by the localhost tests and
  by hand-rolled launchers). Otherwise JAX detects the cluster itself (SLURM
  from `SLURM_*`, Cloud TPU VMs from the TPU metadata, Open MPI, ...).
  Call it before any other JAX call.

  JAX's own preemption service is turned off: it installs a SIGTERM handler
  of its own, which would take SIGTERM away from the training loop's
  `PreemptionGuard`; the loop's stop agreement
  (`contrastive.train.agreement`) does its job for every process.
  """
  jax.config.update("jax_enable_preemption_service", False)
  num = os.environ.get("JAX_NUM_PROCESSES")
  pid = os.environ.get("JAX_PROCESS_ID")
  if (num is None) != (pid is None):
    raise ValueError(
        "set both JAX_NUM_PROCESSES and JAX_PROCESS_ID, or neither (to let"
        " JAX detect SLURM or Cloud TPU).")
  if num is not None:
    jax.distributed.initialize(
        coordinator_address=os.environ.get("JAX_COORDINATOR_ADDRESS"),
        num_processes=int(num), process_id=int(pid))
  else:
    jax.distributed.initialize()
