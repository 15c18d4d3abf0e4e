"""Reproduction study on real barcodes: CLIBD vs CLIBD-HiR vs CLIBD-HiR-Fuse, plus baselines.

From a clean checkout, on 2 CPU cores (several hours: each EU-Moths run is the longest;
``--quick`` is one seed and fewer steps):

    python benchmarks/reproduce.py            # 3 variants × 3 seeds, alignment baselines, EU-Moths
    python benchmarks/reproduce.py --quick    # one seed, fewer steps
    python benchmarks/reproduce.py --only-moths --moth-epochs 8   # EU-Moths only

1. ``hir-edge data synth`` on ../shared/data/bold_coi/bold_coi_100sp.tsv: the real taxonomy and
   the real COI barcodes of 5,000 BOLD specimens (100 species), each paired with a drawn photo,
   split per species into train/val/test (closed set, as the paper's split).
2. The three variants trained with the tiny recipes (recipes/tiny-*.yaml): same data, same
   budget, seeds 0, 1, 2.
3. Every setting (IT, DT, I+DT Avg, I+DT Fusion) and condition (Clean, Noisy I, Noisy D,
   Noisy I+D; degradation preset ``paper``, seed 0) on the test split, with the paper's protocol.
4. The classical baselines on the same split: best hit by alignment identity (edlib) and k-mer
   cosine nearest neighbour, over the training barcodes, clean and Noisy D.
5. Real photos: EU-Moths (2,205 photos, 200 species), image–text only, CLIBD objective vs
   CLIBD + HiR, IT Top-1/Top-5 at genus and species, clean and blurred.

Writes benchmarks/results/reproduction.md (and .json). Runs already finished in the work folder
are reused, so an interrupted study continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
SHARED = ROOT.parent / "shared" / "data"

from reproduce_report import VARIANTS, write_moth_report, write_report  # noqa: E402


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- training
def train(variant: str, seed: int, work: Path, extra: list[str], recipe: str | None = None) -> Path:
    from hir_edge.train.config import load_config
    from hir_edge.train.trainer import Trainer

    run = work / "runs" / f"{variant}-s{seed}"
    cfg = load_config(
        ROOT / "recipes" / (recipe or f"tiny-{variant}.yaml"), [f"train.seed={seed}", *extra]
    )
    done = (run / "summary.json").is_file()
    if done and load_config(run / "config.yaml").to_dict() == cfg.to_dict():
        say(f"reusing {run}")
        return run
    say(f"training {variant} seed {seed} → {run}")  # new, or its recipe changed since
    Trainer(cfg, run, force=run.exists(), quiet=True).fit()
    return run


def run_data(run: Path) -> Path:
    """The HDF5 file a run trained on (its resolved recipe says)."""
    from hir_edge.train.config import load_config

    cfg = load_config(run / "config.yaml")
    return Path(cfg.data.path) if cfg.data.path else Path(cfg.data.synth.out) / "specimens.h5"


def final_model(run: Path) -> Path:
    """The last checkpoint (for runs whose validation split must not choose the model)."""
    pointer = json.loads((run / "checkpoints" / "latest.json").read_text())
    return run / "checkpoints" / pointer["path"]


# --------------------------------------------------------------------------- evaluation
def evaluate(model: Path, data: Path, work: Path, split: str = "test") -> dict:
    from hir_edge.evaluation.runner import EvalOptions, Evaluator

    options = EvalOptions(
        split=split,
        val_split=None,
        keys_split=None,
        preset="paper",
        seed=0,
        cache_dir=str(work / "cache"),
        quiet=True,
    )
    return Evaluator(model, data, options).run()


# --------------------------------------------------------------------------- baselines
def baselines(data: Path) -> dict:
    from hir_edge.data.hdf5 import SpecimenStore
    from hir_edge.degrade import degrade_dna_seeded, get_preset
    from hir_edge.dna.qc import clean_read
    from hir_edge.evaluation.baselines import (
        AlignmentIndex,
        KmerIndex,
        alignment_predict,
        kmer_predict,
        topk_accuracy,
    )
    from hir_edge.taxonomy import Taxonomy

    train_store, test = SpecimenStore(data, "train"), SpecimenStore(data, "test")
    taxonomy = Taxonomy.from_lineages(train_store.lineages())
    refs = [clean_read(b)[0] for b in train_store.barcodes()]
    ref_labels = taxonomy.encode_many(train_store.lineages())
    truth = taxonomy.encode_many(test.lineages())
    clean = [clean_read(b)[0] for b in test.barcodes()]
    noise = get_preset("paper").dna
    noisy = [degrade_dna_seeded(s, noise, 0, i) for i, s in enumerate(clean)]
    out = {}
    kmer, align = KmerIndex(refs, k=6, threads=0), AlignmentIndex(refs, prefilter=50)
    for name, reads in (("clean", clean), ("noisy_d", noisy)):
        for method, predict, index in (
            ("alignment", alignment_predict, align),
            ("k-mer", kmer_predict, kmer),
        ):
            pred = predict(reads, index, ref_labels)
            result = topk_accuracy(pred.ranked, truth, taxonomy.ranks).to_dict()
            result["queries_per_second"] = pred.queries_per_second
            out[(method, name)] = result
            say(
                f"baseline {method} {name}: Global top-1 {result['accuracy']['global']['top1']:.1f}"
            )
    return {f"{m}|{c}": v for (m, c), v in out.items()}


# --------------------------------------------------------------------------- EU-Moths
def moths(work: Path, seeds: list[int], quick: bool, epochs: int | None = None) -> dict | None:
    """EU-Moths' test split, IT: the pretrained-backbone recipes (CLIBD and CLIBD-HiR, each
    seed), a frozen-feature anchor and the from-scratch tiny tower, all measured here."""
    from hir_edge.data.pack import PackSettings, pack

    folder = SHARED / "eu_moths"
    if not (folder / "eu_moths.tsv").is_file():
        say("EU-Moths not found: skipping the real-photo study")
        return None
    data = work / "eu_moths.h5"
    if not data.is_file():
        say("packing EU-Moths (15% of each species' train photos held out for validation)")
        pack(
            PackSettings(
                metadata=folder / "eu_moths.tsv",
                images=folder,
                output=data,
                fill_gaps=True,
                val_fraction=0.15,
                quiet=True,
            )
        )
    # relative to the checkout (the study runs there), so a run is reused from any checkout
    extra = [f"data.path={os.path.relpath(data, ROOT)}"] + (
        ["train.epochs=4", "train.eval_every_epochs=4"] if quick else []
    )
    if epochs:  # a shorter schedule than the recipe's, the same for both objectives
        extra += [f"train.epochs={epochs}", f"train.eval_every_epochs={max(1, epochs // 2)}"]
    out: dict = {"anchor": frozen_centroids(data), "epochs": epochs}
    for variant in ("clibd", "hir"):
        for seed in seeds:
            run = train(f"moths-{variant}", seed, work, extra, recipe=f"moths-{variant}.yaml")
            out.setdefault(variant, []).append(evaluate(run / "best", data, work))
            out.setdefault(f"{variant}_timing", []).append(
                json.loads((run / "summary.json").read_text())
            )
    # The tiny preset's own image tower from scratch (the figure before the pretrained one).
    scratch = [
        f"data.path={os.path.relpath(data, ROOT)}",
        "train.epochs=2" if quick else "train.epochs=8",
        "model.overrides={fusion.enabled: false, clip.config.vision_cfg.image_size: 128, "
        "clip.config.vision_cfg.patch_size: 16}",
        "data.max_val_specimens=200",
        "train.precision=fp32",  # as reproduction-moths.md was measured
    ]
    run = train("moths-scratch", seeds[0], work, scratch, recipe="tiny-clibd.yaml")
    out["scratch"] = [evaluate(run / "best", data, work)]
    return out


def frozen_centroids(data: Path) -> dict:
    """ImageNet EfficientNet-Lite0, frozen: nearest class centroid (train and validation
    photos) per rank, on the test split. No training at all: the anchor a fine-tuned tower
    must beat."""
    import torch

    from hir_edge.data.hdf5 import SpecimenStore
    from hir_edge.images import PreprocessConfig, load_image, preprocess
    from hir_edge.models.pretrained import get_image_weights, load_image_weights

    spec = get_image_weights("efficientnet-lite0")
    import timm

    trunk = timm.create_model(spec.timm_model, pretrained=False, num_classes=0).eval()
    load_image_weights(trunk, "efficientnet-lite0")
    config = PreprocessConfig(
        image_size=spec.image_size, mean=spec.mean, std=spec.std, interpolation=spec.interpolation
    )

    def features(split: str) -> tuple[np.ndarray, list]:
        store = SpecimenStore(data, split)
        out = []
        with torch.no_grad():
            for start in range(0, len(store), 64):
                stop = min(start + 64, len(store))
                pixels = [
                    preprocess(load_image(store.image_bytes(i)), config) for i in range(start, stop)
                ]
                out.append(trunk(torch.from_numpy(np.stack(pixels))).numpy())
        f = np.concatenate(out)
        return f / np.linalg.norm(f, axis=1, keepdims=True), store.lineages()

    train_f, train_l = features("train")
    val_f, val_l = features("val")
    test_f, test_l = features("test")
    keys, key_l = np.concatenate([train_f, val_f]), train_l + val_l
    result = {}
    for level, rank in ((2, "genus"), (3, "species")):
        names = sorted({lin[level] for lin in key_l})
        centroids = np.stack(
            [keys[[i for i, lin in enumerate(key_l) if lin[level] == n]].mean(0) for n in names]
        )
        pred = (test_f @ centroids.T).argmax(1)
        result[rank] = 100.0 * float(
            np.mean([names[p] == lin[level] for p, lin in zip(pred, test_l)])
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one seed, fewer steps (≈10 min)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "reproduce")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "reproduction"
    )
    parser.add_argument("--skip-moths", action="store_true")
    parser.add_argument(
        "--only-moths",
        action="store_true",
        help="only the EU-Moths study, written to reproduction-moths.md (and .json)",
    )
    parser.add_argument(
        "--moth-epochs",
        type=int,
        default=None,
        help="EU-Moths fine-tuning epochs for both objectives [default: the recipes' 20]",
    )
    args = parser.parse_args()
    if not (SHARED / "bold_coi" / "bold_coi_100sp.tsv").is_file():
        sys.exit(
            f"real barcodes not found under {SHARED}: this study needs ../shared/data beside the checkout"
        )

    os.chdir(
        ROOT
    )  # the recipes' relative paths (../shared/data, .cache/) start at the repository root
    start = time.perf_counter()
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    work = args.work / ("quick" if args.quick else "full")
    extra = ["train.epochs=2", "data.max_val_specimens=200"] if args.quick else []
    results: dict[str, list[dict]] = {}
    timings: dict[str, list[dict]] = {}
    data = None
    # Real photos first: each of their runs is the longest (≈25 min), and a study stopped part
    # way keeps its finished runs for the next start.
    moth = None if args.skip_moths else moths(work, seeds, args.quick, args.moth_epochs)
    if args.only_moths:
        if moth is not None:
            write_moth_report(args, moth, seeds, time.perf_counter() - start)
        return
    for variant in VARIANTS:
        for seed in seeds:
            run = train(variant, seed, work, extra)
            summary = json.loads((run / "summary.json").read_text())
            timings.setdefault(variant, []).append(summary)
            data = run_data(run)
            say(f"evaluating {run.name}")
            results.setdefault(variant, []).append(evaluate(run / "best", data, work))
    base = baselines(data)
    write_report(args, results, timings, base, moth, seeds, time.perf_counter() - start)


if __name__ == "__main__":
    main()
