#!/usr/bin/env bash
# Multi-host training on a Cloud TPU VM slice: the same command on every host.
#
#   gcloud compute tpus tpu-vm ssh $TPU --zone=$ZONE --worker=all --command \
#     "cd contrastive && bash launch/tpu_vm.sh configs/simclr.py:imagenet2012 gs://bucket/run"
#
# jax.distributed reads the slice's topology from the TPU metadata server, so
# no addresses are needed. The workdir must be shared (GCS) for checkpoints.
set -euo pipefail
config=$1; workdir=$2; shift 2
cd "$(dirname "$0")/.."
. .venv/bin/activate
exec python -m launch.main --distributed --config="$config" \
  --workdir="$workdir" "$@"
