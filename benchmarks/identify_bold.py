"""The real-DNA bundle in the field: `identify` against the alignment baseline biologists trust.

    python benchmarks/identify_bold.py --bundle OUT/bold100.bundle

Reads come from ../shared/data/bold_coi (real BOLD barcodes). The reference library of both
methods is the same: the training split of the bundle's data. Measured:

* known species (held-out test reads): clean, degraded (`paper`, `severe`), fragments (300, 150, 100 bp);
* absent species: the 434 records of bold_coi_1826sp.tsv whose genus is in the library but whose
  species is not — placed at the right genus/family? flagged novel? named a (necessarily wrong)
  species?
* a real read with a real BIOSCAN photo through the command (the demo-image warning shows);
* cold start of the command, per-specimen latency and throughput (DNA only, photo only, paired)
  and peak RSS, on this machine.

Writes benchmarks/results/identify_bold.md and .json.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"


def load_specimens(bundle, store_path: Path, split: str):
    from hir_edge.data.hdf5 import SpecimenStore

    store = SpecimenStore(store_path, split)
    return store, store.barcodes(), store.lineages()


def field_read(raw: str):
    from hir_edge.read_qc import clean_read

    return clean_read(raw, orient=True)


def identify_reads(identifier, ids, reads, images=None, batch=64):
    from hir_edge.runtime.identifier import Specimen

    out = []
    for start in range(0, len(reads), batch):
        specimens = []
        for j in range(start, min(start + batch, len(reads))):
            seq, qc = field_read(reads[j]) if reads[j] else (None, None)
            specimens.append(Specimen(ids[j], seq, qc, None if images is None else images[j]))
        out += identifier.identify(specimens)
    return out


def score_answers(results, truths, taxonomy) -> dict:
    """Per rank, the share of the specimens labelled there whose answer reaches that rank with
    the true taxon (an answer that stops higher does not count); how often a species was named
    wrongly; the novel flags; the depth of the answers."""
    ranks = taxonomy.ranks
    right = dict.fromkeys(ranks, 0)
    labelled = dict.fromkeys(ranks, 0)
    top1 = named_wrong = novel = 0
    depth = []
    for res, truth in zip(results, truths):
        lineage = res.assigned.get("lineage") or []
        for level, rank in enumerate(ranks):
            if truth[level] is None:
                continue
            labelled[rank] += 1
            right[rank] += level < len(lineage) and lineage[level] == truth[level]
        # a species named for a specimen identified only to genus is not known to be wrong
        if (
            truth[3] is not None
            and res.assigned.get("rank") == "species"
            and lineage[-1] != truth[3]
        ):
            named_wrong += 1
        top = res.ranks["species"][0]["taxon"] if res.ranks["species"] else None
        top1 += truth[3] is not None and top == truth[3]
        novel += res.novel
        depth.append(len(lineage))
    n = len(results)
    return {
        "n": n,
        "labelled": labelled,
        "answer_right_%": {r: 100.0 * right[r] / max(labelled[r], 1) for r in ranks},
        "species_top1_%": 100.0 * top1 / max(labelled["species"], 1),
        "wrong_species_named_%": 100.0 * named_wrong / max(labelled["species"], 1),
        "novel_flagged_%": 100.0 * novel / n,
        "mean_answer_depth": float(np.mean(depth)),
    }


def alignment_scores(index, taxonomy, ref_labels, reads, truths) -> dict:
    """The alignment best hit, scored like the answers above: at each rank the best hit
    labelled at that rank (BOLD-style), its identity, and the 97% species convention. Both
    strands are searched and the better hit kept, as BLAST does."""
    from hir_edge.evaluation.baselines import SPECIES_IDENTITY, alignment_predict
    from hir_edge.read_qc import reverse_complement

    clean = [field_read(r)[0] for r in reads]
    pred = alignment_predict(clean, index, ref_labels, top=1)
    other = alignment_predict([reverse_complement(r) for r in clean], index, ref_labels, top=1)
    better = other.best_score > pred.best_score
    pred.labels[better] = other.labels[better]
    pred.best_score[better] = other.best_score[better]
    ranks = taxonomy.ranks
    right = dict.fromkeys(ranks, 0)
    labelled = dict.fromkeys(ranks, 0)
    named_wrong = 0
    for i, truth in enumerate(truths):
        for level, rank in enumerate(ranks):
            if truth[level] is None:
                continue
            labelled[rank] += 1
            got = pred.labels[i, level]
            right[rank] += got >= 0 and taxonomy.name(level, int(got)) == truth[level]
        sp = pred.labels[i, 3]
        if (
            pred.best_score[i] >= SPECIES_IDENTITY
            and sp >= 0
            and taxonomy.name(3, int(sp)) != truth[3]
        ):
            named_wrong += 1
    n = len(reads)
    return {
        "n": n,
        "best_hit_right_%": {r: 100.0 * right[r] / max(labelled[r], 1) for r in ranks},
        "below_97%_identity_%": 100.0 * float((pred.best_score < SPECIES_IDENTITY).mean()),
        "wrong_species_named_at_97%_%": 100.0 * named_wrong / n,
    }


def fragments(reads, length: int, seed: int, needed: int):
    """A random ``length``-bp window of each read, from each read's own stream; a window with
    fewer than ``needed`` called bases (in a run of Ns) is drawn again: no sequencer returns
    one, and `identify` would refuse it."""
    from hir_edge.degrade import fragment_seeded

    return [fragment_seeded(field_read(r)[0], length, seed, i, needed) for i, r in enumerate(reads)]


def main() -> None:
    from hir_edge.align import default_workers, min_called_bases
    from hir_edge.degrade import degrade_dna_seeded, get_preset
    from hir_edge.evaluation.baselines import AlignmentIndex
    from hir_edge.runtime.backends import select_backend
    from hir_edge.runtime.bundle import open_bundle
    from hir_edge.runtime.identifier import Identifier

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument(
        "--data", type=Path, default=ROOT / ".cache/hir-edge/synth-bold100/specimens.h5"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/identify_bold")
    args = parser.parse_args()
    if not (SHARED / "bold_coi").is_dir():
        sys.exit(f"{SHARED} is absent: this benchmark needs the real BOLD barcodes")
    bundle = open_bundle(args.bundle)
    backend = select_backend(bundle)
    identifier = Identifier(bundle, backend, workers=default_workers())
    taxonomy = bundle.taxonomy
    _, ref_codes, ref_lineages = load_specimens(bundle, args.data, "train")
    align = AlignmentIndex([field_read(r)[0] for r in ref_codes], prefilter=50)
    ref_labels = taxonomy.encode_many(ref_lineages)
    test, test_codes, test_lineages = load_specimens(bundle, args.data, "test")
    ids = test.processids()
    report: dict = {
        "bundle": str(args.bundle),
        "backend": backend.describe(),
        "known": {},
        "absent": {},
    }

    def run(name, reads, truths, rid):
        t = time.perf_counter()
        res = identify_reads(identifier, rid, reads)
        seconds = time.perf_counter() - t
        ours = score_answers(res, truths, taxonomy)
        ours["reads_per_second"] = len(reads) / seconds
        base = alignment_scores(align, taxonomy, ref_labels, reads, truths)
        print(
            f"{name}: ours {ours['answer_right_%']} novel {ours['novel_flagged_%']:.1f}% | "
            f"alignment {base['best_hit_right_%']}",
            file=sys.stderr,
        )
        return {"identify": ours, "alignment": base}

    clean_reads = [field_read(r)[0] for r in test_codes]
    report["known"]["clean"] = run("clean", clean_reads, test_lineages, ids)
    for preset in ("paper", "severe"):
        noise = get_preset(preset).dna
        reads = [degrade_dna_seeded(s, noise, 0, i) for i, s in enumerate(clean_reads)]
        report["known"][preset] = run(preset, reads, test_lineages, ids)
    needed = min_called_bases(identifier.scoring.kmer_k)
    for length in (300, 150, 100):
        report["known"][f"fragment_{length}bp"] = run(
            f"{length} bp", fragments(test_codes, length, 0, needed), test_lineages, ids
        )

    # Absent species: genus in the library, species not.
    with (SHARED / "bold_coi" / "bold_coi_100sp.tsv").open() as handle:
        lib = list(csv.DictReader(handle, delimiter="\t"))
    with (SHARED / "bold_coi" / "bold_coi_1826sp.tsv").open() as handle:
        other = list(csv.DictReader(handle, delimiter="\t"))
    lib_genera = {r["genus_name"] for r in lib}
    lib_species = {r["species_name"] for r in lib}
    absent = [
        r for r in other if r["genus_name"] in lib_genera and r["species_name"] not in lib_species
    ]
    a_reads = [r["nucleotides"] for r in absent]
    a_truth = [
        (r["order_name"], r["family_name"], r["genus_name"], r["species_name"]) for r in absent
    ]
    a_ids = [r["processid"] for r in absent]
    report["absent"]["clean"] = run("absent clean", a_reads, a_truth, a_ids)
    noise = get_preset("paper").dna
    report["absent"]["paper"] = run(
        "absent paper",
        [degrade_dna_seeded(field_read(s)[0], noise, 0, i) for i, s in enumerate(a_reads)],
        a_truth,
        a_ids,
    )

    report["speed"] = speed(identifier, args, test, clean_reads)
    identifier.close()  # its alignment workers must not share the cores with the cold start
    report["command"] = command_demo(args.bundle, set(test.processids()))
    write(args.out, report)


def speed(identifier, args, test, clean_reads) -> dict:
    from hir_edge.runtime.identifier import Specimen

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
    """A real held-out read and a real BIOSCAN photo through the command; cold start and RSS.

    The read is the first Diptera record of the test split (``held_out`` process ids): one the
    bundle's library does not hold, so its best hit is another specimen.
    """
    work = ROOT / "benchmarks" / "work" / "identify_bold"
    work.mkdir(parents=True, exist_ok=True)
    with (SHARED / "bold_coi" / "bold_coi_100sp.tsv").open() as handle:
        row = next(
            r
            for r in csv.DictReader(handle, delimiter="\t")
            if r["order_name"] == "Diptera" and r["processid"] in held_out
        )
    reads = work / "one.fa"
    reads.write_text(f">{row['processid']}\n{row['nucleotides']}\n")
    photo = SHARED / "bioscan_photos" / "Diptera.jpg"
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
        str(photo),
        "--format",
        "table",
    ]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    # peak RSS of the largest child process so far: the identify command (the benchmark's
    # own process is measured separately)
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "command": " ".join(cmd[1:]),
        "truth": [row[k] for k in ("order_name", "family_name", "genus_name", "species_name")],
        "cold_start_seconds": seconds,
        "peak_rss_mb": rss,
        "stdout": proc.stdout,
        "stderr": "\n".join(line for line in proc.stderr.splitlines() if not line.startswith("\t")),
    }


def write(out: Path, report: dict) -> None:
    lines = [
        "# The real-DNA bundle against the alignment baseline",
        "",
        f"Bundle {report['bundle']}; backend {report['backend']}. Reference library of both methods: "
        "the bundle's training barcodes (real BOLD records, 100 species). 'right at rank' counts an "
        "answer that reaches that rank with the true taxon there; an answer that stops higher does "
        "not count. Alignment: the best hit by edlib identity (infix), named at every rank.",
        "",
        "## Known species (held-out reads)",
        "",
        "| Reads | identify: order | family | genus | species | species ranked first | wrong species named | novel flagged | alignment: genus | species | below 97% id |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in report["known"].items():
        o, a = r["identify"], r["alignment"]
        lines.append(
            f"| {name} | {o['answer_right_%']['order']:.1f} | {o['answer_right_%']['family']:.1f} | "
            f"{o['answer_right_%']['genus']:.1f} | {o['answer_right_%']['species']:.1f} | "
            f"{o['species_top1_%']:.1f} | "
            f"{o['wrong_species_named_%']:.1f} | {o['novel_flagged_%']:.1f} | "
            f"{a['best_hit_right_%']['genus']:.1f} | {a['best_hit_right_%']['species']:.1f} | {a['below_97%_identity_%']:.1f} |"
        )
    lines += [
        "",
        "'species ranked first': the true species heads the answer's species list. A read flagged "
        "novel (estimated divergence from its best hit over 2%) is answered at its genus even "
        "when its best hit is of its species: that is the gap between the two species columns.",
        "",
        "## Species absent from the reference library (genus present): 434 real records",
        "",
        "| Reads | identify: family right | genus right | flagged novel | wrong species named | alignment: family | genus | wrong species named (≥97% id) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in report["absent"].items():
        o, a = r["identify"], r["alignment"]
        lines.append(
            f"| {name} | {o['answer_right_%']['family']:.1f} | {o['answer_right_%']['genus']:.1f} | "
            f"{o['novel_flagged_%']:.1f} | {o['wrong_species_named_%']:.1f} | {a['best_hit_right_%']['family']:.1f} | "
            f"{a['best_hit_right_%']['genus']:.1f} | {a['wrong_species_named_at_97%_%']:.1f} |"
        )
    s = report["speed"]
    lines += [
        "",
        "## Speed on this machine (2 CPU cores)",
        "",
        "| Specimens | ms/specimen, batch 1 | ms/specimen, batch 32 | specimens/s |",
        "|---|---|---|---|",
    ]
    for name in ("dna", "image", "paired"):
        lines.append(
            f"| {name} | {s[name]['ms_per_specimen_batch1']:.1f} | {s[name]['ms_per_specimen_batch32']:.1f} | "
            f"{s[name]['specimens_per_second_batch32']:.0f} |"
        )
    c = report["command"]
    lines += [
        "",
        f"Cold start of one `identify` command (one read + one 2880×2160 photo): {c['cold_start_seconds']:.2f} s, "
        f"peak RSS {c['peak_rss_mb']:.0f} MB.",
        "",
        f"A real read of {' '.join(c['truth'])} with the real BIOSCAN photo Diptera.jpg:",
        "",
        "```",
        c["stderr"].strip(),
        c["stdout"].strip(),
        "```",
    ]
    text = "\n".join(lines) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{out}.md").write_text(text)
    Path(f"{out}.json").write_text(json.dumps(report, indent=1, default=str))
    print(text)


if __name__ == "__main__":
    main()
