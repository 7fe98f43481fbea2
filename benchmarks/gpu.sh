#!/usr/bin/env bash
# Train-step images/s and model FLOP utilisation (MFU) of ours and of the
# PyTorch twin on one NVIDIA GPU, for each modality's default encoder.
#
# Needs, in the active Python environment: the project's requirements with
# JAX's CUDA plugin (pip install "jax[cuda12]==0.10.2") and a CUDA build of
# torch 2.13 (pip install torch==2.13.0 --index-url
# https://download.pytorch.org/whl/cu128).
#
#   benchmarks/gpu.sh                          # batch 256, float32 (TF32)
#   benchmarks/gpu.sh --batch_size 1024 --modality image
#   PEAK_TFLOPS=989 benchmarks/gpu.sh --dtype bfloat16
#   benchmarks/gpu.sh population               # populations, vmap vs solo
#
# `population` runs benchmarks/population.py instead (needs no torch): S
# seeds of each ablation cell as one vmapped (and one sequential) process
# against solo processes, per-member wall time, S = 1, 3, 5; extra
# arguments go to it (e.g. --datasets=uci_hapt --sizes=1,5).
#
# FLOPs per step come from XLA's cost_analysis of our compiled step; torch's
# MFU uses the same count. Both frameworks run float32 matmuls/convs as TF32
# (JAX's default on these GPUs; train_step.py sets torch's matmuls to match),
# so the peak is the dense TF32 (or, with --dtype bfloat16, BF16) figure.
set -euo pipefail
cd "$(dirname "$0")/.."
# One GPU for both: our mesh would otherwise take every visible device.
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}

if [[ "${1:-}" == population ]]; then
  shift
  python -c "import jax; assert jax.default_backend() == 'gpu', jax.devices()"
  exec python -m benchmarks.population --executions=vmap,sequential \
    --vmap_sizes=1,3,5 "$@"
fi

name=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)
bf16=0
[[ " $* " == *" bfloat16 "* || " $* " == *"=bfloat16 "* ]] && bf16=1
case "$name" in  # dense tensor-core peaks (TFLOP/s): TF32, BF16
  *H100*PCIe*) peaks=(378 756) ;;
  *H100*|*H200*|*GH200*) peaks=(495 989) ;;
  *A100*) peaks=(156 312) ;;
  *L40S*) peaks=(183 362) ;;
  *L4*) peaks=(60 121) ;;
  *A10*) peaks=(62 125) ;;
  *) peaks=(0 0) ;;
esac
peak=${PEAK_TFLOPS:-${peaks[$bf16]}}
if [[ "$peak" == 0 ]]; then
  echo "unknown GPU '$name': set PEAK_TFLOPS to its dense peak" >&2
  exit 1
fi
echo "GPU: $name; MFU against $peak TFLOP/s"
python -c "import jax; assert jax.default_backend() == 'gpu', jax.devices()"
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA torch'"
exec python -m benchmarks.train_step --devices 1 --reference torch \
  --torch_device cuda --peak_tflops "$peak" --steps 20 --warmup 3 "$@"
