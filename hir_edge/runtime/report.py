"""Writing identifications: a table for a terminal, TSV/CSV for spreadsheets, JSON/JSONL for
pipelines. Rows stream out batch by batch, so 100,000 reads never sit in memory as text.

TSV/CSV columns: :data:`hir_edge.runtime.schema.COLUMNS` (stable; one row per specimen, the
top taxon per rank). ``nearest_similarity`` is the alignment identity of the nearest reference
barcode for a read, the embedding cosine for a photo alone; ``novel`` names the rank that is
probably absent from the library (empty when none).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import IO

from hir_edge.runtime.chance import NOT_COI
from hir_edge.runtime.schema import RANKS, Identification, flat_row

FORMATS = ("table", "tsv", "csv", "json", "jsonl")


class Writer:
    """Streams identifications to ``stream`` in one format."""

    def __init__(self, stream: IO[str], fmt: str, top_k: int = 3):
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
        self.stream = stream
        self.fmt = fmt
        self.top_k = top_k
        self._count = 0
        self._csv: csv.DictWriter | None = None

    def write(self, items: Sequence[Identification]) -> None:
        for item in items:
            self._write_one(item)
            self._count += 1

    def _write_one(self, item: Identification) -> None:
        if self.fmt == "jsonl":
            self.stream.write(json.dumps(item.to_dict(), ensure_ascii=False) + "\n")
        elif self.fmt == "json":
            prefix = "[\n" if self._count == 0 else ",\n"
            self.stream.write(prefix + json.dumps(item.to_dict(), ensure_ascii=False, indent=1))
        elif self.fmt in ("tsv", "csv"):
            row = flat_row(item)
            if self._csv is None:
                self._csv = csv.DictWriter(
                    self.stream,
                    fieldnames=list(row),
                    delimiter="\t" if self.fmt == "tsv" else ",",
                    lineterminator="\n",
                )
                self._csv.writeheader()
            self._csv.writerow(row)
        else:
            self.stream.write(table_block(item, self.top_k))

    def close(self) -> None:
        if self.fmt == "json":
            self.stream.write("[]\n" if self._count == 0 else "\n]\n")


def table_block(item: Identification, top_k: int) -> str:
    """A readable block per specimen: the answer first, then the evidence."""
    out = io.StringIO()
    a = item.assigned
    if a.get("rank"):
        answer = f"{a['rank'].capitalize()} {a['taxon']} ({100 * a['confidence']:.0f}%)"
    elif item.best_hit:
        # "no close reference" only for a read farther than the library's orders are apart (or
        # without a placement model); a near read the thresholds hold back is "not placed"
        far = item.placement is None or (item.novel or {}).get("rank") == RANKS[0]
        what = "no close reference" if far else "not placed at any rank"
        if any(w.startswith(NOT_COI) for w in item.warnings):
            what = NOT_COI  # its own warning says why
        answer = f"{what} (best hit {100 * item.best_hit['identity']:.1f}% identical)"
    else:
        answer = "no rank passes its threshold"
    novel = f", {item.novel['rank']} not in the library" if item.novel else ""
    out.write(f"{item.id}: {answer}{novel}\n")
    via = " + ".join(item.modalities) or "nothing usable"
    gate = ""
    if item.gate is not None:
        gate = f" (weight photo {item.gate['image']:.2f} / DNA {item.gate['dna']:.2f})"
    out.write(f"  evidence: {via}{gate}\n")
    if item.qc:
        qc = item.qc
        flags = ", ".join(qc["flags"]) or "none"
        strand = "reverse-complemented" if qc["reverse_complemented"] else "as given"
        out.write(
            f"  read: {qc['clean_length']} bp, {100 * qc['n_fraction']:.1f}% N, strand {strand}, "
            f"flags: {flags}\n"
        )
    depth = RANKS.index(a["rank"]) if a.get("rank") in RANKS else -1
    for level, rank in enumerate(RANKS):
        placed = (item.placement or {}).get(rank)
        if placed and level > depth:
            # beyond the answer, the library's ranking only says which taxon is nearest
            near, right = placed["taxon"] or "–", 100 * placed["p_right"]
            text = f"not placed (nearest in the library: {near}, right {right:.0f}% of the time)"
        else:
            cands = (item.ranks.get(rank) or [])[:top_k]
            text = ", ".join(f"{c['taxon']} {100 * c['probability']:.0f}%" for c in cands) or "–"
        out.write(f"  {rank:<8} {text}\n")
    hit = item.best_hit
    if hit:
        by_pos = "/".join(str(m) for m in hit["mismatches_by_codon_position"])
        if sum(hit["mismatches_by_codon_position"]):
            shared = hit["mismatches_with_library_bases"]
            by_pos += f" ({shared} with a base other species carry there)"
        gap = hit.get("barcode_gap")
        gap = "" if gap is None else f", {100 * gap:.1f} points above the next species"
        divergence = hit.get("divergence")
        divergence = (
            "too far to estimate a divergence"
            if divergence is None
            else f"estimated divergence {100 * divergence:.1f}%"
        )
        out.write(
            f"  best barcode hit: {hit['id']} ({hit['taxon']}), {100 * hit['identity']:.1f}% "
            f"identity over {hit['aligned_bases']} bp, mismatches at codon positions 1/2/3 "
            f"{by_pos}, {hit['gaps']} gap bases; {divergence}{gap}\n"
        )
    if item.nearest:
        near = ", ".join(f"{n['id']} ({n['taxon']}, {n['similarity']:.3f})" for n in item.nearest)
        out.write(f"  nearest references: {near}\n")
    for warning in item.warnings:
        out.write(f"  warning: {warning}\n")
    out.write("\n")
    return out.getvalue()
