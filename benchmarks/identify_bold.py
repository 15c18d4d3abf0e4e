"""The real-DNA bundle in the field: `identify` against the alignment baseline biologists trust,
for reads of known species and of taxa the library lacks.

    python benchmarks/identify_bold.py --bundle OUT/bold100.bundle

Reads come from ../shared/data/bold_coi (real BOLD barcodes). The reference library of both
methods is the same: the training split of the bundle's data (the bundle ships every record;
the benchmark asks with the training records only, so the held-out reads are not their own
references). Read classes:

* known species: the held-out test reads of the 100 library species;
* absent species, genus present / absent genus, family present / absent family, order present:
  records of bold_coi_1826sp.tsv by what the library holds of their lineage, split in two
  halves by genus (by family for absent families): one half may calibrate the bundle's read
  placement as outgroups (``--write-outgroups``, build_bold_bundle.sh), the other is measured
  here — taxa no part of the bundle (training, calibration) has ever seen;

each clean, degraded (`paper`, `severe`) and cut to fragments (300, 150, 100 bp for known
species; 150 bp for the others). For each: the rank `identify` answers at, how often that answer
is right (precision at the assigned rank), the coverage per rank, the ECE of the stated
confidence, how many wrong answers came at ≥ 0.95, reads per second; the alignment best hit
(edlib, both strands) beside it; and the learned evidence alone (prompt ranking and reference
embeddings, no alignment).

Writes benchmarks/results/identify_bold.md and .json.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
RANKS = ("order", "family", "genus", "species")
CLASSES = ("absent species", "absent genus", "absent family")


def field_read(raw: str):
    from hir_edge.dna.qc import clean_read

    return clean_read(raw, orient=True)


def identify_reads(identifier, ids, reads, batch=32, pool=None):
    """Answers in batches of ``batch``, in this process or through ``pool`` (worker processes
    identifying whole batches, as ``identify --workers N`` runs them: the same answers)."""
    from hir_edge.runtime.schema import Specimen

    batches = []
    for start in range(0, len(reads), batch):
        specimens = []
        for j in range(start, min(start + batch, len(reads))):
            seq, qc = field_read(reads[j]) if reads[j] else (None, None)
            specimens.append(Specimen(ids[j], seq, qc))
        batches.append(specimens)
    answers = pool.map(batches) if pool is not None else map(identifier.identify, batches)
    return [result for part in answers for result in part]


def _labelled(value) -> bool:
    """A synth record labelled only to order or family has no genus or species to judge by."""
    return bool(value)


def score_answers(results, truths) -> dict:
    """Where each answer stops, whether it is right there, its confidence; and per rank the
    share of reads whose answer reaches that rank with the true taxon. Reads not labelled at
    a rank count for neither (an answer at such a rank cannot be judged)."""
    from hir_edge.runtime.scoring import expected_calibration_error

    n = len(results)
    at = dict.fromkeys([*RANKS, "none"], 0)
    right_at_rank = dict.fromkeys(RANKS, 0)
    labelled = dict.fromkeys(RANKS, 0)
    correct, confidence, novel = [], [], dict.fromkeys(RANKS, 0)
    top1 = named_wrong = species_labelled = 0
    for res, truth in zip(results, truths):
        lineage = res.assigned.get("lineage") or []
        rank = res.assigned.get("rank")
        at[rank or "none"] += 1
        for level, r in enumerate(RANKS):
            if _labelled(truth[level]):
                labelled[r] += 1
                right_at_rank[r] += level < len(lineage) and lineage[level] == truth[level]
        if rank is not None and _labelled(truth[RANKS.index(rank)]):
            level = RANKS.index(rank)
            correct.append(lineage[level] == truth[level] if level < len(lineage) else False)
            confidence.append(res.assigned["confidence"])
            named_wrong += rank == "species" and lineage[-1] != truth[3]
        if res.novel:
            novel[res.novel["rank"]] += 1
        if _labelled(truth[3]):
            species_labelled += 1
            top = res.ranks["species"][0]["taxon"] if res.ranks["species"] else None
            top1 += top == truth[3]
    correct_a, conf_a = np.array(correct, bool), np.array(confidence, float)
    answered = len(correct_a)
    return {
        "n": n,
        "labelled": labelled,
        "answered_at": at,
        "coverage_%": {r: 100.0 * sum(at[x] for x in RANKS[i:]) / n for i, r in enumerate(RANKS)},
        "precision_%": 100.0 * float(correct_a.mean()) if answered else None,
        "ece_%": 100.0 * expected_calibration_error(conf_a, correct_a) if answered else None,
        "wrong_at_0.95": int(((conf_a >= 0.95) & ~correct_a).sum()),
        "answer_right_%": {
            r: 100.0 * right_at_rank[r] / labelled[r] if labelled[r] else None for r in RANKS
        },
        "species_top1_%": 100.0 * top1 / species_labelled if species_labelled else None,
        "wrong_species_named_%": 100.0 * named_wrong / species_labelled
        if species_labelled
        else None,
        "novel_at": novel,
    }


def learned_scores(results, truths) -> dict:
    """The learned ranking alone: per rank, is its top taxon the true one (labelled reads)?"""
    out = {}
    for level, r in enumerate(RANKS):
        hits = [
            bool(res.ranks[r]) and res.ranks[r][0]["taxon"] == t[level]
            for res, t in zip(results, truths)
            if _labelled(t[level])
        ]
        out[r] = 100.0 * float(np.mean(hits)) if hits else None
    return out


def alignment_scores(index, taxonomy, ref_labels, reads, truths) -> dict:
    """The alignment best hit, named at every rank (both strands, as BLAST searches)."""
    from hir_edge.dna.qc import reverse_complement
    from hir_edge.evaluation.baselines import SPECIES_IDENTITY, alignment_predict

    clean = [field_read(r)[0] for r in reads]
    t = time.perf_counter()
    pred = alignment_predict(clean, index, ref_labels, top=1)
    other = alignment_predict([reverse_complement(r) for r in clean], index, ref_labels, top=1)
    seconds = time.perf_counter() - t
    better = other.best_score > pred.best_score
    pred.labels[better] = other.labels[better]
    pred.best_score[better] = other.best_score[better]
    right = dict.fromkeys(RANKS, 0)
    labelled = dict.fromkeys(RANKS, 0)
    named_wrong = 0
    for i, truth in enumerate(truths):
        for level, rank in enumerate(RANKS):
            if not _labelled(truth[level]):
                continue
            labelled[rank] += 1
            got = pred.labels[i, level]
            right[rank] += got >= 0 and taxonomy.name(level, int(got)) == truth[level]
        sp = pred.labels[i, 3]
        if (
            _labelled(truth[3])
            and pred.best_score[i] >= SPECIES_IDENTITY
            and sp >= 0
            and taxonomy.name(3, int(sp)) != truth[3]
        ):
            named_wrong += 1
    n = len(reads)
    return {
        "n": n,
        "best_hit_right_%": {
            r: 100.0 * right[r] / labelled[r] if labelled[r] else None for r in RANKS
        },
        "below_97%_identity_%": 100.0 * float((pred.best_score < SPECIES_IDENTITY).mean()),
        "wrong_species_named_at_97%_%": 100.0 * named_wrong / max(labelled["species"], 1),
        "reads_per_second": n / seconds if seconds else None,
    }


def kmer_rate(reads, refs) -> float:
    """k-mer cosine best hit (6-mers), reads per second: the fastest classical stand-in, on
    both cores."""
    from hir_edge.dna.kmers import KmerIndex

    index = KmerIndex(refs, 6, threads=0)
    t = time.perf_counter()
    index.query([field_read(r)[0] for r in reads], 1)
    return len(reads) / (time.perf_counter() - t)


def fragments(reads, length: int, seed: int, needed: int):
    """A random ``length``-bp window of each read, drawn again when it lies in a run of Ns."""
    from hir_edge.degrade import fragment_seeded

    return [fragment_seeded(field_read(r)[0], length, seed, i, needed) for i, r in enumerate(reads)]


MEASURED, CALIBRATION = 1, 0  # the halves of the taxa the library lacks


def half(record: dict, klass: str) -> int:
    """Which half a record of an absent taxon falls in: by its family for absent families and
    orders, else by its genus, so the measured taxa are never the calibration's."""
    key = (
        record["family_name"]
        if klass in ("absent family", "absent order")
        else record["genus_name"]
    )
    return zlib.crc32(key.encode()) % 2


