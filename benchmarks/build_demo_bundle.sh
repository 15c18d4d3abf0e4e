#!/usr/bin/env bash
# Rebuild the demo bundle shipped in hir_edge/bundles/demo and the examples/ beside it, with the
# project's own commands, on a fully generated world (no real data is used or shipped):
#   data synth (generated "Demo" taxa, evolved barcodes, drawn photos) → train (recipes/demo.yaml:
#   tiny-lite0, CLIBD-HiR-Fuse) → export (edge-s student: the teacher's pretrained Lite0 image
#   tower handed over, the DNA encoder and fusion head distilled; INT8) → examples (held-out
#   test specimens, one read degraded). On 2 CPU cores, about half an hour in all:
#   bash benchmarks/build_demo_bundle.sh
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-benchmarks/work/demo}
mkdir -p "$WORK"

if [ -f "$WORK/run/best/model.safetensors" ]; then
  echo "reusing the training run in $WORK/run (delete it to train again)" >&2
else
  hir-edge train --config recipes/demo.yaml -o "$WORK/run" --force
fi
hir-edge export --checkpoint "$WORK/run/best" --student edge-s --int8 \
  --name hir-edge-demo \
  --description "Demo bundle of hir-edge: a CLIBD-HiR-Fuse model (tiny-lite0 teacher: an ImageNet-pretrained EfficientNet-Lite0 image tower at 128 px; distilled into the edge-s student, INT8) trained on a fully generated world. Every taxon is a generated demo taxon whose name starts with 'Demo'; the barcodes were evolved along the generated tree and the photos were drawn by the generator. It demonstrates the pipeline and identifies nothing real: build a bundle from your own reference barcodes for real use (README: 'A bundle from your own BOLD export')." \
  -o "$WORK/demo.bundle" --force
python benchmarks/make_examples.py --data .cache/hir-edge/synth-demo/specimens.h5 \
  --bundle "$WORK/demo.bundle" --out examples --force
rm -rf hir_edge/bundles/demo
mkdir -p hir_edge/bundles
cp -r "$WORK/demo.bundle" hir_edge/bundles/demo
du -sh hir_edge/bundles/demo
