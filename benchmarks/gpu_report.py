"""Tables of the GPU check (benchmarks/gpu_check.sh): training runs, CUDA evaluation, CUDA bench."""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path


def _training(runs: list[Path]) -> tuple[list[str], list[dict]]:
    rows = [json.loads((run / "summary.json").read_text()) for run in runs]
    lines = [
        "## Training (bf16 autocast, preset 'small', generated data, global batch 64)",
        "",
        "| run | processes | steps | wall s | samples/s | peak GPU MB (per process) | "
        "peak RSS MB | loss first → last epoch |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run, row in zip(runs, rows):
        lines.append(
            f"| {run.name} | {row['world_size']} | {row['steps']} | {row['seconds']:.0f} | "
            f"{row['samples_per_second']:.1f} | {row['peak_gpu_mb'] or 0:.0f} | "
            f"{row['peak_rss_mb']:.0f} | {row['first_epoch_loss']:.3f} → "
            f"{row['last_epoch_loss']:.3f} |"
        )
    return lines, rows


def _evaluation(folder: Path, seconds: float) -> tuple[list[str], dict]:
    results = json.loads((folder / "results.json").read_text())
    paper = results["paper"]
    lines = [
        "",
        f"## CUDA evaluation (paper protocol, test split; {seconds:.0f} s for every "
        "setting and condition)",
        "",
    ]
    columns = list(dict.fromkeys(c for conditions in paper.values() for c in conditions))
    lines += ["| setting | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for setting, conditions in paper.items():
        cells = [
            f"{conditions[c]['accuracy']['global']['top1']:.1f}" if c in conditions else "–"
            for c in columns
        ]
        lines.append(f"| {setting} Global Top-1 | " + " | ".join(cells) + " |")
    return lines, {
        "seconds": seconds,
        "paper_global_top1": {
            s: {c: v["accuracy"]["global"]["top1"] for c, v in conds.items()}
            for s, conds in paper.items()
        },
    }


def _bench(path: Path) -> tuple[list[str], list[dict]]:
    rows = json.loads(path.read_text())["rows"]
    lines = [
        "",
        "## CUDA inference (`hir-edge bench RUN/best --device cuda`, torch fp32)",
        "",
        "| backend | part | batch | ms/batch | ms/specimen | specimens/s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['backend']} | {r['part']} | {r['batch']} | {r['ms_per_batch']:.2f} | "
            f"{r['ms_per_specimen']:.3f} | {r['specimens_per_second']:.0f} |"
        )
    return lines, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--bench", type=Path, default=None)
    parser.add_argument("--eval", type=Path, default=None)
    parser.add_argument("--eval-seconds", type=float, default=0.0)
    parser.add_argument("--identify", type=Path, default=None)
    args = parser.parse_args()
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    lines = [
        "# GPU check (benchmarks/gpu_check.sh)",
        "",
        f"GPU: {gpu} × {torch.cuda.device_count()}; torch {torch.__version__}; "
        f"host {platform.node()}",
        "",
    ]
    train_lines, train_rows = _training(args.runs)
    lines += train_lines
    record: dict = {"gpu": gpu, "torch": torch.__version__, "runs": train_rows}
    if args.eval:
        more, record["eval"] = _evaluation(args.eval, args.eval_seconds)
        lines += more
    if args.bench:
        more, record["bench"] = _bench(args.bench)
        lines += more
    if args.identify:
        rows = args.identify.read_text().splitlines()
        lines += ["", f"## identify --backend torch --device cuda ({len(rows) - 1} specimens)", ""]
        lines += ["```", *rows, "```"]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.md").write_text(text)
    (args.out / "gpu_check.json").write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
