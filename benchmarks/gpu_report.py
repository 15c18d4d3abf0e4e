"""Table of GPU training runs (from each run's summary.json) for benchmarks/gpu_check.sh."""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    rows = [json.loads((run / "summary.json").read_text()) for run in args.runs]
    lines = [
        "# GPU check (bf16, preset 'small', generated data)",
        "",
        f"GPU: {gpu}; torch {torch.__version__}; host {platform.node()}",
        "",
        "| run | processes | steps | samples/s | peak GPU MB (per process) | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for run, row in zip(args.runs, rows):
        lines.append(
            f"| {run.name} | {row['world_size']} | {row['steps']} | "
            f"{row['samples_per_second']:.1f} | {row['peak_gpu_mb'] or 0:.0f} | "
            f"{row['peak_rss_mb']:.0f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.md").write_text(text)
    (args.out / "gpu_check.json").write_text(json.dumps({"gpu": gpu, "runs": rows}, indent=1))


if __name__ == "__main__":
    main()
