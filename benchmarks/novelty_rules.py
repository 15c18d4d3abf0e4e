"""Which novelty rule? Reads of known species against reads of species absent from the library.

    python benchmarks/novelty_rules.py

Reference library: the training barcodes of the real-DNA bundle's data (100 BOLD species).
Known: the validation reads (clean, ``paper``, ``severe``); a read counts as right when the rule
lets its best hit name it and the best hit's species is its own. Absent: the real records of
bold_coi_1826sp.tsv whose genus is in the library and species is not, split in two halves by
species name (the rules were compared on half A; half B was not looked at to choose). Rules:

* ``2%``: novel above 2% estimated divergence (the rule `identify` uses);
* ``gap``: above 2% only without a 5-point barcode gap to the next species, always above 5%;
* ``2% + error margin``: novel when the divergence minus 1.5 standard errors of its estimate
  (from the read's error count) exceeds 2%.

Writes benchmarks/results/novelty_rules.md and .json.
"""

from __future__ import annotations

import csv
import json
import sys
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from hir_edge.align import THIRD_POSITION_SHARE, novel_species  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "bold_coi"
DATA = ROOT / ".cache/hir-edge/synth-bold100/specimens.h5"


def error_margin(hit, z: float = 1.5) -> float:
    """z standard errors of the divergence estimate: errors E fall 1/3 on third positions, so
    Var(m3 - m12/2) = E/2, divided by the estimate's denominator (divergence_estimate's) and
    the span."""
    denominator = THIRD_POSITION_SHARE - 0.5 * (1.0 - THIRD_POSITION_SHARE)
    errors = max(sum(hit.mismatches_by_position) - hit.divergence * hit.span, 0.0)
    return z * np.sqrt(0.5 * errors) / denominator / max(hit.span, 1)


RULES = {
    "2%": lambda h: novel_species(h)[0],  # the rule `identify` uses
    "gap": lambda h: (
        h.identity < 0.8
        or h.divergence > 0.05
        or (h.divergence > 0.02 and (h.gap is None or h.gap < 0.05))
    ),
    "2% + error margin": lambda h: h.identity < 0.8 or h.divergence - error_margin(h) > 0.02,
}


def main() -> None:
    from hir_edge.align import ReferenceAligner
    from hir_edge.data.hdf5 import SpecimenStore
    from hir_edge.degrade import degrade_dna_seeded, get_preset
    from hir_edge.read_qc import clean_read

    if not SHARED.is_dir() or not DATA.exists():
        sys.exit(f"needs {SHARED} and {DATA} (benchmarks/build_bold_bundle.sh makes the latter)")
    train, val = SpecimenStore(DATA, "train"), SpecimenStore(DATA, "val")
    species = [lineage[3] for lineage in train.lineages()]
    aligner = ReferenceAligner(
        [clean_read(b, orient=True)[0] for b in train.barcodes()], 6, 12, species, 3
    )

    def hits(reads):
        return aligner.search([clean_read(r, orient=True)[0] for r in reads])[1]

    results: dict = {"known": {}, "absent_A": {}, "absent_B": {}}
    truth = [lineage[3] for lineage in val.lineages()]
    reads = [clean_read(b, orient=True)[0] for b in val.barcodes()]
    for cond in ("clean", "paper", "severe"):
        noisy = reads
        if cond != "clean":
            noise = get_preset(cond).dna
            noisy = [degrade_dna_seeded(s, noise, 1, i) for i, s in enumerate(reads)]
        found = [(h, t) for h, t in zip(hits(noisy), truth) if h is not None and t]
        results["known"][cond] = {
            name: 100
            * float(np.mean([species[h.reference] in (t, None) and not rule(h) for h, t in found]))
            for name, rule in RULES.items()
        } | {"n": len(found)}

    with (SHARED / "bold_coi_100sp.tsv").open() as handle:
        library = list(csv.DictReader(handle, delimiter="\t"))
    with (SHARED / "bold_coi_1826sp.tsv").open() as handle:
        others = list(csv.DictReader(handle, delimiter="\t"))
    genera = {r["genus_name"] for r in library}
    named = {r["species_name"] for r in library}
    absent = [r for r in others if r["genus_name"] in genera and r["species_name"] not in named]
    noise = get_preset("paper").dna
    for cond in ("clean", "paper"):
        raw = [clean_read(r["nucleotides"], orient=True)[0] for r in absent]
        if cond == "paper":
            raw = [degrade_dna_seeded(s, noise, 0, i) for i, s in enumerate(raw)]
        for half, key in ((0, "absent_A"), (1, "absent_B")):
            picked = [
                h
                for h, r in zip(hits(raw), absent)
                if h is not None and zlib.crc32(r["species_name"].encode()) % 2 == half
            ]
            results[key][cond] = {
                name: 100 * float(np.mean([rule(h) for h in picked]))
                for name, rule in RULES.items()
            } | {"n": len(picked)}
    write(ROOT / "benchmarks/results/novelty_rules", results)


def write(out: Path, results: dict) -> None:
    names = list(RULES)
    lines = [
        "# Novelty rules: known reads named vs absent species flagged",
        "",
        "Library: the real-DNA bundle's training barcodes (100 BOLD species). Known = validation "
        "reads, % named right (best hit's species, not flagged novel). Absent = real records of "
        "species missing from the library (genus present), % flagged novel (the rest are named as "
        "a wrong species). Half A chose the rule; half B was not used to choose.",
        "",
        "| Reads | n | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for group, label in (("known", "known"), ("absent_A", "absent A"), ("absent_B", "absent B")):
        for cond, row in results[group].items():
            cells = " | ".join(f"{row[n]:.1f}" for n in names)
            lines.append(f"| {label} {cond} | {row['n']} | {cells} |")
    text = "\n".join(lines) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{out}.md").write_text(text)
    Path(f"{out}.json").write_text(json.dumps(results, indent=1))
    print(text)


if __name__ == "__main__":
    main()
