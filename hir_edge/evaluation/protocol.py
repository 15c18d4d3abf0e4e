"""The paper's prompt-ranking protocol (METHOD.md §6), on embeddings already computed.

For each rank l the candidates are the taxa of the *training* taxonomy at l, each embedded
from its prompt text; a query ranks them by cosine similarity. Top-k accuracy at l is over
the specimens labelled at l. **Global** (our reading of the paper's aggregate, stated in every
report): a specimen counts as correct when its true taxon is within the top-k at *every*
rank where it is labelled, over the specimens labelled at one rank or more.

Each rank's Top-k is over its own specimens, so ranks are not compared on the same ones: BOLD
records named only to order count at order and nowhere below. ``fully_labelled`` gives every
rank's Top-k on the specimens labelled at every rank, where "order is no harder than family"
can be read off one set of specimens.

numpy only, so the runtime and the evaluation share it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

GLOBAL_DEFINITION = (
    "Global: correct when the true taxon is within the top-k at every rank where the "
    "specimen is labelled (specimens labelled at >= 1 rank)"
)


def true_rank_positions(
    queries: np.ndarray,
    bank: np.ndarray,
    labels: np.ndarray,
    candidate_mask: np.ndarray | None = None,
) -> np.ndarray:
    """0-based position of the true taxon in each query's ranking (-1 where unlabelled).

    Ties count against the query (a candidate scoring equal to the truth ranks ahead of it),
    so a collapsed embedding space cannot score by luck.

    Args:
        queries: [N, d] L2-normalised query embeddings.
        bank: [n, d] L2-normalised prompt embeddings of the candidates.
        labels: [N] true candidate ids (-1 = not labelled at this rank).
        candidate_mask: [n] False for taxa that are not candidates (placeholders).
    """
    scores = queries @ bank.T
    if candidate_mask is not None:
        scores = np.where(candidate_mask[None, :], scores, -np.inf)
    labelled = labels >= 0
    out = np.full(labels.shape[0], -1, dtype=np.int64)
    if labelled.any():
        idx = np.flatnonzero(labelled)
        truth = scores[idx, labels[idx]]
        out[idx] = (scores[idx] >= truth[:, None]).sum(axis=1) - 1
    return out


@dataclass
class TopKResult:
    """Top-k accuracy (%) per rank and Global, with the specimen counts behind each;
    ``fully_labelled``: per rank, on the ``fully_labelled_count`` specimens labelled at all."""

    ks: tuple[int, ...]
    per_rank: dict[str, dict[int, float]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    fully_labelled: dict[str, dict[int, float]] = field(default_factory=dict)
    fully_labelled_count: int = 0

    def to_dict(self) -> dict:
        def named(acc: dict[str, dict[int, float]]) -> dict:
            return {r: {f"top{k}": v for k, v in by_k.items()} for r, by_k in acc.items()}

        out = {
            "ks": list(self.ks),
            "accuracy": named(self.per_rank),
            "counts": dict(self.counts),
            "global_definition": GLOBAL_DEFINITION,
        }
        if self.fully_labelled:
            out["fully_labelled"] = {
                "count": self.fully_labelled_count,
                "accuracy": named(self.fully_labelled),
            }
        return out

    def cell(self, rank: str, k: int) -> float:
        return self.per_rank[rank][k]


def paper_protocol(
    queries: np.ndarray,
    banks: Sequence[np.ndarray],
    labels: np.ndarray,
    ranks: Sequence[str],
    ks: Sequence[int] = (1, 5),
    candidate_masks: Sequence[np.ndarray | None] | None = None,
    valid: np.ndarray | None = None,
) -> TopKResult:
    """Top-k per rank and Global for one setting (IT, DT, I+DT …) and condition.

    Args:
        queries: [N, d] normalised query embeddings.
        banks: one [n_l, d] normalised prompt bank per rank.
        labels: [N, L] label ids (-1 missing).
        ranks: rank names, coarse to fine.
        ks: the k of top-k.
        candidate_masks: per rank, which bank entries are candidates (None = all).
        valid: [N] which queries exist (e.g. specimens that have a photo for IT).
    """
    ks = tuple(sorted(set(int(k) for k in ks)))
    labels = np.asarray(labels)
    if valid is not None:
        queries, labels = queries[valid], labels[valid]
    result = TopKResult(ks)
    positions = np.stack(
        [
            true_rank_positions(
                queries,
                banks[level],
                labels[:, level],
                None if candidate_masks is None else candidate_masks[level],
            )
            for level in range(len(ranks))
        ],
        axis=1,
    )
    labelled = labels >= 0
    for level, rank in enumerate(ranks):
        n = int(labelled[:, level].sum())
        result.counts[rank] = n
        result.per_rank[rank] = {
            k: float(100.0 * (positions[labelled[:, level], level] < k).mean())
            if n
            else float("nan")
            for k in ks
        }
    full = labelled.all(axis=1)
    result.fully_labelled_count = int(full.sum())
    if full.any():
        result.fully_labelled = {
            rank: {k: float(100.0 * (positions[full, level] < k).mean()) for k in ks}
            for level, rank in enumerate(ranks)
        }
    any_label = labelled.any(axis=1)
    n = int(any_label.sum())
    result.counts["global"] = n
    result.per_rank["global"] = {}
    for k in ks:
        ok = np.where(labelled, positions < k, True).all(axis=1)
        result.per_rank["global"][k] = float(100.0 * ok[any_label].mean()) if n else float("nan")
    return result
