#!/usr/bin/env bash
# GPU check: a few hundred bf16 training steps of the mid-size 'small' preset on generated data,
# one process, then 2-process DDP when two GPUs exist. Records samples/s and peak memory in
# benchmarks/results/gpu_check.md (and .json). Everything else in the project runs without a GPU.
#
#   bash benchmarks/gpu_check.sh            # from the repository root, with the [train] extra
set -euo pipefail
cd "$(dirname "$0")/.."
RESULTS=${RESULTS:-benchmarks/results}
RUNS=${RUNS:-/tmp/hir-edge-gpu-check}
STEPS=${STEPS:-300}
mkdir -p "$RESULTS" "$RUNS"

python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device: this check needs a GPU'"
python -m hir_edge train --config recipes/gpu-check.yaml -o "$RUNS/one" --force --quiet \
  --set "train.max_steps=$STEPS"
runs=("$RUNS/one")
if [ "$(python -c 'import torch; print(torch.cuda.device_count())')" -ge 2 ]; then
  torchrun --standalone --nproc_per_node 2 -m hir_edge train --config recipes/gpu-check.yaml \
    -o "$RUNS/ddp2" --force --quiet --set "train.max_steps=$STEPS" --set train.batch_size=32
  runs+=("$RUNS/ddp2")
fi
python benchmarks/gpu_report.py --out "$RESULTS" "${runs[@]}"
