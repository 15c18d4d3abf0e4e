"""Writing identifications: a table for a terminal, TSV/CSV for spreadsheets, JSON/JSONL for
pipelines. Rows stream out batch by batch, so 100,000 reads never sit in memory as text.

TSV/CSV columns (stable; one row per specimen, the top taxon per rank):
``id, assigned_rank, assigned_taxon, confidence, order, order_p, family, family_p, genus,
genus_p, species, species_p, modalities, gate_image, read_length, n_fraction,
reverse_complemented, qc_flags, novel, nearest_id, nearest_similarity, best_hit_id,
best_hit_identity, divergence, warnings``. ``nearest_similarity`` is the alignment identity
of the nearest reference barcode for a read, the embedding cosine for a photo alone.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import IO

from hir_edge.runtime.identifier import Identification

FORMATS = ("table", "tsv", "csv", "json", "jsonl")
RANKS = ("order", "family", "genus", "species")


def flat_row(item: Identification) -> dict:
    """The stable per-specimen row of the TSV/CSV formats."""
    row = {
        "id": item.id,
        "assigned_rank": item.assigned.get("rank") or "",
        "assigned_taxon": item.assigned.get("taxon") or "",
        "confidence": f"{item.assigned.get('confidence', 0.0):.3f}",
    }
    for rank in RANKS:
        top = item.ranks.get(rank) or []
        row[rank] = top[0]["taxon"] if top else ""
        row[f"{rank}_p"] = f"{top[0]['probability']:.3f}" if top else ""
    qc = item.qc or {}
    hit = item.best_hit
    row.update(
        {
            "modalities": "+".join(item.modalities),
            "gate_image": "" if item.gate is None else f"{item.gate['image']:.2f}",
            "read_length": qc.get("clean_length", ""),
            "n_fraction": "" if not qc else f"{qc['n_fraction']:.3f}",
            "reverse_complemented": "" if not qc else str(qc["reverse_complemented"]).lower(),
            "qc_flags": ",".join(qc.get("flags", [])),
            "novel": str(item.novel).lower(),
            "nearest_id": item.nearest[0]["id"] if item.nearest else "",
            "nearest_similarity": f"{item.nearest[0]['similarity']:.3f}" if item.nearest else "",
            "best_hit_id": hit["id"] if hit else "",
            "best_hit_identity": f"{hit['identity']:.4f}" if hit else "",
            "divergence": f"{hit['divergence']:.4f}" if hit else "",
            "warnings": " | ".join(item.warnings),
        }
    )
    return row


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
    answer = (
        f"{a['rank'].capitalize()} {a['taxon']}"
        if a.get("rank")
        else "no rank passes its threshold"
    )
    conf = f" ({100 * a['confidence']:.0f}%)" if a.get("rank") else ""
    novel = "  [NOVEL: not a species of the reference library]" if item.novel else ""
    out.write(f"{item.id}: {answer}{conf}{novel}\n")
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
    for rank in RANKS:
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
        out.write(
            f"  best barcode hit: {hit['id']} ({hit['taxon']}), {100 * hit['identity']:.1f}% "
            f"identity over {hit['aligned_bases']} bp, mismatches at codon positions 1/2/3 "
            f"{by_pos}, {hit['gaps']} gap bases; estimated divergence "
            f"{100 * hit['divergence']:.1f}%{gap}\n"
        )
    if item.nearest:
        near = ", ".join(f"{n['id']} ({n['taxon']}, {n['similarity']:.3f})" for n in item.nearest)
        out.write(f"  nearest references: {near}\n")
    for warning in item.warnings:
        out.write(f"  warning: {warning}\n")
    out.write("\n")
    return out.getvalue()
