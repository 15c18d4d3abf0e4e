"""CLIBD's protocol: nearest neighbour among the embeddings of a labelled reference ("key") set.

A query takes, at each rank, the label of its nearest key *labelled at that rank*. Accuracy is
reported micro (over specimens) and macro (mean of per-taxon accuracies, so rare taxa count as
much as common ones), and for species seen in the keys apart from unseen ones (an unseen
species can still be right at genus or family).

numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def nearest_labels(
    queries: np.ndarray,
    keys: np.ndarray,
    key_labels: np.ndarray,
    chunk: int = 4096,
) -> tuple[np.ndarray, np.ndarray]:
    """Per rank, the label of the nearest key labelled at that rank, and its cosine.

    Args:
        queries: [N, d] normalised embeddings.
        keys: [M, d] normalised embeddings.
        key_labels: [M, L] ids (-1 missing).

    Returns:
        (labels [N, L] (-1 when no key is labelled at a rank), cosine [N, L]).
    """
    n, num_ranks = queries.shape[0], key_labels.shape[1]
    pred = np.full((n, num_ranks), -1, dtype=np.int64)
    best = np.full((n, num_ranks), -np.inf, dtype=np.float32)
    for start in range(0, n, chunk):
        sims = queries[start : start + chunk] @ keys.T
        for level in range(num_ranks):
            labelled = key_labels[:, level] >= 0
            if not labelled.any():
                continue
            masked = np.where(labelled[None, :], sims, -np.inf)
            idx = masked.argmax(axis=1)
            pred[start : start + chunk, level] = key_labels[idx, level]
            best[start : start + chunk, level] = masked[np.arange(len(idx)), idx]
    return pred, best


def micro_macro(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float, int]:
    """Micro and macro accuracy (%) over the specimens labelled in ``truth`` (−1 = unlabelled)."""
    keep = truth >= 0
    if not keep.any():
        return float("nan"), float("nan"), 0
    correct = pred[keep] == truth[keep]
    classes = truth[keep]
    per_class = [correct[classes == c].mean() for c in np.unique(classes)]
    return 100.0 * float(correct.mean()), 100.0 * float(np.mean(per_class)), int(keep.sum())


def clibd_protocol(
    queries: np.ndarray,
    query_labels: np.ndarray,
    keys: np.ndarray,
    key_labels: np.ndarray,
    ranks: Sequence[str],
    valid: np.ndarray | None = None,
    key_valid: np.ndarray | None = None,
    unseen: np.ndarray | None = None,
) -> dict:
    """Micro/macro nearest-neighbour accuracy per rank, for seen and unseen species apart.

    Args:
        unseen: [N] True for queries of species absent from the keys (e.g. a test_unseen
            split). Their species has no id in the training taxonomy, so they cannot be told
            apart by label; they are scored at the ranks where they do have one (genus, family).
    """
    unseen = np.zeros(len(queries), bool) if unseen is None else np.asarray(unseen, bool)
    if valid is not None:
        queries, query_labels, unseen = queries[valid], query_labels[valid], unseen[valid]
    if key_valid is not None:
        keys, key_labels = keys[key_valid], key_labels[key_valid]
    pred, _ = nearest_labels(queries, keys, key_labels)
    groups = {"seen": ~unseen, "unseen": unseen}
    out: dict = {}
    for name, mask in groups.items():
        if not mask.any():
            continue
        out[name] = {}
        for level, rank in enumerate(ranks):
            micro, macro, count = micro_macro(pred[mask, level], query_labels[mask, level])
            out[name][rank] = {"micro": micro, "macro": macro, "n": count}
    return out
