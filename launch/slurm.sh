#!/usr/bin/env bash
# Multi-host GPU training under SLURM: one process per node, all its GPUs.
#
#   cd /path/to/contrastive
#   sbatch --nodes=4 --gpus-per-node=8 launch/slurm.sh \
#       configs/moco.py:cifar10 /shared/runs/moco_cifar10 [--config.x=y ...]
#
# sbatch runs a copy of this script from its spool folder, so the repository
# is found from the environment, not from the script's path:
# $CONTRASTIVE_REPO if set (submit from anywhere with
# `sbatch --export=ALL,CONTRASTIVE_REPO=/path/to/contrastive ...`), else
# $SLURM_SUBMIT_DIR (the folder sbatch was called from), else the folder
# above this script (running it by hand). A relative WORKDIR is taken from
# the folder the job starts in, as the user typed it.
#
# DRY_RUN=1 prints the commands instead of running them, e.g.
#   DRY_RUN=1 SLURM_SUBMIT_DIR=$PWD bash launch/slurm.sh CONFIG WORKDIR
#
# jax.distributed detects SLURM (SLURM_JOB_NODELIST, SLURM_PROCID, ...): the
# first node is the coordinator. Re-submitting resumes from the workdir.
#SBATCH --job-name=contrastive
#SBATCH --ntasks-per-node=1
#SBATCH --signal=TERM@120
set -euo pipefail

usage="usage: sbatch [options] launch/slurm.sh CONFIG WORKDIR [--config.x=y ...]"
if (( $# < 2 )); then
  echo "slurm.sh: expected CONFIG and WORKDIR, got $# argument(s)." >&2
  echo "$usage" >&2
  exit 2
fi
config=$1; workdir=$2; shift 2

is_repo() { [[ -n $1 && -f $1/launch/main.py && -d $1/contrastive ]]; }

if [[ -n ${CONTRASTIVE_REPO:-} ]]; then
  repo=$CONTRASTIVE_REPO
  if ! is_repo "$repo"; then
    echo "slurm.sh: CONTRASTIVE_REPO=$repo does not hold the contrastive" \
      "repository (no launch/main.py and contrastive/ there); set it to the" \
      "repository's root." >&2
    exit 2
  fi
elif is_repo "${SLURM_SUBMIT_DIR:-}"; then
  repo=$SLURM_SUBMIT_DIR
elif is_repo "$(cd "$(dirname "$0")/.." && pwd)"; then
  repo=$(cd "$(dirname "$0")/.." && pwd)
else
  echo "slurm.sh: cannot find the contrastive repository:" \
    "SLURM_SUBMIT_DIR=${SLURM_SUBMIT_DIR:-(unset)} does not hold it, and sbatch" \
    "runs a copy of this script ($0). Submit from the repository's root" \
    "(cd /path/to/contrastive && sbatch launch/slurm.sh ...), or set" \
    "CONTRASTIVE_REPO=/path/to/contrastive (sbatch --export=ALL,CONTRASTIVE_REPO=...)." >&2
  exit 2
fi

. "$repo/launch/lib.sh"
enter_repo slurm.sh "$repo" "$workdir"
# --signal=TERM@120 gives the run two minutes to checkpoint before the kill.
run srun --kill-on-bad-exit=1 python -m launch.main --distributed \
  --config="$config" --workdir="$workdir" "$@"
