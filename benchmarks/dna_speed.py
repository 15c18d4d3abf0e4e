"""Where a read's time goes in the alignment evidence, and how fast it runs.

    python benchmarks/dna_speed.py     # about 2 minutes on 2 cores
    python benchmarks/dna_speed.py --bundle benchmarks/work/bold-edge/bold100.bundle

Real BOLD barcodes (bold_coi_100sp.tsv): the first 80% of each species' records are the
library, the rest are the reads, clean, `paper`-degraded and 150-bp fragments. On one core, per read:

* scoring the k-mer shortlist (12 references, and 48 for a far read) with Biopython's aligner
  and with Opal's SIMD aligner (pyopal) — the two give identical scores;
* the best hit's traceback, which gives the counts by codon position: Biopython's full
  dynamic programme, Opal's (SIMD), and as ``identify`` takes it (the read's diagonal when that
  is an optimal alignment; else Biopython's, piece by piece between anchors of long exact
  matches when the pieces reach the optimum, over the whole read otherwise), with how many of
  the alignments each gives differ from Biopython's (equal scores, other gap placements: other
  counts);
* the whole search (shortlist, scores, traceback, the wider search for far reads) as
  ``identify`` runs it, in reads per second;
* the plain best hits it is compared with: k-mer cosine and edlib (when installed).

With ``--bundle`` (the real-DNA bundle of build_bold_bundle.sh, asked with its
training records as the library, as identify_bold.py asks it): whole ``identify`` evidence and
answers on 2 cores, reads per second by read set: in one process (with the share of reads the DNA
encoder ran on), the same with the encoder run on every read, and in two worker processes
identifying whole batches (``identify --workers 2``), with whether the answers are the same.

Writes benchmarks/results/dna_speed.md and .json.
"""

from __future__ import annotations

import csv
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
REPEATS = 3  # whole-identify speeds are the median of this many runs
BARCODES = ROOT.parent / "shared" / "data" / "bold_coi" / "bold_coi_100sp.tsv"


def load() -> tuple[list[str], list[str], list[str]]:
    from hir_edge.dna.qc import clean_read

    by_species: dict[str, list[str]] = {}
    with BARCODES.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            try:
                seq = clean_read(row["nucleotides"])[0]
            except ValueError:
                continue
            by_species.setdefault(row["species_name"], []).append(seq)
    library, species, reads = [], [], []
    for name, seqs in sorted(by_species.items()):
        cut = max(1, int(0.8 * len(seqs)))
        library += seqs[:cut]
        species += [name] * cut
        reads += seqs[cut:]
    return library, species, reads


def opal_blocks(result) -> tuple[list, list]:
    """Gapless blocks of an Opal full alignment (M/X: a column of both; D: a read base against
    a gap; I: a reference base against a gap; ends inclusive), as Biopython's ``aligned``."""
    read_blocks, ref_blocks = [], []
    qi, ti, start = result.query_start, result.target_start, None
    for op in result.alignment + "E":
        if op in "MX":
            start = start or (qi, ti)
            qi, ti = qi + 1, ti + 1
            continue
        if start is not None:
            read_blocks.append((start[0], qi))
            ref_blocks.append((start[1], ti))
            start = None
        qi, ti = qi + (op == "D"), ti + (op == "I")
    return read_blocks, ref_blocks


def same_blocks(a, b) -> bool:
    return all(
        np.array_equal(np.asarray(x).reshape(-1, 2), np.asarray(y).reshape(-1, 2))
        for x, y in zip(a, b)
    )


