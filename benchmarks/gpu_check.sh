#!/usr/bin/env bash
# GPU check: bf16 training steps of the mid-size 'small' preset on generated data (one process,
# then 2-process DDP: NCCL across two GPUs, or two ranks sharing one GPU over gloo when only
# one exists), then CUDA inference: the paper-protocol evaluation and `bench` of the trained
# model in torch, and `identify` with the torch backend. Records everything in
# benchmarks/results/gpu_check.md (and .json). Everything else in the project runs without a GPU.
#
#   bash benchmarks/gpu_check.sh            # from the repository root, with the [train] extra
set -euo pipefail
cd "$(dirname "$0")/.."
RESULTS=${RESULTS:-benchmarks/results}
RUNS=${RUNS:-/tmp/hir-edge-gpu-check}
STEPS=${STEPS:-300}
DDP_STEPS=${DDP_STEPS:-100}
RECIPE=${RECIPE:-recipes/gpu-check.yaml}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu with a tiny RECIPE rehearses the script on a laptop
mkdir -p "$RESULTS" "$RUNS"
hir() { python -m hir_edge "$@"; }

if [ "$DEVICE" = cuda ]; then
  python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device: this check needs a GPU'"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
hir train --config "$RECIPE" -o "$RUNS/one" --force --quiet --set "train.max_steps=$STEPS"
runs=("$RUNS/one")
# Two ranks with the same global batch (2 × 32 = 64): NCCL on two GPUs, gloo when they share one.
torchrun --standalone --nproc_per_node 2 -m hir_edge train --config "$RECIPE" \
  -o "$RUNS/ddp2" --force --quiet --set "train.max_steps=$DDP_STEPS" --set train.batch_size=32
runs+=("$RUNS/ddp2")

data=$(python -c "import yaml; print(yaml.safe_load(open('$RECIPE'))['data']['synth']['out'])")
start=$SECONDS
hir eval --checkpoint "$RUNS/one/best" --data "$data/specimens.h5" --split test --device "$DEVICE" \
  --batch-size 256 -o "$RUNS/eval" --force --quiet
eval_seconds=$((SECONDS - start))
hir bench "$RUNS/one/best" --device "$DEVICE" --batch 1 --batch 32 --batch 256 -o "$RUNS/bench.json" --force
hir identify --bundle "$RUNS/one/best" --backend torch --device "$DEVICE" --fasta examples/reads.fa \
  --image examples/photos --format tsv -o "$RUNS/identify.tsv" --force
python benchmarks/gpu_report.py --out "$RESULTS" --bench "$RUNS/bench.json" \
  --eval "$RUNS/eval" --eval-seconds "$eval_seconds" --identify "$RUNS/identify.tsv" "${runs[@]}"
