"""The tiny CLIBD recipe as a user runs it: train, then evaluate on the test split.

    python benchmarks/tiny_recipe.py    # about 10 minutes on 2 CPU cores, then under 1 for the eval

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


def main() -> None:
    from reproduce import baselines

    from hir_edge.train.config import load_config

    os.chdir(ROOT)
    work = ROOT / "benchmarks" / "work" / "tiny_recipe"
    run, report = work / "run", work / "eval"
    if not (run / "summary.json").is_file():
        _run("train", "--config", RECIPE, "-o", str(run), "--force")
    cfg = load_config(ROOT / RECIPE)
    data = Path(cfg.data.path) if cfg.data.path else Path(cfg.data.synth.out) / "specimens.h5"
    _run(
        *("eval", "--checkpoint", str(run / "best"), "--data", str(data), "--preset", "paper"),
        *("-o", str(report), "--force", "-q"),
    )
    summary = json.loads((run / "summary.json").read_text())
    paper = json.loads((report / "results.json").read_text())["paper"]
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
    text = "\n".join(lines) + "\n"
    data_out = {
        "train": summary,
        "top1": {k: dict(zip(RANKS, v)) for k, v in rows.items()},
        "fully_labelled": full,
    }
    write_results(ROOT / "benchmarks" / "results" / "tiny_recipe", text, data_out)


if __name__ == "__main__":
    main()