def per_read_ms(fn, items, repeat: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        for item in items:
            fn(item)
    return 1000 * (time.perf_counter() - start) / (repeat * len(items))


from results_file import write_results  # noqa: E402  (benchmarks/ is on sys.path)


def cold_start(bundle: Path, data: Path, runs: int = 5) -> dict[str, float]:
    """Median seconds of the whole command for one held-out read and one real photo (a
    BIOSCAN Diptera), from a fresh Python each time (after one untimed run): with the
    library's k-mer index kept by an earlier run (``--cache``, the default) and counted
    afresh (``HIR_EDGE_CACHE=off``), runs of the two interleaved."""
    import subprocess
    import tempfile

    from hir_edge.data.hdf5 import SpecimenStore

    test = SpecimenStore(data, "test")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        name = str(test.processids()[0])
        (work / "one.fa").write_text(f">{name}\n{test.barcodes()[0]}\n")
        photo = ROOT.parent / "shared" / "data" / "bioscan_photos" / "Diptera.jpg"
        (work / f"{name}.jpg").write_bytes(photo.read_bytes())
        cmd = [sys.executable, "-m", "hir_edge", "identify", "--bundle", str(bundle)]
        cmd += ["--fasta", str(work / "one.fa"), "--image", str(work / f"{name}.jpg")]
        cmd += ["-q", "-o", str(work / "out.tsv"), "--force"]
        # as a user's repeated command: Python's bytecode cache on (this machine's shells turn
        # it off), written by one run that is not timed, which also keeps the k-mer index
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        envs = {"kept": {**env, "HIR_EDGE_CACHE": str(work / "cache")}}
        envs["counted"] = {**env, "HIR_EDGE_CACHE": "off"}
        subprocess.run(cmd, check=True, capture_output=True, env=envs["kept"])
        seconds: dict[str, list[float]] = {key: [] for key in envs}
        for _ in range(runs):
            for key, run_env in envs.items():
                start = time.perf_counter()
                subprocess.run(cmd, check=True, capture_output=True, env=run_env)
                seconds[key].append(time.perf_counter() - start)
    return {key: float(np.median(values)) for key, values in seconds.items()}


def identify_speed(bundle_path: Path, data: Path, per_set: int = 600) -> dict:
    """Reads per second through ``identify``'s batches of 32: in this process (one worker),
    and in two worker processes that identify whole batches (``--workers 2``, as the command
    runs them: runtime/parallel.py), by read set."""
    import identify_bold as ib

    from hir_edge.data.hdf5 import SpecimenStore
    from hir_edge.degrade import degrade_dna_seeded, get_preset
    from hir_edge.dna.align import min_called_bases
    from hir_edge.runtime.backends import select_backend
    from hir_edge.runtime.bundle import open_bundle
    from hir_edge.runtime.identifier import Identifier
    from hir_edge.runtime.parallel import BatchPool, WorkerSettings
    from hir_edge.runtime.schema import Specimen

    bundle = open_bundle(bundle_path)
    train = set(SpecimenStore(data, "train").processids())
    keep = np.array([str(i) in train for i in bundle.references.ids])
    bundle.references = bundle.references.subset(keep)
    backend = select_backend(bundle)
    test = SpecimenStore(data, "test").barcodes()[:per_set]
    clean = [ib.field_read(r)[0] for r in test]
    absent = ib.open_world_sets(ib.MEASURED)[1]["absent species"][:per_set]
    needed = min_called_bases(6)
    sets = {
        "known, clean": clean,
        "known, paper": [
            degrade_dna_seeded(r, get_preset("paper").dna, 0, i) for i, r in enumerate(clean)
        ],
        "known, 150 bp": ib.fragments(test, 150, 0, needed),
        "absent species, clean": [ib.field_read(r["nucleotides"])[0] for r in absent],
    }
    out: dict = {
        "library": int(keep.sum()),
        "backend": backend.describe(),
        "cold_start_s": cold_start(bundle_path, data),
        "reads_per_set": {name: len(reads) for name, reads in sets.items()},
    }
    warm = [[Specimen("warm", *ib.field_read(test[0]))] * 32] * 4
    identifier = Identifier(bundle, backend)
    every_read = Identifier(bundle, backend, encode_every_read=True)
    settings = WorkerSettings(bundle=bundle_path, keep_references=tuple(bool(k) for k in keep))
    pool = BatchPool(settings, 2)
    runners = {
        "workers_1": lambda batches: [identifier.identify(b) for b in batches],
        "every_read": lambda batches: [every_read.identify(b) for b in batches],
        "workers_2": lambda batches: list(pool.map(batches)),
    }
    encoded = [0]  # reads the DNA encoder ran on, in this process
    embed_dna = backend.embed_dna

    def counted(ids, mask):
        encoded[0] += len(ids)
        return embed_dna(ids, mask)

    backend.embed_dna = counted
    same = True
    for key, runner in runners.items():
        runner(warm)  # start-up: sessions, worker processes
        for name, reads in sets.items():
            specimens = [Specimen(str(i), *ib.field_read(r)) for i, r in enumerate(reads)]
            batches = [specimens[at : at + 32] for at in range(0, len(specimens), 32)]
            rates = []
            for _ in range(REPEATS):  # this machine's speed swings from run to run
                encoded[0] = 0
                start = time.perf_counter()
                answers = runner(batches)
                rates.append(len(specimens) / (time.perf_counter() - start))
            rows = [r.to_dict() for batch in answers for r in batch]
            out.setdefault(name, {})[key] = float(np.median(rates))
            if key == "workers_1":
                out[name]["encoded_%"] = 100.0 * encoded[0] / len(specimens)
            out[name].setdefault("answers", rows)
            same &= out[name]["answers"] == rows
            print(f"identify {name}, {key}: {out[name][key]:.0f} reads/s", file=sys.stderr)
    pool.close()
    identifier.close()
    for name in sets:
        del out[name]["answers"]
    out["same_answers"] = same
    return out


def main() -> None:
    import argparse

    from hir_edge.degrade import degrade_dna_seeded, fragment_seeded, get_preset
    from hir_edge.dna.align import ReferenceAligner, biopython_aligner, min_called_bases
    from hir_edge.dna.pairwise import CandidateScorer, _ungapped

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, default=None)
    parser.add_argument(
        "--data", type=Path, default=ROOT / ".cache/hir-edge/synth-bold100/specimens.h5"
    )
    args = parser.parse_args()

    library, species, reads = load()
    noise = get_preset("paper").dna
    sets = {
        "clean": reads[:300],
        "paper": [degrade_dna_seeded(r, noise, 0, i) for i, r in enumerate(reads[:300])],
        "150 bp": [
            fragment_seeded(r, 150, 0, i, min_called_bases(6)) for i, r in enumerate(reads[:300])
        ],
    }
    aligner = ReferenceAligner(library, k=6, shortlist=12, species=species, workers=1)
    biopython = CandidateScorer(library, biopython_aligner)
    biopython._opal = None
    scorer = aligner._scorer

    def opal_full(read: str, j: int):
        subset = scorer._database.extract([j])
        return next(iter(scorer._opal.align(read, subset, mode="full", algorithm="ov")))

    rows = {}
    for name, batch in sets.items():
        clean = [r.replace("-", "") for r in batch]
        top, _ = aligner._index.query(clean, 48)
        sample = list(zip(clean[:60], top[:60]))
        row = {}
        for n in (12, 48):
            row[f"bio_{n}"] = per_read_ms(lambda x, n=n: biopython.scores(x[0], x[1][:n]), sample)
            row[f"opal_{n}"] = per_read_ms(
                lambda x, n=n: aligner._scorer.scores(x[0], x[1][:n]), sample, repeat=5
            )
            same = all(
                np.array_equal(biopython.scores(r, c[:n]), aligner._scorer.scores(r, c[:n]))
                for r, c in sample[:20]
            )
            row[f"same_{n}"] = same
        best = []  # (read, best candidate, its score) of the 12 shortlisted
        for r, c in zip(clean, top):
            scores = scorer.scores(r, c[:12])
            best.append((r, int(c[int(np.argmax(scores))]), float(scores.max())))
        bio = [aligner._aligner.align(r, library[j])[0].aligned for r, j, _ in best]
        opal = [opal_blocks(opal_full(r, j)) for r, j, _ in best]
        ours = [scorer.blocks(r, j, score) for r, j, score in best]
        row["traceback_biopython"] = per_read_ms(
            lambda x: aligner._aligner.align(x[0], library[x[1]])[0].aligned, best
        )
        row["traceback_opal"] = per_read_ms(lambda x: opal_full(x[0], x[1]), best)
        row["traceback_identify"] = per_read_ms(lambda x: scorer.blocks(*x), best)
        diagonal = [_ungapped(r, library[j], score) is not None for r, j, score in best]
        row["diagonal_%"] = 100.0 * np.mean(diagonal)
        off = [x for x, d in zip(best, diagonal) if not d]
        anchored = scorer._anchored
        row["anchored_%"] = (
            100.0 * np.mean([anchored.aligned(r, library[j], s) is not None for r, j, s in off])
            if off
            else float("nan")
        )
        row["opal_differs"] = sum(not same_blocks(a, b) for a, b in zip(bio, opal))
        row["identify_differs"] = sum(not same_blocks(a, b) for a, b in zip(bio, ours))
        row["traceback_reads"] = len(best)
        row["traceback"] = per_read_ms(lambda x: aligner._hit(*x), best)
        start = time.perf_counter()
        aligner.search(clean)
        row["search_per_s"] = len(clean) / (time.perf_counter() - start)
        start = time.perf_counter()
        aligner._index.query(clean, 1)
        row["kmer_per_s"] = len(clean) / (time.perf_counter() - start)
        try:
            import edlib

            start = time.perf_counter()
            for r in clean[:60]:
                for ref in library:
                    edlib.align(r, ref, mode="HW", task="distance")
            row["edlib_per_s"] = 60 / (time.perf_counter() - start)
        except ImportError:
            row["edlib_per_s"] = None
        rows[name] = row
        print(name, row, file=sys.stderr, flush=True)
    lines = [
        "# DNA alignment speed (one core; real BOLD barcodes, 100 species)",
        "",
        f"Library: {len(library):,} barcodes (80% of each species' records); reads: 300 of the "
        "rest, clean, `paper`-degraded and cut to 150-bp fragments. Milliseconds per read for the parts; reads per "
        "second for whole searches.",
        "",
        "| Reads | score 12 refs: Biopython | Opal | score 48: Biopython | Opal | same scores "
        "| best-hit counts (traceback and counting) | search, reads/s | k-mer best hit, "
        "reads/s | edlib best hit (whole library), reads/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        edlib_rate = "–" if r["edlib_per_s"] is None else f"{r['edlib_per_s']:.1f}"
        lines.append(
            f"| {name} | {r['bio_12']:.2f} | {r['opal_12']:.2f} | {r['bio_48']:.2f} | "
            f"{r['opal_48']:.2f} | {'yes' if r['same_12'] and r['same_48'] else 'NO'} | "
            f"{r['traceback']:.2f} | {r['search_per_s']:.0f} | {r['kmer_per_s']:.0f} | "
            f"{edlib_rate} |"
        )
    lines += [
        "",
        "The best hit's traceback alone (ms per read), and how many of its alignments differ from "
        "Biopython's: an alignment of equal score with its gaps elsewhere gives other counts "
        "by codon position, so other divergence estimates and, for a few reads, other answers.",
        "",
        "| Reads | Biopython | Opal (SIMD) | differs | as identify takes it | on the diagonal "
        "| the rest: between anchors | differs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        n = r["traceback_reads"]
        lines.append(
            f"| {name} | {r['traceback_biopython']:.2f} | {r['traceback_opal']:.2f} | "
            f"{r['opal_differs']} of {n} | {r['traceback_identify']:.2f} | "
            f"{r['diagonal_%']:.0f}% | {r['anchored_%']:.0f}% | {r['identify_differs']} of {n} |"
        )
    if args.bundle is not None:
        speed = identify_speed(args.bundle, args.data)
        rows["identify"] = speed
        per_set = "; ".join(f"{name} {n}" for name, n in speed["reads_per_set"].items())
        lines += [
            "",
            f"Whole `identify` evidence and answers, 2 cores, batches of 32: reads per second, "
            f"the median of {REPEATS} runs "
            f"(bundle {args.bundle.name}, {speed['backend']}; library: its "
            f"{speed['library']:,} training records; reads: {per_set}). Cold start of the "
            "command for one read and one photo (median of 5): "
            f"{speed['cold_start_s']['kept']:.2f} s with the library's k-mer index kept by an "
            f"earlier run (the default), {speed['cold_start_s']['counted']:.2f} s counting it "
            "(the first run, or `HIR_EDGE_CACHE=off`). "
            "One process (`--workers 1`; ONNX Runtime and BLAS may use both cores), the same "
            "with the DNA encoder run on every read (also those whose barcode votes settle every "
            "rank whatever the encoder says: runtime/settled.py), and two worker processes "
            "identifying whole batches (`--workers 2`): answers "
            f"{'identical' if speed['same_answers'] else 'NOT identical'} in all three.",
            "",
            "| Reads | DNA encoder run for (% of reads) | 1 process | 1 process, encoder on "
            "every read | 2 worker processes |",
            "|---|---|---|---|---|",
        ]
        for name, rate in speed.items():
            if isinstance(rate, dict) and name not in ("cold_start_s", "reads_per_set"):
                lines.append(
                    f"| {name} | {rate['encoded_%']:.1f} | {rate['workers_1']:.0f} | "
                    f"{rate['every_read']:.0f} | {rate['workers_2']:.0f} |"
                )
    text = "\n".join(lines) + "\n"
    out = ROOT / "benchmarks" / "results" / "dna_speed"
    write_results(out, text, rows)


if __name__ == "__main__":
    main()
