r"""Trains and evaluates one configuration.

  python -m launch.main --config=configs/simclr.py:fashion_mnist,small \
      --workdir=/tmp/simclr_fmnist --config.train.num_steps=200

Re-running the same command resumes from the workdir's latest checkpoint.
A config with a population (e.g. `--config.population.seeds="(0,1,2)"`,
see contrastive/train/population.py) trains its members in
`<workdir>/members/<name>` with one process.
On a cluster, `launch/slurm.sh` and `launch/tpu_vm.sh` start one process per
host with `--distributed`, which initialises `jax.distributed` from the
environment (SLURM and Cloud TPU are detected automatically).
"""
from __future__ import annotations

import json

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from contrastive.train.preemption import PreemptionGuard

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, e.g. configs/moco.py:fashion_mnist,small.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, metrics, results.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False,
    "Join a multi-host run (contrastive.train.distributed): SLURM, Cloud TPU,"
    " or JAX_COORDINATOR_ADDRESS/JAX_NUM_PROCESSES/JAX_PROCESS_ID.")
flags.mark_flags_as_required(["config", "workdir"])


# SIGTERM is a stop request from the launcher's start (`__main__` below
# enters the guard before the flags load the config), through start-up and
# compilation: the loop acts on it, with the other processes, before its
# first step. A SIGTERM during the final evaluation lets it finish.
_GUARD = PreemptionGuard()


def main(argv):
  del argv
  guard = _GUARD
  import jax  # pylint: disable=g-import-not-at-top
  if _DISTRIBUTED.value:
    from contrastive.train.distributed import initialize_from_env  # pylint: disable=g-import-not-at-top
    initialize_from_env()
  from contrastive.train.log_filter import quiet_library_info  # pylint: disable=g-import-not-at-top
  from contrastive.train.evaluation import results_table  # pylint: disable=g-import-not-at-top
  from contrastive.train.loop import train_and_evaluate  # pylint: disable=g-import-not-at-top
  quiet_library_info()
  logging.info("process %d/%d, %d devices", jax.process_index(),
               jax.process_count(), jax.device_count())
  from launch import workdir_guard  # pylint: disable=g-import-not-at-top
  # Remote workdir packages, no empty workdir left by a failed start, and one
  # line for a full disk.
  with workdir_guard.guard(_WORKDIR.value):
    results = train_and_evaluate(_CONFIG.value, _WORKDIR.value, guard=guard)
  if jax.process_index() == 0:
    print(json.dumps(results, indent=2))
    if "knn_accuracy" in results or "members" in results:
      print(results_table(results, _CONFIG.value.method), flush=True)
  if _DISTRIBUTED.value:
    # Leave the coordination service now, while the guard still owns
    # SIGTERM: at interpreter exit Python resets it to the default, and a
    # process waiting there for the others to leave was killed by it.
    jax.distributed.shutdown()


def main_or_data_error(argv):
  """`main`, with a missing or unfetchable dataset reported in one message.

  Its message already says where the data was looked for and the command
  that fetches it; a traceback would only bury that sentence.
  """
  from contrastive.data.base import DataUnavailableError  # pylint: disable=g-import-not-at-top
  try:
    return main(argv)
  except DataUnavailableError as error:
    raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
  _GUARD.__enter__()
  app.run(main_or_data_error)
