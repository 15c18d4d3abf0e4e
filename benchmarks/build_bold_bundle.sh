#!/usr/bin/env bash
# Build a real-DNA bundle from ../shared/data/bold_coi/bold_coi_100sp.tsv with the project's own
# commands, as a user would from a BOLD export of their region, then measure it against the
# alignment baseline (benchmarks/identify_bold.py). On 2 CPU cores the training takes about 20
# minutes and the export longer: its distillation trains the 224-px EfficientNet-Lite0 image
# tower of the edge-s student on the drawn photos.
#   bash benchmarks/build_bold_bundle.sh OUT_DIR
set -euo pipefail
OUT=${1:?usage: benchmarks/build_bold_bundle.sh OUT_DIR}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
# data synth runs inside train (recipe data.synth): real taxonomy and barcodes, drawn photos
hir-edge train --config recipes/bold-bundle.yaml -o "$OUT/run" --force
hir-edge export --checkpoint "$OUT/run/best" --student edge-s --int8 --name bold100 \
  --description "CLIBD-HiR-Fuse distilled into edge-s (INT8), trained on the real COI barcodes and taxonomy of 5,000 BOLD records (100 species; bold_coi_100sp.tsv) paired with drawn photos. The DNA branch and the reference library are real; the image branch is not (drawn photos)." \
  -o "$OUT/bold100.bundle" --force
python benchmarks/identify_bold.py --bundle "$OUT/bold100.bundle"
