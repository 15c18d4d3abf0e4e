"""Does `identify` stream? Peak memory and throughput as the number of reads grows.

    python benchmarks/streaming.py                      # 10^3, 10^4, 10^5 reads
    python benchmarks/streaming.py --sizes 1000000      # 10^6 reads (ten 10^5 runs' time)
    python benchmarks/streaming.py --bundle benchmarks/work/bold-edge/bold100.bundle \
        --sizes 10000 1000000 --out benchmarks/results/streaming_bold

Reads are copies of the bundle's own reference barcodes (the shipped demo bundle's unless
``--bundle``) with `paper` noise (a different seed for each copy), written to one FASTA file;
the command is the README's (`hir-edge identify --fasta reads.fa -o out.tsv`, default workers).
For each size: wall time, reads per second, the peak RSS of the largest process (the command
or one of its workers, from the operating system's own accounting) and the rows written.

Writes benchmarks/results/streaming.md and .json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from results_file import write_results  # noqa: E402

# Run in a fresh interpreter per size: the largest descendant's peak RSS, in MB.
MEASURE = (
    "import json, resource, subprocess, sys, time; t = time.perf_counter(); "
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
    "print(json.dumps({'code': code, 'seconds': time.perf_counter() - t, "
    "'peak_rss_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))"
)


def write_reads(path: Path, count: int, bundle: Path) -> None:
    """``count`` degraded copies of the bundle's reference barcodes, streamed to FASTA."""
    from hir_edge.degrade import degrade_dna_seeded, get_preset
    from hir_edge.dna.io import write_fasta

    with np.load(bundle / "references.npz") as refs:
        barcodes = [b.decode("ascii") for b in refs["barcodes"] if len(b)]
    noise = get_preset("paper").dna
    reads = (
        (f"read{i}", degrade_dna_seeded(barcodes[i % len(barcodes)], noise, 1, i))
        for i in range(count)
    )
    write_fasta(reads, path, force=True)


def run(count: int, work: Path, bundle: Path) -> dict:
    reads = work / f"reads{count}.fa"
    write_reads(reads, count, bundle)
    out = work / f"out{count}.tsv"
    cmd = [sys.executable, "-m", "hir_edge", "identify", "--bundle", str(bundle)]
    cmd += ["--fasta", str(reads)]
    cmd += ["-o", str(out), "--format", "tsv", "-q", "--force"]
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True, check=True
    )
    row = json.loads(result.stdout.strip().splitlines()[-1])
    with out.open() as handle:
        row["rows_written"] = sum(1 for _ in handle) - 1  # the header
    row["reads"] = count
    row["reads_per_second"] = count / row["seconds"]
    reads.unlink()
    out.unlink()
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/streaming")
    parser.add_argument("--bundle", type=Path, default=None, help="default: the demo bundle")
    args = parser.parse_args()
    from hir_edge.dna.align import default_workers
    from hir_edge.runtime.bundle import default_bundle

    bundle = args.bundle or default_bundle()
    name = "Demo bundle (shipped)" if args.bundle is None else f"Bundle {args.bundle}"
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run(n, Path(tmp), bundle) for n in args.sizes]
    lines = [
        "# Streaming: `identify` memory and speed as the reads grow",
        "",
        f"{name}, `paper`-degraded copies of its reference barcodes, 2 cores, "
        f"default workers ({default_workers()} processes identifying batches, started by the "
        "command); peak RSS of the largest process (the command or a worker).",
        "",
        "| reads | wall s | reads/s | peak RSS MB | rows written | exit |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['reads']:,} | {r['seconds']:.1f} | {r['reads_per_second']:.0f} | "
            f"{r['peak_rss_mb']:.0f} | {r['rows_written']:,} | {r['code']} |"
        )
    write_results(args.out, "\n".join(lines) + "\n", rows)


if __name__ == "__main__":
    main()
