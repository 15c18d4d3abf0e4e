"""Hostile inputs through the real command: what each one gets (exit code and stderr's last line).

    python benchmarks/probes.py      # about a minute on 2 cores (the shipped demo bundle)

Each probe runs ``hir-edge`` in a fresh process, as a user would, with good records beside the
bad one where that applies, and records the exit code, whether a traceback appeared, how many
rows were answered and the last line on stderr. Writes benchmarks/results/probes.md and .json.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
READS = (EXAMPLES / "reads.fa").read_text()
PHOTO = sorted((EXAMPLES / "photos").iterdir())[0]


def hir_edge(args: list[str], work: Path, stdin: bytes | None = None) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "hir_edge", *args],
        cwd=work,
        input=stdin,
        capture_output=True,
        timeout=600,
    )
    stderr = done.stderr.decode().replace(f"{work}/", "")
    return outcome(done.returncode, done.stdout.decode(errors="replace"), stderr)


def outcome(code: int, stdout: str, stderr: str) -> dict:
    lines = [line for line in stderr.splitlines() if line.strip()]
    rows = [line for line in stdout.splitlines()[1:] if line.strip()]
    return {
        "exit": code,
        "traceback": "Traceback" in stderr,
        "rows": len(rows),
        "message": next((line for line in lines if line.startswith(("error", "skipped"))), "")
        or (lines[-1] if lines else ""),
    }


def probes(work: Path) -> dict:
    out: dict = {}
    identify = ["identify", "-q", "--format", "tsv"]
    # --- reads
    (work / "mixed.fa").write_text(READS + ">contig\n" + "ACGT" * 2600 + "\n")
    out["a 10,400-base 'read' beside 4 good ones"] = hir_edge(
        [*identify, "--fasta", "mixed.fa"], work
    )
    (work / "latin1.fa").write_bytes(READS.encode() + b">caf\xe9\nACGTACGTAC\n")
    out["a header that is not UTF-8 after 4 good reads"] = hir_edge(
        [*identify, "--fasta", "latin1.fa"], work
    )
    (work / "protein.fa").write_text(READS + ">prot\nMKVLAAGIVGLLLAEEQQ\n")
    out["a protein record beside 4 reads"] = hir_edge([*identify, "--fasta", "protein.fa"], work)
    (work / "binary.fa").write_bytes(b"\x00\x01\x02" * 100)
    out["a binary file as reads"] = hir_edge([*identify, "--fasta", "binary.fa"], work)
    (work / "cut.fa.gz").write_bytes(gzip.compress(READS.encode())[:-30])
    out["a truncated gzip"] = hir_edge([*identify, "--fasta", "cut.fa.gz"], work)
    out["reads on standard input (--fasta -)"] = hir_edge(
        [*identify, "--fasta", "-"], work, stdin=READS.encode()
    )
    rng = np.random.default_rng(0)
    (work / "random.fa").write_text(
        "".join(f">random{i}\n{''.join(rng.choice(list('ACGT'), 650))}\n" for i in range(3))
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hir_edge",
            "identify",
            "-q",
            "--format",
            "json",
            "--fasta",
            "random.fa",
        ],
        cwd=work,
        capture_output=True,
        text=True,
    )
    answers = json.loads(done.stdout)
    out["three random 650-bp sequences"] = {
        "exit": done.returncode,
        "traceback": "Traceback" in done.stderr,
        "rows": len(answers),
        "message": "; ".join(
            f"{a['id']}: {a['assigned']['rank'] or 'no taxon'} ({a['warnings'][-1][:60]})"
            for a in answers
        ),
    }
    # --- photos
    (work / "photos").mkdir()
    shutil.copy(PHOTO, work / "photos" / "good.jpg")
    (work / "photos" / "cut.jpg").write_bytes(PHOTO.read_bytes()[:300])
    (work / "photos" / "reads.png").write_text(READS)
    out["a JPEG cut inside its headers, a text file named .png, 1 good photo"] = hir_edge(
        [*identify, "--image", "photos"], work
    )
    # --- outputs
    (work / "exists.tsv").write_text("the user's results\n")
    out["-o onto an existing file, no --force"] = hir_edge(
        [*identify, "--fasta", str(EXAMPLES / "reads.fa"), "-o", "exists.tsv"], work
    )
    out["-o /dev/null"] = hir_edge(
        [*identify, "--fasta", str(EXAMPLES / "reads.fa"), "-o", "/dev/null"], work
    )
    (work / "a_file").write_text("")
    out["-o into a path under a file (the system refuses)"] = hir_edge(
        [*identify, "--fasta", str(EXAMPLES / "reads.fa"), "-o", "a_file/out.tsv"], work
    )
    out["SIGTERM mid-run (6,000 reads, -o out.tsv)"] = terminated(work)
    for leftover in ("out.tsv", "out.tsv.partial"):
        (work / leftover).unlink(missing_ok=True)
    out["Ctrl-C mid-run, to the process group (6,000 reads, -o out.tsv)"] = terminated(
        work, group_interrupt=True
    )
    # --- bundles
    demo = ROOT / "hir_edge" / "bundles" / "demo"
    for name, edit in (
        ("a manifest without 'graphs'", lambda m: m.pop("graphs")),
        ("taxonomy.json dropped from the checked files", lambda m: m["files"].pop("taxonomy.json")),
    ):
        bundle = work / f"bundle-{len(out)}"
        shutil.copytree(demo, bundle)
        manifest = json.loads((bundle / "manifest.json").read_text())
        edit(manifest)
        (bundle / "manifest.json").write_text(json.dumps(manifest))
        out[name] = hir_edge(
            [*identify, "--bundle", str(bundle), "--fasta", str(EXAMPLES / "reads.fa")], work
        )
    edited = work / "bundle-edited"
    shutil.copytree(demo, edited)
    (edited / "taxonomy.json").write_text(
        (edited / "taxonomy.json").read_text().replace("Demo", "Fake")
    )
    out["an edited taxonomy.json (checksum)"] = hir_edge(
        [*identify, "--bundle", str(edited), "--fasta", str(EXAMPLES / "reads.fa")], work
    )
    return out


def terminated(work: Path, group_interrupt: bool = False) -> dict:
    """identify on 6,000 reads, SIGTERM after the first rows (or, ``group_interrupt``, Ctrl-C:
    SIGINT to the whole process group, worker processes included): the finished rows are
    kept."""
    (work / "many.fa").write_text(
        READS.replace(">", ">x") * 1 + "".join(READS.replace(">", f">r{i}_") for i in range(1500))
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hir_edge",
            "identify",
            "-q",
            "--batch-size",
            "8",
            "--fasta",
            "many.fa",
            "-o",
            "out.tsv",
        ],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=group_interrupt,  # its own process group, as a terminal's job
    )
    partial = work / "out.tsv.partial"
    time.sleep(4.0)
    if group_interrupt:
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    result = outcome(proc.returncode, stdout.decode(), stderr.decode())
    kept = partial.read_text().splitlines()[1:] if partial.exists() else []
    leftovers = [p.name for p in work.iterdir() if p.name.endswith(".tmp")]
    result["rows"] = len(kept)
    result["message"] = (
        f"{len(kept)} finished rows kept in out.tsv.partial; out.tsv "
        f"{'written' if (work / 'out.tsv').exists() else 'not written'}; "
        f"temporary files left: {len(leftovers)}; " + result["message"]
    )
    return result


from results_file import write_results  # noqa: E402  (benchmarks/ is on sys.path)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="hir-edge-probes-") as tmp:
        work = Path(tmp)
        env_root = str(ROOT)
        os.environ["PYTHONPATH"] = env_root + os.pathsep + os.environ.get("PYTHONPATH", "")
        results = probes(work)
    lines = [
        "# Hostile inputs through `hir-edge identify` (the shipped demo bundle)",
        "",
        "Each probe runs the command in a fresh process; good records sit beside the bad one "
        "where that applies. 'rows': specimens answered (for SIGTERM and Ctrl-C: rows kept).",
        "",
        "| Probe | exit | traceback | rows | stderr (the line that matters) |",
        "|---|---|---|---|---|",
    ]
    for probe, r in results.items():
        message = r["message"].replace("|", "\\|").replace(str(ROOT), ".")
        message = message if len(message) < 240 else message[:237] + "..."
        lines.append(
            f"| {probe} | {r['exit']} | {'yes' if r['traceback'] else 'no'} | {r['rows']} | "
            f"{message} |"
        )
    text = "\n".join(lines) + "\n"
    out = ROOT / "benchmarks" / "results" / "probes"
    write_results(out, text, results)


if __name__ == "__main__":
    main()
