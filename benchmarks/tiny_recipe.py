"""The tiny CLIBD recipe as a user runs it: train, then evaluate on the test split.

    python benchmarks/tiny_recipe.py    # the training time tiny_recipe.md gives, then the eval
    python benchmarks/tiny_recipe.py --extra-seeds 1 2    # and IT order vs family over 3 seeds

Runs the two commands a user runs, and nothing else:

    hir-edge train --config recipes/tiny-clibd.yaml -o benchmarks/work/tiny_recipe/run
    hir-edge eval --checkpoint .../run/best --data <the recipe's data> --preset paper

and puts the plain best hits beside them (test reads against the training barcodes, the same
`paper` noise, seed 0). A run already in benchmarks/work/tiny_recipe/run is reused (delete it
to train again); its own summary.json gives the training time, so run it with no other heavy
job on the machine (two heavy jobs on 2 cores run each about 4x slower).
Writes benchmarks/results/tiny_recipe.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from results_file import write_results  # noqa: E402  (benchmarks/ is on sys.path)

RANKS = ("order", "family", "genus", "species", "global")
RECIPE = "recipes/tiny-clibd.yaml"


def _run(*args: str) -> None:
    print("$ hir-edge " + " ".join(args), file=sys.stderr, flush=True)
    subprocess.run(["hir-edge", *args], check=True)


def _train_and_eval(work: Path, data: Path, seed: int | None) -> tuple[dict, dict]:
    """The run's summary and its eval's prompt-ranking results (``seed``: the recipe's, or a
    ``train.seed`` override in a run folder of its own). Runs already trained are reused."""
    suffix = "" if seed is None else f"-s{seed}"
    run, report = work / f"run{suffix}", work / f"eval{suffix}"
    if not (run / "summary.json").is_file():
        extra = [] if seed is None else ["--set", f"train.seed={seed}"]
        _run("train", "--config", RECIPE, "-o", str(run), "--force", *extra)
    _run(
        *("eval", "--checkpoint", str(run / "best"), "--data", str(data), "--preset", "paper"),
        *("-o", str(report), "--force", "-q"),
    )
    summary = json.loads((run / "summary.json").read_text())
    return summary, json.loads((report / "results.json").read_text())["paper"]


def order_vs_family(papers: list[dict]) -> dict:
    """IT order and family Top-1 per training seed on the test specimens named at every rank,
    and the paired gain of order over family with its 95% t-interval."""
    from seed_stats import claim, fully_labelled

    runs = [{"paper": p} for p in papers]  # the per-seed results layout seed_stats reads
    order = fully_labelled(runs, "IT", "clean", "order")
    family = fully_labelled(runs, "IT", "clean", "family")
    return {"order": order, "family": family, "claim": claim(family, order)}


def main() -> None:
    from reproduce import baselines

    from hir_edge.train.config import load_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--extra-seeds",
        type=int,
        nargs="*",
        default=[],
        help="train the recipe again with these train.seed values to compare IT order with "
        "family over seeds (each trains as long as the first)",
    )
    args = parser.parse_args()
    os.chdir(ROOT)
    work = ROOT / "benchmarks" / "work" / "tiny_recipe"
    cfg = load_config(ROOT / RECIPE)
    data = Path(cfg.data.path) if cfg.data.path else Path(cfg.data.synth.out) / "specimens.h5"
    summary, paper = _train_and_eval(work, data, None)
    seeds = [cfg.train.seed, *args.extra_seeds]
    papers = [paper] + [_train_and_eval(work, data, s)[1] for s in args.extra_seeds]
    base = baselines(data)

    def row(block: dict) -> list[float]:
        return [block["accuracy"][r]["top1"] for r in RANKS]

    rows = {
        "DT clean": row(paper["DT"]["clean"]),
        "DT paper": row(paper["DT"]["noisy_d"]),
        "IT clean": row(paper["IT"]["clean"]),
        "alignment best hit, clean": row(base["alignment|clean"]),
        "alignment best hit, paper": row(base["alignment|noisy_d"]),
        "k-mer best hit, clean": row(base["k-mer|clean"]),
        "k-mer best hit, paper": row(base["k-mer|noisy_d"]),
    }
    # Each rank's Top-1 is over the specimens named at it; records named only to order count at
    # order alone, so "order below family" is read on the specimens named at every rank.
    full = {
        name: paper[setting][cond].get("fully_labelled")
        for name, (setting, cond) in {
            "IT clean": ("IT", "clean"),
            "DT paper": ("DT", "noisy_d"),
        }.items()
    }
    minutes = summary["seconds"] / 60
    lines = [
        "# The tiny CLIBD recipe as a user runs it (test split)",
        "",
        f"`hir-edge train --config {RECIPE}` ({summary['steps']} steps, "
        f"{summary['epochs_done']} epochs) trained in {minutes:.1f} min on this machine "
        f"({summary['samples_per_second']:.1f} samples/s, peak RSS "
        f"{summary['peak_rss_mb']:.0f} MB, {summary['device']}, "
        f"{summary.get('precision', 'fp32')}; the run's own summary.json: two "
        "heavy jobs at once on 2 cores run each about 4x slower); then "
        "`hir-edge eval --preset paper` on the test split (`paper`: p_sub 0.03, p_N 0.03, "
        "p_indel 0.01, dropout 0.10, truncation 0.10, seed 0). The best hits ask the same test "
        "reads against the training barcodes. Top-1 %.",
        "",
        "| Method | Order | Family | Genus | Species | Global |",
        "|---|---|---|---|---|---|",
        *(
            f"| {name} | " + " | ".join(f"{v:.1f}" for v in vals) + " |"
            for name, vals in rows.items()
        ),
    ]
    counts = paper["IT"]["clean"]["counts"]
    if all(full.values()):
        n = full["IT clean"]["count"]
        lines += [
            "",
            f"Each rank's Top-1 is over the test specimens named at that rank (IT: order "
            f"{counts['order']}, family {counts['family']}, species {counts['species']}). On the "
            f"{n} named at every rank, Top-1 %:",
            "",
            "| Method | Order | Family | Genus | Species |",
            "|---|---|---|---|---|",
            *(
                f"| {name} | "
                + " | ".join(f"{block['accuracy'][r]['top1']:.1f}" for r in RANKS[:-1])
                + " |"
                for name, block in full.items()
            ),
        ]
    seeded = order_vs_family(papers) if len(papers) > 1 else None
    if seeded:
        lines += [
            "",
            f"IT order against family on those specimens, training seeds {seeds} (`--extra-seeds`"
            f"), family → order: {seeded['claim']}. Per seed, order "
            + " / ".join(f"{v:.1f}" for v in seeded["order"])
            + ", family "
            + " / ".join(f"{v:.1f}" for v in seeded["family"])
            + ".",
        ]
    text = "\n".join(lines) + "\n"
    data_out = {
        "train": summary,
        "top1": {k: dict(zip(RANKS, v)) for k, v in rows.items()},
        "fully_labelled": full,
        "order_vs_family_by_seed": None if seeded is None else {"seeds": seeds, **seeded},
    }
    write_results(ROOT / "benchmarks" / "results" / "tiny_recipe", text, data_out)


if __name__ == "__main__":
    main()
