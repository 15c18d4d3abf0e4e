#!/usr/bin/env bash
# Build a real-photo bundle from EU-Moths (../shared/data/eu_moths) with the project's own
# commands, as a user would from their own labelled photos, then measure it on the test split
# (benchmarks/moths.py). On 2 CPU cores: packing seconds, training about 20 minutes, export a
# few minutes.
#   bash benchmarks/build_moth_bundle.sh OUT_DIR
set -euo pipefail
OUT=${1:?usage: benchmarks/build_moth_bundle.sh OUT_DIR}
MOTHS=${MOTHS:-../shared/data/eu_moths}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
# 15% of each species' train photos become the validation split: the checkpoint and the field
# thresholds are chosen on them, never on the test split.
hir-edge data pack -m "$MOTHS/eu_moths.tsv" -o "$OUT/eu_moths.h5" --fill-gaps --val-fraction 0.15 --force
hir-edge train --config recipes/moths-clibd.yaml -o "$OUT/run" --set data.path="$OUT/eu_moths.h5" --force
hir-edge export --checkpoint "$OUT/run/best" --student edge-s --int8 --name eu-moths \
  --description "EfficientNet-Lite0 (ImageNet weights) fine-tuned image–text on the EU-Moths photos (Korsch et al. 2021; 200 species of European moths, 1,452 training photos), INT8. Photos only: no DNA branch." \
  -o "$OUT/eu_moths.bundle" --force
python benchmarks/moths.py --bundle "$OUT/eu_moths.bundle" --data "$OUT/eu_moths.h5" --checkpoint "$OUT/run/best"
python benchmarks/photo_scope.py --bundle "$OUT/eu_moths.bundle" --data "$OUT/eu_moths.h5"
