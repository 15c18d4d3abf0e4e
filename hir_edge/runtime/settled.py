"""Reads whose barcode votes alone settle every rank, so the DNA encoder need not run for them.

A read's logit for taxon c at rank l is ``cos_c · a_l + v_c`` (:func:`~.scoring.combine_evidence`
over the rank's logit temperature): ``a_l = 1 / (T_l · t_l)`` scales the prompt cosine, ``v_c``
is the weighted aligned-barcode log-vote. The encoder only moves the cosines, and for a unit query
q two taxa's cosines differ by at most the distance of their prompts,
``|q·p_t − q·p_b| ≤ ‖p_t − p_b‖`` (2 where either is an "incertae sedis" placeholder, whose
score is borrowed from a child). So where the votes' leader t of each sibling group on the path
is ahead of every sibling b by ``v_t − v_b − a_l‖p_t − p_b‖ ≥`` :data:`UNDERFLOW`, exp() of b's
log-probability is exactly 0 whatever the read's embedding: the probabilities are exactly one-hot
down the path, and so are the path, its probabilities, the placement's features and the answer.

With the real-DNA bundle's settings (cosine scale 1 / (0.01 · 0.1) = 1,000; votes weighted 32 over
a logit temperature of 0.1, so 320 per unit of log-vote) the encoder ran on none
of 600 clean reads of known species, and on 23.8% of reads of absent species, whose relatives
split the votes (``benchmarks/results/dna_speed.md``). This is arithmetic, not an approximation:
the answers are the same, and that benchmark and the tests compare them with the encoder run on
every read.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

UNDERFLOW = 750.0
"""A log-probability below −745.2 is 0.0 in float64; the margin covers float32 cosines."""


def settled_by_barcodes(
    votes: Sequence[np.ndarray],
    cosine_scales: Sequence[float],
    banks: Sequence[np.ndarray],
    real: Sequence[np.ndarray],
    parents: Sequence[np.ndarray],
    masked_logit: float | None = None,
) -> np.ndarray:
    """[N] True where no prompt cosine can change any rank's probabilities.

    Args:
        votes: per rank, [N, n_l] the barcode-vote part of the logits (weight × log-vote over
            the rank's logit temperature).
        cosine_scales: per rank, the factor of the prompt cosine in the logits.
        banks: per rank, [n_l, d] unit prompt embeddings.
        real: per rank, [n_l] False for a placeholder taxon (no prompt of its own).
        parents: per rank, [n_l] parent ids (ignored at the top rank).
        masked_logit: the fixed logit of a taxon hidden from the read (the export's open-set
            calibration), which the leader's lowest logit must also clear by the margin.
    """
    n = len(votes[0])
    rows = np.arange(n)
    settled = np.ones(n, dtype=bool)
    leader = np.zeros(n, dtype=np.int64)
    for level, (v, scale, bank, is_real) in enumerate(zip(votes, cosine_scales, banks, real)):
        v = np.asarray(v, dtype=np.float64)
        siblings = (
            np.ones(v.shape, dtype=bool)
            if level == 0
            else np.asarray(parents[level])[None, :] == leader[:, None]
        )
        # A leader without children ends its path: every taxon below is under a parent of
        # probability exactly 0, so it is 0 too (leader -1: no siblings at finer ranks).
        has_children = siblings.any(axis=1)
        leader = np.where(has_children, np.where(siblings, v, -np.inf).argmax(axis=1), -1)
        at = np.maximum(leader, 0)
        p = np.asarray(bank, dtype=np.float64)
        distance = np.sqrt(np.maximum(2.0 - 2.0 * p[at] @ p.T, 0.0))
        distance = np.where(is_real[None, :] & is_real[at][:, None], distance, 2.0)
        # (1 + 1e-6): the distance's own rounding, so that the bound stays a bound
        lead = v[rows, at][:, None] - v - scale * distance * (1 + 1e-6)
        lead = np.where(siblings, lead, np.inf)
        lead[rows, at] = np.inf
        ok = lead.min(axis=1) >= UNDERFLOW
        if masked_logit is not None:
            ok &= v[rows, at] - scale >= masked_logit + UNDERFLOW
        settled &= ok | ~has_children
    return settled
