#!/usr/bin/env bash
# An ablation sweep on a SLURM array: every task is one worker of the same
# sweep, all sharing one workdir on a shared filesystem.
#
#   sbatch --array=0-7 launch/ablate_array.sh configs/ablation.py:default \
#       /shared/ablation [--config.seeds="(0,1,2)" --claim_timeout=600 ...]
#
# Each task claims one (dataset, method) group at a time (a file under
# <workdir>/claims/ with a heartbeat; see launch/ablate.py, "Several
# workers"), so every run is done by exactly one task. A task that dies is
# taken over by another after --claim_timeout (5 min by default), from the
# group's checkpoints; tasks with nothing left to claim wait for the rest,
# and the first to find the sweep finished writes <workdir>/summary.md.
# Re-submit the same command to resume; `python -m launch.ablate
# --report_only ...` writes the table at any time.
#
# The repository is $CONTRASTIVE_REPO, else the directory sbatch was called
# from (sbatch runs a copy of this script from its spool directory, so the
# script's own path says nothing). Logs: ablate_<job>_<task>.log there; the
# same <job>_<task> names the worker in claims and run statuses.
# DRY_RUN=1 prints the command instead of running it.
#SBATCH --job-name=ablate
#SBATCH --cpus-per-task=4
#SBATCH --output=ablate_%A_%a.log
#SBATCH --signal=TERM@120
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: sbatch --array=0-N $0 CONFIG WORKDIR [launch.ablate flags]" >&2
  exit 2
fi
config=$1; workdir=$2; shift 2
repo=${CONTRASTIVE_REPO:-${SLURM_SUBMIT_DIR:-$PWD}}
if [[ ! -f "$repo/launch/ablate.py" ]]; then
  echo "ablate_array.sh: $repo is not the contrastive repository (no" \
    "launch/ablate.py): submit from the repository or set CONTRASTIVE_REPO." >&2
  exit 2
fi
cd "$repo"
cmd=(python -m launch.ablate "--config=$config" "--workdir=$workdir" "$@")
if [[ -n "${DRY_RUN:-}" ]]; then
  echo "cd $(printf '%q' "$repo") && $(printf '%q ' "${cmd[@]}")"
  exit 0
fi
# shellcheck disable=SC1091
. .venv/bin/activate
# exec: SLURM's SIGTERM (--signal, preemption) reaches python, which saves
# the group's checkpoints and releases its claim for another task.
exec "${cmd[@]}"
