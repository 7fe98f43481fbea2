#!/usr/bin/env bash
# Multi-host GPU training under SLURM: one process per node, all its GPUs.
#
#   sbatch --nodes=4 --gpus-per-node=8 launch/slurm.sh \
#       configs/moco.py:cifar10 /shared/runs/moco_cifar10 [--config.x=y ...]
#
# jax.distributed detects SLURM (SLURM_JOB_NODELIST, SLURM_PROCID, ...): the
# first node is the coordinator. Re-submitting resumes from the workdir.
#SBATCH --job-name=contrastive
#SBATCH --ntasks-per-node=1
#SBATCH --signal=TERM@120
set -euo pipefail
config=$1; workdir=$2; shift 2
cd "$(dirname "$0")/.."
. .venv/bin/activate
# --signal=TERM@120 gives the run two minutes to checkpoint before the kill.
srun --kill-on-bad-exit=1 python -m launch.main --distributed \
  --config="$config" --workdir="$workdir" "$@"
