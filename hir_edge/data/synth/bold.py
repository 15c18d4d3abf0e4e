"""Real taxonomy and real DNA from a BOLD export, one specimen per record.

Either of BOLD's layouts is read: the older public TSV (``processid, order_name, family_name,
genus_name, species_name, nucleotides``, ``markercode``) or a v5 data package (the Barcode Core
Data Model: ``processid, order, family, genus, species, nuc``, ``marker_code``), as TSV or CSV,
plain or gzipped (:func:`hir_edge.data.metadata.iter_metadata` reads them).

BOLD holds many records named only to genus, family or order (a BIN without a species name):
they are kept and labelled only as far as they are named, since they are references at those
ranks. A rank missing *above* a named one is taken from the file's own records (a genus that
other records place in a family is in that family), else it becomes "incertae sedis".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hir_edge.data.synth.world import STAND_IN, Path4, World
from hir_edge.errors import InputError
from hir_edge.taxonomy import RANKS, fill_gaps

Lineage = tuple[str | None, ...]

# The columns a BOLD file needs, as its two layouts name them; any alias of
# hir_edge.data.metadata.ALIASES is read.
_BOLD_NAMES = {
    "processid": ("processid",),
    **{rank: (f"{rank}_name", rank) for rank in RANKS},
    "barcode": ("nucleotides", "nuc"),
}
_BASES = frozenset("ACGTNRYKMSWBDHV-")
NO_BARCODE = "no COI-5P barcode"  # empty, of another marker, or not DNA
NO_ORDER = "not named to order"
MALFORMED = "malformed row"  # wrong number of cells, or no processid or sampleid


@dataclass(frozen=True)
class BoldRecord:
    """One BOLD record kept for the dataset: its ids, its species path and its real DNA.

    ``named`` is how many ranks BOLD names it to (4: to species). A record named to genus,
    say, takes a stand-in species below its genus (:func:`unnamed_path`) for its drawn photo;
    its label stops at its genus.
    """

    processid: str
    sampleid: str
    species: Path4
    nucleotides: str
    named: int = 4


def unnamed_path(lineage: Lineage) -> Path4:
    """A species path for a record named to order or deeper: its names, then one stand-in per
    unnamed rank ("Aedes [unnamed species]"), shared by the records unnamed below the same
    taxon. Stand-ins seed photos and group records; labels never hold them."""
    if not lineage or lineage[0] is None:
        raise ValueError("a record not named to order has no place in the tree")
    names: list[str] = []
    for level, name in enumerate(lineage):
        names.append(name if name is not None else f"{names[-1]}{STAND_IN}{RANKS[level]}]")
    return tuple(names)  # type: ignore[return-value]


def place_gaps(lineages: list[Lineage]) -> list[Lineage]:
    """Fill each rank missing above a named one from the other records: the name that most
    records with the same names above the gap and the same next named rank below it carry
    (ties: the first in sorted order); "incertae sedis" where no record tells. Trailing
    missing ranks stay missing."""
    votes: dict[tuple, Counter] = {}
    for lineage in lineages:
        for level in range(len(lineage)):
            if any(n is None for n in lineage[: level + 1]):
                break
            for below in range(level + 1, len(lineage)):
                if lineage[below] is not None:
                    key = (lineage[:level], below, lineage[below])
                    votes.setdefault(key, Counter())[lineage[level]] += 1
    out = []
    for lineage in lineages:
        names = list(lineage)
        deepest = max((i for i, n in enumerate(names) if n is not None), default=-1)
        for level in range(deepest):
            if names[level] is not None:
                continue
            below = next(i for i in range(level + 1, len(names)) if names[i] is not None)
            counts = votes.get((tuple(names[:level]), below, names[below]))
            if not counts:  # no record tells: no order at all, or "incertae sedis" below
                break
            best = max(counts.values())
            names[level] = min(n for n, c in counts.items() if c == best)
        out.append(tuple(names) if names[0] is None else fill_gaps(tuple(names)))
    return out


def read_bold(
    path: str | Path, max_species: int | None, seed: int
) -> tuple[World, list[BoldRecord], dict[str, int]]:
    """Read a BOLD export (module docstring).

    A record's id is its processid, or its sampleid where the processid is empty; records not
    named to order, without a COI-5P barcode, or malformed (no id at all, a wrong number of
    cells) are skipped and counted by reason.

    Args:
        path: the export.
        max_species: keep a seeded random subset of this many species named in full, and the
            records named above species that fall in their taxa (None keeps all).
        seed: seeds the subset.

    Returns:
        The world, the kept records in file order, and the skipped records per reason.
    """
    from hir_edge.data.metadata import ALIASES, iter_metadata, table_header
    from hir_edge.io import sha256_file

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "BOLD barcode file not found")
    header = {h.lower() for h in table_header(path)}
    missing = [
        " or ".join(names)
        for field, names in _BOLD_NAMES.items()
        if not header & set(ALIASES[field])
    ]
    if missing:
        raise InputError(path, f"not a BOLD export: missing column(s) {', '.join(missing)}", line=1)
    problems: list[InputError] = []
    skipped: Counter = Counter()
    rows = []
    for row in iter_metadata(path, problems=problems):
        seq = row.barcode.upper()
        if not seq or not set(seq) <= _BASES:
            skipped[NO_BARCODE] += 1
        elif all(n is None for n in row.lineage):
            skipped[NO_ORDER] += 1
        else:
            rows.append((row, seq))
    records: list[BoldRecord] = []
    for (row, seq), lineage in zip(rows, place_gaps([row.lineage for row, _ in rows])):
        if lineage[0] is None:
            skipped[NO_ORDER] += 1
            continue
        named = sum(n is not None for n in lineage)  # gaps are placed: the Nones trail
        records.append(BoldRecord(row.processid, row.sampleid, unnamed_path(lineage), seq, named))
    if problems:
        skipped[MALFORMED] = len(problems)
    if not records:
        raise InputError(path, f"no usable record (skipped {sum(skipped.values())})")
    if max_species is not None:
        species = sorted({r.species for r in records if r.named == len(RANKS)})
        if max_species < len(species):
            rng = np.random.default_rng([seed, 0x5EED, 2])
            picked = rng.choice(len(species), size=max_species, replace=False)
            species = [species[i] for i in picked]
        taxa = {sp[:level] for sp in species for level in range(1, len(RANKS) + 1)}
        records = [r for r in records if r.species[: r.named] in taxa]
    world = World(
        species=tuple(sorted({r.species for r in records})),
        source=f"BOLD file {path} (sha256 {sha256_file(path)})",
    )
    return world, records, dict(skipped)
