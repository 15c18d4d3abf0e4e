"""The records of the field runtime: a specimen going in, an identification coming out, and the
stable flat row of the TSV/CSV formats."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hir_edge.dna.qc import ReadQC

RANKS = ("order", "family", "genus", "species")

# The TSV/CSV columns, in order: stable across releases (scripts index them by name).
COLUMNS = (
    "id",
    "assigned_rank",
    "assigned_taxon",
    "confidence",
    *(f"{rank}{suffix}" for rank in RANKS for suffix in ("", "_p")),
    "modalities",
    "gate_image",
    "read_length",
    "n_fraction",
    "reverse_complemented",
    "qc_flags",
    "novel",
    "nearest_id",
    "nearest_similarity",
    "best_hit_id",
    "best_hit_identity",
    "divergence",
    # reads with a placement: the calibrated chance that each rank's taxon is right (the
    # confidence an answer at that rank would have); <rank>_p ranks the library's taxa
    *(f"{rank}_p_right" for rank in RANKS),
    "warnings",
)


@dataclass
class Specimen:
    """What the field gives for one specimen: a cleaned read and/or a photo."""

    id: str
    sequence: str | None = None
    qc: ReadQC | None = None
    image: Path | bytes | None = None
    image_name: str | None = None
    source: str | None = None  # the file the read came from (for error messages)
    line: int | None = None  # its line there, when known
    photo: Photo | None = None  # ``image`` decoded once, when the input stage did it


@dataclass(frozen=True)
class Photo:
    """A photo decoded once, as the image branch takes it: [3, S, S] normalised pixels, and
    whether ``hir-edge data synth`` drew it (its JPEG comment says so)."""

    pixels: np.ndarray
    drawn: bool


@dataclass
class Identification:
    """The answer for one specimen (the JSON schema of ``hir-edge identify``).

    ``novel`` is None, or says which rank of the specimen is probably absent from the
    reference library: ``{"rank": "genus", "reason": "..."}`` for a read whose genus the
    library probably lacks (its answer then stops above that rank).

    ``placement`` (reads with a barcode hit, in a bundle with a placement model): per rank, the
    library's best taxon there and the calibrated probability that it is right. The ranks
    listed in ``ranks`` are probabilities *within the library*: below the assigned rank they
    say which taxon is nearest, not that the read belongs to it.
    """

    id: str
    assigned: dict
    ranks: dict
    modalities: list[str]
    gate: dict | None
    qc: dict | None
    novel: dict | None
    nearest: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    best_hit: dict | None = None
    placement: dict | None = None

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "assigned": self.assigned,
            "ranks": self.ranks,
            "modalities": self.modalities,
            "gate": self.gate,
            "qc": self.qc,
            "novel": self.novel,
            "nearest": self.nearest,
            "best_hit": self.best_hit,
            "placement": self.placement,
            "warnings": self.warnings,
        }


def flat_row(item: Identification) -> dict:
    """The stable per-specimen row of the TSV/CSV formats (:data:`COLUMNS`)."""
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
    divergence = hit.get("divergence") if hit else None
    row.update(
        {
            "modalities": "+".join(item.modalities),
            "gate_image": "" if item.gate is None else f"{item.gate['image']:.2f}",
            "read_length": qc.get("clean_length", ""),
            "n_fraction": "" if not qc else f"{qc['n_fraction']:.3f}",
            "reverse_complemented": "" if not qc else str(qc["reverse_complemented"]).lower(),
            "qc_flags": ",".join(qc.get("flags", [])),
            "novel": item.novel["rank"] if item.novel else "",
            "nearest_id": item.nearest[0]["id"] if item.nearest else "",
            "nearest_similarity": f"{item.nearest[0]['similarity']:.3f}" if item.nearest else "",
            "best_hit_id": hit["id"] if hit else "",
            "best_hit_identity": f"{hit['identity']:.4f}" if hit else "",
            "divergence": "" if divergence is None else f"{divergence:.4f}",
        }
    )
    placement = item.placement or {}
    for rank in RANKS:
        right = placement.get(rank)
        row[f"{rank}_p_right"] = f"{right['p_right']:.3f}" if right else ""
    row["warnings"] = " | ".join(item.warnings)
    return row
