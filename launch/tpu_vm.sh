#!/usr/bin/env bash
# Multi-host training on a Cloud TPU VM slice: the same command on every host.
#
#   gcloud compute tpus tpu-vm ssh $TPU --zone=$ZONE --worker=all --command \
#     "cd contrastive && bash launch/tpu_vm.sh configs/simclr.py:imagenet2012 gs://bucket/run"
#
# jax.distributed reads the slice's topology from the TPU metadata server, so
# no addresses are needed. The workdir must be shared by every host: a GCS
# URI (gs://bucket/run; checkpoints, metrics.jsonl, TensorBoard and results
# are written there through etils.epath) needs the optional packages of
# requirements-gcs.txt on every host:
#   pip install -r requirements-gcs.txt
# launch.main stops with that command if they are missing.
#
# The repository is $CONTRASTIVE_REPO if set, else the folder above this
# script. DRY_RUN=1 prints the commands instead of running them.
set -euo pipefail

usage="usage: launch/tpu_vm.sh CONFIG WORKDIR [--config.x=y ...]"
if (( $# < 2 )); then
  echo "tpu_vm.sh: expected CONFIG and WORKDIR, got $# argument(s)." >&2
  echo "$usage" >&2
  exit 2
fi
config=$1; workdir=$2; shift 2

repo=${CONTRASTIVE_REPO:-$(cd "$(dirname "$0")/.." && pwd)}
if [[ ! -f $repo/launch/main.py || ! -d $repo/contrastive ]]; then
  echo "tpu_vm.sh: $repo does not hold the contrastive repository (no" \
    "launch/main.py and contrastive/ there); run the script from its clone" \
    "or set CONTRASTIVE_REPO=/path/to/contrastive." >&2
  exit 2
fi

. "$repo/launch/lib.sh"
enter_repo tpu_vm.sh "$repo" "$workdir"
run exec python -m launch.main --distributed --config="$config" \
  --workdir="$workdir" "$@"
