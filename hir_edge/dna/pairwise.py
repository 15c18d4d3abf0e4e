"""One read against chosen references: their alignment scores (SIMD) and the best one's
alignment, base by base.

:class:`hir_edge.dna.align.ReferenceAligner` shortlists the references; this module scores
them with free end gaps and N as a wildcard (Opal's SIMD aligner when pyopal is installed,
Biopython's otherwise, with the same scores), and aligns the best hit: on its diagonal when the
read has no indel against it, else by Biopython's traceback, piece by piece between long exact
matches where it can be (:mod:`hir_edge.dna.anchored`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

import numpy as np

from hir_edge.dna.anchored import AnchoredTraceback
from hir_edge.dna.qc import base_codes


class CandidateScorer:
    """Alignment scores of one read against chosen references, by SIMD when pyopal is here.

    Opal's semi-global ``ov`` mode (free end gaps on both sequences) with match +1, mismatch
    -1, N scoring 0 against anything and a gap of length L costing 2 + (L - 1) gives exactly
    the scores of Biopython's aligner as ReferenceAligner configures it (tests/test_align.py
    checks it): the same identities, so the same answers, many times faster
    (benchmarks/results/dna_speed.md). Without pyopal (it has wheels for x86-64 and aarch64),
    Biopython scores.
    """

    def __init__(self, references: Sequence[str], make_fallback: Callable[[], Any]):
        # Biopython's aligner is made on first use (align.biopython_aligner): a run whose reads
        # all align on their diagonal (clean reads) never imports Bio.Align (start-up time).
        self._make_fallback = make_fallback
        self._references = references
        try:
            import pyopal
            from scoring_matrices import ScoringMatrix
        except ImportError:
            self._opal = None
            return
        alphabet = "ACGTN"
        matrix = [
            [0 if "N" in (a, b) else (1 if a == b else -1) for b in alphabet] for a in alphabet
        ]
        self._opal = pyopal.Aligner(
            ScoringMatrix(matrix, alphabet=alphabet), gap_open=2, gap_extend=1
        )
        self._database = pyopal.Database(list(references), self._opal.alphabet)

    @cached_property
    def fallback(self):
        """Biopython's aligner (the traceback, and the scores without pyopal)."""
        return self._make_fallback()

    @cached_property
    def _anchored(self) -> AnchoredTraceback:
        return AnchoredTraceback(self.fallback)

    @property
    def simd(self) -> bool:
        return self._opal is not None

    def blocks(self, read: str, j: int, score: float) -> tuple[list, list]:
        """The gapless blocks of an optimal alignment of ``read`` to reference ``j``, as
        Biopython's ``Alignment.aligned``: [(start, end)] in the read and in the reference.

        ``score`` is the optimal score (from :meth:`scores`). A read with no indel against the
        reference (most clean reads) aligns on one diagonal: when that diagonal's score is the
        optimum, it is the alignment, found in microseconds. Otherwise Biopython's traceback
        chooses it, between anchors of long exact matches where they add up to the optimum,
        else over the whole read: Opal's is faster but, among alignments of equal score, often
        places the gaps elsewhere, which changes the counts (benchmarks/results/dna_speed.md).
        """
        ref = self._references[j]
        diagonal = _ungapped(read, ref, score)
        if diagonal is not None:
            return diagonal
        anchored = self._anchored.aligned(read, ref, score)
        if anchored is not None:
            return anchored
        return self.fallback.align(read, ref)[0].aligned

    def scores(self, read: str, candidates: np.ndarray) -> np.ndarray:
        """The alignment score of ``read`` to each reference in ``candidates``."""
        if not len(candidates):
            return np.zeros(0, dtype=float)
        if self._opal is None:
            refs = self._references
            return np.array([self.fallback.score(read, refs[j]) for j in candidates], float)
        subset = self._database.extract([int(j) for j in candidates])
        out = np.zeros(len(candidates), dtype=float)
        for result in self._opal.align(
            read, subset, mode="score", algorithm="ov", overflow="buckets"
        ):
            out[result.target_index] = result.score
        return out


ANCHOR = 16  # bases of an exact seed that place a read on a diagonal of its reference
# The diagonal is taken only when these first and last columns hold no mismatch: with one
# there, a short gap and a shifted end can score the same, and which of two equal alignments
# is "the" alignment must stay Biopython's (the counts, and so the answers, unchanged).
CLEAN_ENDS = 8


def _ungapped(read: str, ref: str, score: float) -> tuple[list, list] | None:
    """The one-diagonal alignment of ``read`` to ``ref`` when its score is ``score`` (the
    optimum), else None. The diagonal comes from exact seeds at both ends of the read; with
    free end gaps, the alignment covers the whole overlap of that diagonal."""
    offsets = set()
    for at in (0, len(read) - ANCHOR, len(read) // 2):
        seed = read[at : at + ANCHOR]
        if len(seed) < ANCHOR or "N" in seed:
            continue
        found = ref.find(seed)
        if found < 0 or ref.find(seed, found + 1) >= 0:
            continue  # absent, or not unique: no diagonal from it
        offsets.add(found - at)
    if len(offsets) != 1:
        return None
    shift = offsets.pop()  # reference position of read[0]
    r0, f0 = max(0, -shift), max(0, shift)
    length = min(len(read) - r0, len(ref) - f0)
    if length <= 0:
        return None
    a = base_codes(read[r0 : r0 + length])
    b = base_codes(ref[f0 : f0 + length])
    called = (a >= 0) & (b >= 0)
    wrong = called & (a != b)
    if wrong[:CLEAN_ENDS].any() or wrong[-CLEAN_ENDS:].any():
        return None  # a mismatch near an end: a gap and a shifted end may score the same
    if int(called.sum()) - 2 * int(wrong.sum()) != score:
        return None
    return [(r0, r0 + length)], [(f0, f0 + length)]