def open_world_sets(which: int = MEASURED) -> tuple[list[str], dict[str, list[dict]]]:
    """The header of bold_coi_1826sp.tsv and its records by the rank of their lineage the
    library lacks (absent order too), in half ``which``."""
    with (SHARED / "bold_coi" / "bold_coi_100sp.tsv").open() as handle:
        lib = list(csv.DictReader(handle, delimiter="\t"))
    with (SHARED / "bold_coi" / "bold_coi_1826sp.tsv").open() as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        other = list(reader)
        header = list(reader.fieldnames or [])
    held = {
        rank: {r[f"{rank}_name"] for r in lib} for rank in ("order", "family", "genus", "species")
    }
    sets: dict[str, list[dict]] = {c: [] for c in (*CLASSES, "absent order")}
    for r in other:
        if r["species_name"] in held["species"]:
            continue
        if r["genus_name"] in held["genus"]:
            klass = "absent species"
        elif r["family_name"] in held["family"]:
            klass = "absent genus"
        elif r["order_name"] in held["order"]:
            klass = "absent family"
        else:
            klass = "absent order"
        if half(r, klass) == which:
            sets[klass].append(r)
    return header, sets


def write_outgroups(path: Path) -> None:
    """The calibration half of the absent taxa, as a BOLD table for ``export --outgroups``."""
    header, sets = open_world_sets(CALIBRATION)
    rows = [r for klass in sets for r in sets[klass]]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, header, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    counts = ", ".join(f"{klass} {len(v)}" for klass, v in sets.items())
    print(f"wrote {len(rows)} outgroup records to {path} ({counts})", file=sys.stderr)


