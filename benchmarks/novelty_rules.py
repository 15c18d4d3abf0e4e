"""Which novelty rule? Reads of known species against reads of species absent from the library.

    python benchmarks/novelty_rules.py

Reference library: the training barcodes of the real-DNA bundle's data (100 BOLD species).
Known: the validation reads (clean, ``paper``, ``severe``); a read counts as right when the rule
lets its best hit name it and the best hit's species is its own. Absent: the real records of
bold_coi_1826sp.tsv whose genus is in the library and species is not, split in two halves by
species name (half A was looked at while choosing; half B was not). Rules:

* ``codon positions only``: novel above 2% divergence estimated from the codon positions of the
  mismatches alone (the same aligner with the library's bases per site switched off);
* ``2%``: novel above 2% divergence estimated from codon positions and the library's bases at
  the mismatched sites (the rule `identify` uses); ``1.5%``, ``2.5%``, ``3%``: the same
  estimate at other cut-offs (``identify --novel-above``);
* ``gap``: as ``2%``, but a read 2-5% from its best hit is named when the barcode gap to the
  next species is 5 points or more.

Writes benchmarks/results/novelty_rules.md and .json.
"""

from __future__ import annotations

import csv
import sys
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from hir_edge.dna.divergence import novel_species  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "bold_coi"
DATA = ROOT / ".cache/hir-edge/synth-bold100/specimens.h5"

# rule name -> (aligner: "codon" or "library", decision on a hit)
RULES = {
    "codon positions only": ("codon", lambda h: novel_species(h)[0]),
    "1.5%": ("library", lambda h: novel_species(h, 0.015)[0]),
    "2%": ("library", lambda h: novel_species(h)[0]),  # the rule `identify` uses
    "2.5%": ("library", lambda h: novel_species(h, 0.025)[0]),
    "3%": ("library", lambda h: novel_species(h, 0.03)[0]),
    "gap": (
        "library",
        lambda h: (
            h.identity < 0.8
            or h.divergence > 0.05
            or (h.divergence > 0.02 and (h.gap is None or h.gap < 0.05))
        ),
    ),
}


from results_file import write_results  # noqa: E402  (benchmarks/ is on sys.path)


def main() -> None:
    from hir_edge.data.hdf5 import SpecimenStore
    from hir_edge.degrade import degrade_dna_seeded, get_preset
    from hir_edge.dna.align import ReferenceAligner
    from hir_edge.dna.divergence import SiteProfile
    from hir_edge.dna.qc import clean_read

    if not SHARED.is_dir() or not DATA.exists():
        sys.exit(f"needs {SHARED} and {DATA} (benchmarks/build_bold_bundle.sh makes the latter)")
    train, val = SpecimenStore(DATA, "train"), SpecimenStore(DATA, "val")
    species = [lineage[3] for lineage in train.lineages()]
    barcodes = [clean_read(b, orient=True)[0] for b in train.barcodes()]
    aligners = {
        "library": ReferenceAligner(barcodes, 6, 12, species, 3),
        "codon": ReferenceAligner(barcodes, 6, 12, species, 3),
    }
    # an empty profile places no site, so every mismatch gets 1/3: no evidence either way
    # (in-process only: these aligners have no worker processes)
    aligners["codon"].sites = SiteProfile([], None)

    def hits(reads):
        reads = [clean_read(r, orient=True)[0] for r in reads]
        return {name: aligner.search(reads)[1] for name, aligner in aligners.items()}

    def score(found, keep, judge):
        """% over the reads ``keep`` accepts of ``judge(hit, rule)``, per rule."""
        out = {}
        for name, (which, rule) in RULES.items():
            picked = [(h, extra) for h, extra in zip(found[which], keep) if h is not None and extra]
            out[name] = 100 * float(np.mean([judge(h, extra, rule) for h, extra in picked]))
            out["n"] = len(picked)
        return out

    results: dict = {"known": {}, "absent_A": {}, "absent_B": {}}
    truth = [lineage[3] for lineage in val.lineages()]
    reads = [clean_read(b, orient=True)[0] for b in val.barcodes()]
    for cond in ("clean", "paper", "severe"):
        noisy = reads
        if cond != "clean":
            noise = get_preset(cond).dna
            noisy = [degrade_dna_seeded(s, noise, 1, i) for i, s in enumerate(reads)]
        results["known"][cond] = score(
            hits(noisy), truth, lambda h, t, rule: species[h.reference] in (t, None) and not rule(h)
        )

    with (SHARED / "bold_coi_100sp.tsv").open() as handle:
        library = list(csv.DictReader(handle, delimiter="\t"))
    with (SHARED / "bold_coi_1826sp.tsv").open() as handle:
        others = list(csv.DictReader(handle, delimiter="\t"))
    genera = {r["genus_name"] for r in library}
    named = {r["species_name"] for r in library}
    absent = [r for r in others if r["genus_name"] in genera and r["species_name"] not in named]
    halves = [zlib.crc32(r["species_name"].encode()) % 2 for r in absent]
    noise = get_preset("paper").dna
    for cond in ("clean", "paper"):
        raw = [clean_read(r["nucleotides"], orient=True)[0] for r in absent]
        if cond == "paper":
            raw = [degrade_dna_seeded(s, noise, 0, i) for i, s in enumerate(raw)]
        found = hits(raw)
        for half, key in ((0, "absent_A"), (1, "absent_B")):
            keep = [h == half for h in halves]
            results[key][cond] = score(found, keep, lambda h, _, rule: rule(h))
    write(ROOT / "benchmarks/results/novelty_rules", results)


def write(out: Path, results: dict) -> None:
    names = list(RULES)
    lines = [
        "# Novelty rules: known reads named vs absent species flagged",
        "",
        "Library: the real-DNA bundle's training barcodes (100 BOLD species). Known = validation "
        "reads, % named right (best hit's species, not flagged novel). Absent = real records of "
        "species missing from the library (genus present), % flagged novel (the rest are named as "
        "a wrong species). Half A was looked at while choosing; half B was not. Rules: see the "
        "script's docstring.",
        "",
        "| Reads | n | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for group, label in (("known", "known"), ("absent_A", "absent A"), ("absent_B", "absent B")):
        for cond, row in results[group].items():
            cells = " | ".join(f"{row[n]:.1f}" for n in names)
            lines.append(f"| {label} {cond} | {row['n']} | {cells} |")
    text = "\n".join(lines) + "\n"
    write_results(out, text, results)


if __name__ == "__main__":
    main()
