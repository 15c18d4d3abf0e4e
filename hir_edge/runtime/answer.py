"""From one specimen's evidence to the answer a person reads: the rank reached, its confidence,
what is probably missing from the library, and the references behind it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hir_edge.dna.align import Hit
from hir_edge.dna.kmers import stable_top
from hir_edge.runtime.bundle import References
from hir_edge.runtime.schema import Identification, Specimen
from hir_edge.taxonomy import Taxonomy, is_placeholder


@dataclass
class Evidence:
    """One specimen's scores and path, before the answer is written.

    Attributes:
        modality: "image", "dna" or "fused".
        probs: per rank, probabilities of every taxon (consistent down the tree).
        path, path_p: the greedy answer path's taxa and probabilities per rank.
        level: deepest rank whose path probability passes the bundle's threshold.
        ref_sims: similarities to the reference embeddings (None without a library, and for a
            read whose barcode votes settle it: its embedding is not computed).
        barcode_sims: alignment identities to the reference barcodes (reads).
        hit: the best barcode hit (reads; None without barcodes or a usable read).
        gate: the mean GatedFusion weight of the photo (paired specimens).
        reach: per rank, P(the path's taxon is right) from the placement model (reads with a
            hit in a bundle that has one), else None.
        chance_identity: for a read farther from the library than its orders reach, the best
            identity its shuffled copies reach (:mod:`hir_edge.runtime.chance`), else None.
        scope_distance: for a photo alone, its Mahalanobis distance to the nearest species of
            the library (:mod:`hir_edge.runtime.photo_scope`), else None.
    """

    modality: str
    probs: list[np.ndarray]
    path: np.ndarray
    path_p: np.ndarray
    level: int
    ref_sims: np.ndarray | None
    barcode_sims: np.ndarray | None
    hit: Hit | None
    gate: float | None
    reach: np.ndarray | None = None
    chance_identity: float | None = None
    scope_distance: float | None = None


@dataclass
class Decision:
    """Where the answer stops and why."""

    level: int  # -1: no rank
    confidence: float
    novel: dict | None
    warnings: list[str]


def rank_lists(
    taxonomy: Taxonomy, labels_mask: list[np.ndarray], probs: list[np.ndarray], top_k: int
) -> dict[str, list[dict]]:
    """The ``top_k`` most probable real taxa per rank (placeholders are no answer)."""
    out = {}
    for lv, rank in enumerate(taxonomy.ranks):
        p = probs[lv]
        order = [t for t in np.argsort(-p) if labels_mask[lv][t] and p[t] > 0]
        out[rank] = [
            {"taxon": taxonomy.name(lv, int(t)), "probability": round(float(p[t]), 4)}
            for t in order[:top_k]
        ]
    return out


def placement_record(taxonomy: Taxonomy, path: np.ndarray, reach: np.ndarray | None) -> dict | None:
    """Per rank: the path's taxon and the calibrated probability that it is right (None without
    a placement model's answer for this specimen)."""
    if reach is None:
        return None
    return {
        rank: {
            "taxon": taxonomy.name(lv, int(path[lv])) if path[lv] >= 0 else None,
            "p_right": round(float(reach[lv]), 4),
        }
        for lv, rank in enumerate(taxonomy.ranks)
    }


def assigned_taxon(taxonomy: Taxonomy, level: int, taxon_id: int, confidence: float) -> dict:
    if level < 0:
        return {"rank": None, "taxon": None, "confidence": 0.0, "lineage": []}
    return {
        "rank": taxonomy.ranks[level],
        "taxon": taxonomy.name(level, taxon_id),
        "confidence": round(float(confidence), 4),
        "lineage": [
            n for n in taxonomy.lineage(level, taxon_id) if n is not None and not is_placeholder(n)
        ],
    }


def reference_taxon(taxonomy: Taxonomy, labels_mask, refs: References, j: int) -> dict:
    """The deepest real taxon a reference specimen is identified to."""
    lab = refs.labels[j]
    known = [lv for lv in range(len(lab)) if lab[lv] >= 0 and labels_mask[lv][lab[lv]]]
    if not known:
        return {"rank": None, "taxon": None}
    deepest = known[-1]
    return {"rank": taxonomy.ranks[deepest], "taxon": taxonomy.name(deepest, int(lab[deepest]))}


def best_hit_record(taxonomy: Taxonomy, labels_mask, refs: References, hit: Hit) -> dict:
    """The best-aligned reference barcode, as a taxonomist reads a BLAST/BOLD hit."""
    return {
        "id": str(refs.ids[hit.reference]),
        **reference_taxon(taxonomy, labels_mask, refs, hit.reference),
        **hit.to_dict(),
    }


def nearest_references(
    taxonomy: Taxonomy,
    labels_mask,
    refs: References,
    sims: np.ndarray | None,
    count: int = 3,
    first: int | None = None,
) -> list[dict]:
    """The ``count`` most similar references; ``first`` (the best aligned hit) leads, so the
    list agrees with ``best_hit`` when several references tie."""
    if sims is None:
        return []
    order = [int(j) for j in stable_top(sims, count + 1)]
    if first is not None:
        order = [first] + [j for j in order if j != first]
    return [
        {
            "id": str(refs.ids[j]),
            "taxon": reference_taxon(taxonomy, labels_mask, refs, j)["taxon"],
            "similarity": round(float(sims[j]), 4),
        }
        for j in order[:count]
    ]


def unanswered(taxonomy: Taxonomy, specimen_id: str, why: str) -> Identification:
    """The row of a specimen with neither a usable read nor a photo: no taxon, and why."""
    return Identification(
        specimen_id,
        assigned_taxon(taxonomy, -1, -1, 0.0),
        {r: [] for r in taxonomy.ranks},
        [],
        None,
        None,
        None,
        warnings=[why],
    )


def identification(
    taxonomy: Taxonomy,
    labels_mask: list[np.ndarray],
    refs: References | None,
    specimen: Specimen,
    ev: Evidence,
    decision: Decision,
    top_k: int,
    warnings: list[str],
) -> Identification:
    """One specimen's answer: the decided rank and taxon, the ranked taxa per rank, the best
    barcode hit and nearest references, the placement, and the warnings (the caller's first)."""
    level = decision.level
    taxon = int(ev.path[level]) if level >= 0 else -1
    modalities = {"fused": ["image", "dna"], "image": ["image"], "dna": ["dna"]}[ev.modality]
    gate = None if ev.gate is None else {"image": round(ev.gate, 3), "dna": round(1 - ev.gate, 3)}
    sims = ev.barcode_sims if ev.barcode_sims is not None else ev.ref_sims
    return Identification(
        id=specimen.id,
        assigned=assigned_taxon(taxonomy, level, taxon, decision.confidence),
        ranks=rank_lists(taxonomy, labels_mask, ev.probs, top_k),
        modalities=modalities,
        gate=gate,
        qc=None if specimen.qc is None else specimen.qc.to_dict(),
        novel=decision.novel,
        nearest=nearest_references(
            taxonomy,
            labels_mask,
            refs,
            sims,
            first=None if ev.hit is None else ev.hit.reference,
        ),
        warnings=warnings + decision.warnings,
        best_hit=None if ev.hit is None else best_hit_record(taxonomy, labels_mask, refs, ev.hit),
        placement=placement_record(taxonomy, ev.path, ev.reach),
    )