from identify_bold_report import write  # noqa: E402  (benchmarks/ is on sys.path)
from unrelated_dna import unrelated_dna  # noqa: E402


def main() -> None:
    from hir_edge.data.hdf5 import SpecimenStore
    from hir_edge.degrade import degrade_dna_seeded, get_preset
    from hir_edge.dna.align import default_workers, min_called_bases
    from hir_edge.evaluation.baselines import AlignmentIndex
    from hir_edge.runtime.backends import select_backend
    from hir_edge.runtime.bundle import open_bundle
    from hir_edge.runtime.identifier import Identifier
    from hir_edge.runtime.parallel import BatchPool, WorkerSettings
    from hir_edge.runtime.schema import Specimen

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path)
    parser.add_argument(
        "--write-outgroups",
        type=Path,
        default=None,
        help="Only write the calibration half of the absent taxa (a BOLD TSV) to this path",
    )
    parser.add_argument(
        "--data", type=Path, default=ROOT / ".cache/hir-edge/synth-bold100/specimens.h5"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/identify_bold")
    parser.add_argument(
        "--max-per-class",
        type=int,
        default=600,
        help="Reads per open-world class (a seeded sample; 0: all of the measured half): each read is "
        "identified four ways, twice",
    )
    args = parser.parse_args()
    if not (SHARED / "bold_coi").is_dir():
        sys.exit(f"{SHARED} is absent: this benchmark needs the real BOLD barcodes")
    if args.write_outgroups is not None:
        write_outgroups(args.write_outgroups)
        return
    if args.bundle is None:
        parser.error("--bundle is required")
    bundle = open_bundle(args.bundle)
    train = SpecimenStore(args.data, "train")
    train_ids = set(train.processids())
    shipped = len(bundle.references.ids)
    keep = [str(i) in train_ids for i in bundle.references.ids]
    bundle.references = bundle.references.subset(np.array(keep))
    backend = select_backend(bundle)
    identifier = Identifier(bundle, backend)
    # timed as the command runs: worker processes identifying whole batches
    pool = BatchPool(
        WorkerSettings(bundle=args.bundle, keep_references=tuple(keep)), default_workers()
    )
    learned = Identifier(bundle, backend, alignment=False)
    taxonomy = bundle.taxonomy
    ref_codes = train.barcodes()
    warm = [Specimen("warm", *field_read(ref_codes[0]))] * 32
    list(pool.map([warm] * 2 * default_workers()))  # start the workers before any timing
    ref_clean = [field_read(r)[0] for r in ref_codes]
    align = AlignmentIndex(ref_clean, prefilter=50)
    ref_labels = taxonomy.encode_many(train.lineages())
    test = SpecimenStore(args.data, "test")
    report: dict = {
        "bundle": str(args.bundle),
        "backend": backend.describe(),
        "library": {"shipped": shipped, "asked_with": len(bundle.references.ids)},
        "workers": default_workers(),
        "known": {},
        "open_world": {},
    }

    def run(name, reads, truths, rid):
        t = time.perf_counter()
        res = identify_reads(identifier, rid, reads, pool=pool)
        seconds = time.perf_counter() - t
        ours = score_answers(res, truths)
        ours["reads_per_second"] = len(reads) / seconds
        base = alignment_scores(align, taxonomy, ref_labels, reads, truths)
        alone = learned_scores(identify_reads(learned, rid, reads), truths)
        print(
            f"{name}: at {ours['answered_at']} precision {ours['precision_%']} | "
            f"alignment {base['best_hit_right_%']} | learned {alone}",
            file=sys.stderr,
            flush=True,
        )
        return {"identify": ours, "alignment": base, "learned": alone}

    test_codes, test_truth, ids = test.barcodes(), test.lineages(), test.processids()
    clean_reads = [field_read(r)[0] for r in test_codes]
    needed = min_called_bases(identifier.scoring.kmer_k)
    noisy = {p: get_preset(p).dna for p in ("paper", "severe")}
    report["known"]["clean"] = run("clean", clean_reads, test_truth, ids)
    for preset, noise in noisy.items():
        reads = [degrade_dna_seeded(s, noise, 0, i) for i, s in enumerate(clean_reads)]
        report["known"][preset] = run(preset, reads, test_truth, ids)
    for length in (300, 150, 100):
        report["known"][f"fragment_{length}bp"] = run(
            f"{length} bp", fragments(test_codes, length, 0, needed), test_truth, ids
        )
    report["kmer_best_hit_reads_per_second"] = kmer_rate(test_codes, ref_clean)

    sample = np.random.default_rng(0)
    for klass, rows in open_world_sets(MEASURED)[1].items():
        if klass not in CLASSES:
            continue
        report.setdefault("open_world_records", {})[klass] = len(rows)
        report["max_per_class"] = args.max_per_class
        if args.max_per_class and len(rows) > args.max_per_class:
            keep = np.sort(sample.choice(len(rows), args.max_per_class, replace=False))
            rows = [rows[i] for i in keep]
        reads = [r["nucleotides"] for r in rows]
        truth = [
            (r["order_name"], r["family_name"], r["genus_name"], r["species_name"]) for r in rows
        ]
        rid = [r["processid"] for r in rows]
        clean = [field_read(s)[0] for s in reads]
        sets = {"clean": clean}
        for preset, noise in noisy.items():
            sets[preset] = [degrade_dna_seeded(s, noise, 0, i) for i, s in enumerate(clean)]
        sets["fragment_150bp"] = fragments(reads, 150, 0, needed)
        report["open_world"][klass] = {
            kind: run(f"{klass} {kind}", r, truth, rid) for kind, r in sets.items()
        }

    report["unrelated"] = unrelated_dna(lambda ids, r: identify_reads(identifier, ids, r))
    report["speed"] = speed(identifier, test, clean_reads)
    pool.close()  # its workers must not share the cores with the cold start
    identifier.close()
    report["command"] = command_demo(args.bundle, set(test.processids()))
    write(args.out, report)


def speed(identifier, test, clean_reads) -> dict:
    from hir_edge.runtime.schema import Specimen

    n = 256
    photos = [test.image_bytes(i) for i in range(n)]
    out = {}
    for name, make in (
        ("dna", lambda i: Specimen(str(i), *field_read(clean_reads[i]))),
        ("image", lambda i: Specimen(str(i), image=photos[i])),
        ("paired", lambda i: Specimen(str(i), *field_read(clean_reads[i]), image=photos[i])),
    ):
        specimens = [make(i) for i in range(n)]
        identifier.identify(specimens[:8])
        t = time.perf_counter()
        for start in range(0, n, 32):
            identifier.identify(specimens[start : start + 32])
        batch32 = (time.perf_counter() - t) / n
        t = time.perf_counter()
        for s in specimens[:64]:
            identifier.identify([s])
        single = (time.perf_counter() - t) / 64
        out[name] = {
            "ms_per_specimen_batch1": 1000 * single,
            "ms_per_specimen_batch32": 1000 * batch32,
            "specimens_per_second_batch32": 1 / batch32,
        }
    out["peak_rss_mb_this_process"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def command_demo(bundle: Path, held_out: set[str]) -> dict:
    """Real reads through the command: a test Diptera record (the shipped bundle holds it, as it
    holds every record), and a record of a genus the library lacks, each with a real BIOSCAN
    photo; cold start and RSS."""
    work = ROOT / "benchmarks" / "work" / "identify_bold"
    work.mkdir(parents=True, exist_ok=True)
    with (SHARED / "bold_coi" / "bold_coi_100sp.tsv").open() as handle:
        row = next(
            r
            for r in csv.DictReader(handle, delimiter="\t")
            if r["order_name"] == "Diptera" and r["processid"] in held_out
        )
    absent = open_world_sets(MEASURED)[1]["absent genus"][0]
    reads = work / "two.fa"
    reads.write_text(
        f">{row['processid']}\n{row['nucleotides']}\n>{absent['processid']}\n{absent['nucleotides']}\n"
    )
    photo = SHARED / "bioscan_photos" / "Diptera.jpg"
    (work / "photos").mkdir(exist_ok=True)
    (work / "photos" / f"{row['processid']}.jpg").write_bytes(photo.read_bytes())
    cmd = [
        sys.executable,
        "-m",
        "hir_edge",
        "identify",
        "--bundle",
        str(bundle),
        "--fasta",
        str(reads),
        "--image",
        str(work / "photos"),
        "--format",
        "table",
    ]
    # a first run: the library's k-mer index counted, not read from an earlier run's cache
    env = {**os.environ, "HIR_EDGE_CACHE": "off"}
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "command": " ".join(cmd[1:]),
        "truth": [
            [r[k] for k in ("order_name", "family_name", "genus_name", "species_name")]
            for r in (row, absent)
        ],
        "cold_start_seconds": seconds,
        "peak_rss_mb": rss,
        "stdout": proc.stdout,
        "stderr": "\n".join(line for line in proc.stderr.splitlines() if not line.startswith("\t")),
    }


if __name__ == "__main__":
    main()
