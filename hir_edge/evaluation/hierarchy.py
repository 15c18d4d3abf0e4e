"""What a taxonomist needs beyond top-k: consistent predictions and mild mistakes.

* Hierarchical consistency: the share of specimens whose per-rank top-1 predictions form one
  path of the tree (the predicted species lies inside the predicted genus, family and order).
* Mistake severity: the mean tree distance (edges through the deepest common ancestor) between
  a wrong top-1 taxon and the true one — confusing two congeneric species (distance 2) is a
  far smaller error than confusing a fly with a beetle (distance 8 at species rank).
"""

from __future__ import annotations

import numpy as np

from hir_edge.taxonomy import Taxonomy


def top1_per_rank(scores: list[np.ndarray], masks: list[np.ndarray] | None = None) -> np.ndarray:
    """[N, L] argmax per rank (independent ranks, as the paper's protocol ranks them)."""
    cols = []
    for level, s in enumerate(scores):
        if masks is not None:
            s = np.where(masks[level][None, :], s, -np.inf)
        cols.append(s.argmax(axis=1))
    return np.stack(cols, axis=1)


def consistency(pred: np.ndarray, taxonomy: Taxonomy) -> float:
    """% of specimens whose top-1 at every rank is the ancestor of their top-1 one rank finer."""
    ok = np.ones(pred.shape[0], bool)
    for level in range(1, taxonomy.num_ranks):
        parents = taxonomy.parents(level)
        ok &= parents[pred[:, level]] == pred[:, level - 1]
    return 100.0 * float(ok.mean()) if len(ok) else float("nan")


def mistake_severity(pred: np.ndarray, truth: np.ndarray, taxonomy: Taxonomy) -> dict[str, dict]:
    """Per rank: mean tree distance of top-1 mistakes, and how the mistakes split by the
    deepest rank shared with the truth (e.g. a wrong species in the right genus)."""
    out: dict[str, dict] = {}
    for level, rank in enumerate(taxonomy.ranks):
        keep = truth[:, level] >= 0
        wrong = keep & (pred[:, level] != truth[:, level])
        if not wrong.any():
            out[rank] = {"mistakes": 0, "mean_distance": 0.0, "within": {}}
            continue
        anc_pred = taxonomy.ancestor_matrix(level)[pred[wrong, level]]
        anc_true = taxonomy.ancestor_matrix(level)[truth[wrong, level]]
        shared = (np.cumprod(anc_pred == anc_true, axis=1)).sum(axis=1)  # ranks in common
        distance = 2 * (level + 1 - shared)
        within = {}
        for depth in range(level + 1):
            name = "none" if depth == 0 else f"same {taxonomy.ranks[depth - 1]}"
            within[name] = int((shared == depth).sum())
        out[rank] = {
            "mistakes": int(wrong.sum()),
            "mean_distance": float(distance.mean()),
            "within": within,
        }
    return out
