#!/usr/bin/env bash
# Build a real-DNA bundle from ../shared/data/bold_coi/bold_coi_100sp.tsv with the project's own
# commands, as a user would from a BOLD export of their region, then measure it against the
# alignment baseline (benchmarks/identify_bold.py). The teacher's image tower is the pretrained
# EfficientNet-Lite0 (recipes/bold-bundle.yaml), which the edge-s student takes over as it is:
# the distillation trains the student's DNA encoder and fusion head only (training and export
# each take tens of minutes on 2 CPU cores; the run's summary.json and the export log time them).
#   bash benchmarks/build_bold_bundle.sh OUT_DIR                 # edge-s student, INT8
#   bash benchmarks/build_bold_bundle.sh OUT_DIR --teacher-only  # the teacher itself, INT8
# A training run already in OUT_DIR/run is reused (delete it to train again).
set -euo pipefail
OUT=${1:?usage: benchmarks/build_bold_bundle.sh OUT_DIR [--teacher-only]}
MODE=${2:-}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
if [ -f "$OUT/run/best/model.safetensors" ]; then
  echo "reusing the training run in $OUT/run" >&2
else
  # data synth runs inside train (recipe data.synth): real taxonomy and barcodes, drawn photos
  hir-edge train --config recipes/bold-bundle.yaml -o "$OUT/run" --force
fi
# outgroups: BOLD records of taxa the library lacks (half of bold_coi_1826sp.tsv's absent genera
# and families; identify_bold.py measures on the other half) teach the read placement what far
# reads look like
python benchmarks/identify_bold.py --write-outgroups "$OUT/outgroups.tsv"
DATA="trained on the real COI barcodes and taxonomy of 5,000 BOLD records (100 species; bold_coi_100sp.tsv) paired with drawn photos. The DNA branch and the reference library are real; the image branch is not (drawn photos)."
if [ "$MODE" = "--teacher-only" ]; then
  NAME=bold100-teacher
  hir-edge export --checkpoint "$OUT/run/best" --int8 --name "$NAME" \
    --outgroups "$OUT/outgroups.tsv" --placement-rows "$OUT/placement_rows.npz" \
    --description "CLIBD-HiR-Fuse tiny teacher (INT8, not distilled), $DATA" \
    -o "$OUT/$NAME.bundle" --force
else
  NAME=bold100
  hir-edge export --checkpoint "$OUT/run/best" --student edge-s --int8 --name "$NAME" \
    --outgroups "$OUT/outgroups.tsv" --placement-rows "$OUT/placement_rows.npz" \
    --description "CLIBD-HiR-Fuse distilled into edge-s (INT8), $DATA" \
    -o "$OUT/$NAME.bundle" --force
fi
python benchmarks/identify_bold.py --bundle "$OUT/$NAME.bundle"
