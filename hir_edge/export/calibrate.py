"""Fit the bundle's scoring on validation specimens, through the runtime that will ship.

Everything is measured on embeddings produced by the bundle's own graphs (INT8 when the bundle
is INT8), so the temperatures, thresholds and novelty cut-offs hold for what runs in the field:

* per query modality (image, DNA, fused) and rank, a temperature for the prompt scores (by
  validation NLL), and the weights of the nearest-reference and aligned-barcode votes, chosen
  from small grids by how many validation answers they get right along the path, then by NLL.
  NLL alone preferred weak barcode votes (a confident mistake costs it more than many right
  answers gain), and the prompt ranking of short reads then overruled exact alignments;
* per modality and rank, the probability threshold whose assignments reach the target precision;
* per modality and rank, a final temperature on the combined logits (prompt scores plus
  votes), by NLL: the vote weights are chosen for right answers, and a weight that wins hits
  can make the answers overconfident;
* the novelty cut-offs: for photos alone, the embedding similarity of the nearest reference
  below which only ``novelty_quantile`` of the validation specimens fall (every one is of a
  species in the library); and the Mahalanobis distance to the library's species beyond which
  all but ``scope_quantile`` of them fall, a photo unlike every reference photo that gets no
  answer (:mod:`hir_edge.runtime.photo_scope`; photos of no moth). Reads use the
  alignment rule of :mod:`hir_edge.dna.align` (estimated divergence from the best hit), whose
  cut-off is a biological constant, not a fit; the validation reads' divergences are recorded
  beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hir_edge.runtime.identifier import Identifier
from hir_edge.runtime.scoring import (
    ScoringSettings,
    choose_thresholds,
    combine_evidence,
    fit_temperatures,
    greedy_paths,
    prompt_cosines,
    tree_log_probabilities,
)

WEIGHT_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
# Final temperatures of the combined logits: votes weighted up to 64 can put logits hundreds
# apart, so the grid reaches far above the prompt temperatures'.
LOGIT_TEMPERATURE_GRID = np.logspace(-1, 2.5, 36)
# Up to 64: with a clear barcode hit the alignment must outweigh a prompt ranking that a short
# or degraded read has thrown off (the fit picks it when fragments are in the validation set).
BARCODE_WEIGHT_GRID = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)


@dataclass
class ValidationSet:
    """Embeddings (and reads) of validation specimens per modality, with their labels."""

    queries: dict[str, np.ndarray]  # modality -> [N_m, d]
    ref_queries: dict[str, np.ndarray]  # modality -> [N_m, d] embedding matched to the references
    labels: dict[str, np.ndarray]  # modality -> [N_m, L]
    sequences: dict[str, list[str]] | None = None  # modality -> reads (DNA and fused)
    # modality -> its reads in order, as (kind, count): "clean", then field copies ("noisy",
    # "fragment"); None: all clean
    read_groups: dict[str, list[tuple[str, int]]] | None = None


def _nll(logp: list[np.ndarray], labels: np.ndarray) -> float:
    """Mean negative log-probability of the true taxa over every labelled (specimen, rank)."""
    total, count = 0.0, 0
    for level, lp in enumerate(logp):
        y = labels[:, level]
        keep = y >= 0
        if keep.any():
            total += -lp[np.flatnonzero(keep), y[keep]].sum()
            count += int(keep.sum())
    return total / max(count, 1)


def fit_scoring(
    identifier: Identifier,
    val: ValidationSet,
    target_precision: float = 0.95,
    novelty_quantile: float = 0.05,
    scope_quantile: float = 0.01,
) -> dict:
    """The ``scoring`` section of a manifest, fitted on ``val``."""
    bundle = identifier.bundle
    parents = identifier.parents
    banks = bundle.prompt_banks
    settings = identifier.scoring
    out = {
        "target_precision": target_precision,
        "novelty_quantile": novelty_quantile,
        "scope_quantile": scope_quantile,
        "temperatures": {},
        "thresholds": {},
        "reference_weight": {},
        "reference_temperature": settings.reference_temperature,
        "reference_k": settings.reference_k,
        "barcode_weight": {},
        "barcode_temperature": settings.barcode_temperature,
        "kmer_k": settings.kmer_k,
        "barcode_shortlist": settings.barcode_shortlist,
        "barcode_per_species": settings.barcode_per_species,
        "novelty": {},
        "scope": {},
        "logit_temperatures": {},
        "novelty_divergence": settings.novelty_divergence,
        "novelty_identity": settings.novelty_identity,
        "validation": {},
    }
    aligned: dict[tuple, tuple] = {}  # the same reads serve DNA and fused: align them once
    for modality, queries in val.queries.items():
        labels = val.labels[modality]
        if not len(queries):
            continue
        cos = prompt_cosines(queries, banks, identifier.labels_mask)
        ref_matrix = identifier._reference_matrix(modality)
        votes = sims = barcode_votes = None
        if ref_matrix is not None and len(ref_matrix):
            sims = val.ref_queries[modality] @ ref_matrix.T
            votes = identifier.reference_votes(sims, settings.reference_temperature)
        seqs = (val.sequences or {}).get(modality)
        if seqs:
            key = tuple(seqs)
            if key not in aligned:
                aligned[key] = identifier.barcode_alignments(seqs)
            barcode_sims, hits = aligned[key]
            if barcode_sims is not None:
                if modality == "dna":  # reads of known species: how far from their best hit?
                    groups = (val.read_groups or {}).get(modality, [("clean", len(hits))])
                    start = 0
                    for kind, count in groups:
                        name = "read" if kind == "clean" else f"{kind}_read"
                        stats = _divergence_stats(hits[start : start + count], settings)
                        out[f"validation_{name}_divergence"] = stats
                        start += count
                barcode_votes = identifier.reference_votes(
                    barcode_sims, settings.barcode_temperature
                )
        best = None
        for weight in WEIGHT_GRID if votes is not None else (0.0,):
            for barcode_weight in BARCODE_WEIGHT_GRID if barcode_votes is not None else (0.0,):
                offsets = combine_evidence(
                    [np.zeros_like(c) for c in cos],
                    [1.0] * len(cos),
                    votes,
                    weight,
                    barcode_votes,
                    barcode_weight,
                )
                temps = _fit_with_offsets(cos, offsets, parents, labels)
                logits = [c / t + o for c, t, o in zip(cos, temps, offsets)]
                logp = tree_log_probabilities(logits, parents, [1.0] * len(logits))
                rank_key = (-_path_hits(logp, parents, labels), _nll(logp, labels))
                if best is None or rank_key < best[0]:
                    best = (rank_key, weight, barcode_weight, temps, offsets)
        _, weight, barcode_weight, temps, offsets = best
        combined = [c / t + o for c, t, o in zip(cos, temps, offsets)]
        final = fit_temperatures(combined, parents, labels, grid=LOGIT_TEMPERATURE_GRID)
        logp = tree_log_probabilities(combined, parents, final)
        nll = _nll(logp, labels)
        probs = [np.exp(lp) for lp in logp]
        ids, p = greedy_paths(probs, parents)
        out["temperatures"][modality] = [float(t) for t in temps]
        out["logit_temperatures"][modality] = [float(t) for t in final]
        out["reference_weight"][modality] = float(weight)
        out["barcode_weight"][modality] = float(barcode_weight)
        out["thresholds"][modality] = choose_thresholds(ids, p, labels, target_precision)
        # the cut-offs come from the clean validation specimens (the first group) only
        n_clean = ((val.read_groups or {}).get(modality) or [("clean", len(queries))])[0][1]
        nearest = sims.max(axis=1)[:n_clean] if sims is not None else None
        out["novelty"][modality] = (
            float(np.quantile(nearest, novelty_quantile)) if nearest is not None else -1.0
        )
        out["scope"][modality] = (
            float(np.quantile(nearest, scope_quantile)) if nearest is not None else -1.0
        )
        if modality == "image" and (scope := identifier.photo_scope) is not None:
            distances = scope.distances(val.ref_queries[modality][:n_clean])
            out["scope_distance"] = {modality: float(np.quantile(distances, 1.0 - scope_quantile))}
        correct = ids == labels
        out["validation"][modality] = {
            "n": len(queries),
            "nll": float(nll),
            "path_accuracy": {
                rank: 100.0 * float(correct[labels[:, lv] >= 0, lv].mean())
                if (labels[:, lv] >= 0).any()
                else None
                for lv, rank in enumerate(identifier.ranks)
            },
        }
    return out


def _path_hits(logp: list[np.ndarray], parents, labels: np.ndarray) -> int:
    """How many labelled (specimen, rank) pairs the greedy answer path gets right."""
    ids, _ = greedy_paths([np.exp(lp) for lp in logp], parents)
    return int(((ids == labels) & (labels >= 0)).sum())


def _divergence_stats(hits, settings: ScoringSettings) -> dict:
    """Median and 99th percentile of the estimated divergence of reads of known species, and
    the share the novelty rule would wrongly flag."""
    hits = [h for h in hits if h is not None]
    if not hits:
        return {"q50": None, "q99": None, "flagged_novel_%": None}
    div = np.array([h.divergence for h in hits])
    return {
        "q50": float(np.quantile(div, 0.5)),
        "q99": float(np.quantile(div, 0.99)),
        "flagged_novel_%": 100.0 * float(np.mean([settings.novel(h)[0] for h in hits])),
    }


def _fit_with_offsets(cos, offsets, parents, labels) -> list[float]:
    """Temperatures of the prompt scores when fixed per-taxon offsets (the neighbour votes) are
    added: (cos/T + o) = (cos + T·o)/T, so fit on cos + T·o and iterate T to a fixed point."""
    temps = fit_temperatures(cos, parents, labels)
    if not any(np.any(o) for o in offsets):
        return temps
    for _ in range(3):
        shifted = [c + t * o for c, t, o in zip(cos, temps, offsets)]
        temps = fit_temperatures(shifted, parents, labels)
    return temps
