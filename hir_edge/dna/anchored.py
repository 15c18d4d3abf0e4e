"""Biopython's traceback of a read against its best hit, cut at long exact matches.

The best hit's alignment, base by base, gives the counts by codon position and so the
divergence estimate. Biopython's full dynamic programme on a 650-bp read and its reference
costs milliseconds (benchmarks/results/dna_speed.md), most of ``identify``'s time on degraded
reads and reads of absent species. An
optimal alignment of a read with a few indels runs through long stretches of exact matches,
so the stretches *between* them can be aligned on their own, each by Biopython with the same
scores: a fraction of the cells.

Which of several alignments of equal score is "the" alignment (a gap anywhere along a
homopolymer) must stay Biopython's, or the counts and answers would move. The anchors are
therefore the cores of exact runs, :data:`MARGIN` bases in from each end, so a gap next to a
run stays free to slide as Biopython would slide it; the pieces' scores must add up to the
optimum (the SIMD score), else the full programme runs. A piece between two anchors whose two
sides are as long as each other and nearly identical is not handed to Biopython: side by side
it scores more than any gapped alignment could, so it is the one optimum, Biopython's too.
Measured against Biopython's full traceback on real reads (``benchmarks/dna_speed.py``) and
pinned by tests/test_align.py.
"""

from __future__ import annotations

import numpy as np

from hir_edge.dna.qc import base_codes

ANCHOR_K = 12  # an exact k-mer, unique in the read and in the reference, starts a run
MARGIN = 8  # bases left free at each end of a run (4 gave other gap placements)
MIN_CORE = 1  # any core: the anchor forces only bases no alignment of equal score moves
REFERENCES_KEPT = 1024  # references whose unique k-mers are kept (about 10 kB each)


def _kmer_codes(codes: np.ndarray, k: int) -> np.ndarray:
    """[n - k + 1] 2-bit codes of each k-mer (-1 where it holds an N)."""
    n = len(codes) - k + 1
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    bases = np.maximum(codes, 0).astype(np.int64)
    packed = np.zeros(n, dtype=np.int64)
    for m in range(k):  # k shifts of the whole read, not one sum per window
        packed <<= 2
        packed |= bases[m : m + n]
    ns = np.concatenate(([0], np.cumsum(codes < 0)))
    return np.where(ns[k:] > ns[:-k], -1, packed)


def _once(kmers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The k-mer codes that occur once (and hold no N), sorted, and their positions."""
    valid = kmers >= 0
    values, first, counts = np.unique(kmers[valid], return_index=True, return_counts=True)
    once = counts == 1
    return values[once], np.flatnonzero(valid)[first][once]


def unique_kmers(seq: str, k: int = ANCHOR_K) -> tuple[np.ndarray, np.ndarray]:
    """The k-mers that occur once in ``seq`` (and hold no N): codes, sorted, and positions."""
    return _once(_kmer_codes(base_codes(seq), k))


def exact_runs(
    read: str,
    ref: str,
    k: int = ANCHOR_K,
    ref_kmers: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[tuple[int, int, int]]:
    """Maximal runs of exact matches seeded by k-mers unique in both sequences:
    (read start, reference start, length), in read order. ``ref_kmers``: the reference's
    :func:`unique_kmers` at the same ``k``, when the caller keeps them."""
    read_kmers = _kmer_codes(base_codes(read), k)
    ref_codes, ref_positions = unique_kmers(ref, k) if ref_kmers is None else ref_kmers
    if not len(ref_codes):
        return []
    i = np.sort(_once(read_kmers)[1])  # read positions of its unique k-mers, in read order
    where = np.minimum(np.searchsorted(ref_codes, read_kmers[i]), len(ref_codes) - 1)
    shared = ref_codes[where] == read_kmers[i]
    i, j = i[shared], ref_positions[where[shared]]
    if not len(i):
        return []
    # a run goes on while the next seed is the next read position on the same diagonal
    starts = np.flatnonzero(np.r_[True, (np.diff(i) != 1) | (np.diff(j - i) != 0)])
    seeds = np.diff(np.r_[starts, len(i)])
    return [(int(a), int(b), int(k + n - 1)) for a, b, n in zip(i[starts], j[starts], seeds)]


def anchors(
    read: str, ref: str, ref_kmers: tuple[np.ndarray, np.ndarray] | None = None
) -> list[tuple[int, int, int]]:
    """The heaviest chain of run cores (runs trimmed by :data:`MARGIN`) that is collinear in
    the read and the reference: (read start, reference start, length)."""
    cores = [
        (a + MARGIN, b + MARGIN, n - 2 * MARGIN)
        for a, b, n in exact_runs(read, ref, ref_kmers=ref_kmers)
        if n - 2 * MARGIN >= MIN_CORE
    ]
    if not cores:
        return []
    best = [n for _, _, n in cores]
    previous = [-1] * len(cores)
    for x, (a, b, n) in enumerate(cores):
        for y in range(x):
            ya, yb, yn = cores[y]
            if ya + yn <= a and yb + yn <= b and best[y] + n > best[x]:
                best[x], previous[x] = best[y] + n, y
    x = int(np.argmax(best))
    chain = []
    while x >= 0:
        chain.append(cores[x])
        x = previous[x]
    return chain[::-1]


def _exact_end(a: str, b: str, r: int, f: int, free_left: bool) -> tuple | None:
    """The block of an end piece whose sides match exactly where they meet the anchor, over
    the shorter side (no N), else None. Its score, every base a match, is the most any
    alignment of the piece can reach, and the one gapless alignment that ends at the anchor
    reaches it: the one optimum, Biopython's."""
    n = min(len(a), len(b))
    x, y = (a[len(a) - n :], b[len(b) - n :]) if free_left else (a[:n], b[:n])
    if x != y or "N" in x:
        return None
    if free_left:
        return (r + len(a) - n, r + len(a), f + len(b) - n, f + len(b))
    return (r, r + n, f, f + n)


def _score(aligner, name: str, old_name: str) -> float:
    """A score of ``aligner`` under Biopython's name for it (renamed in 1.85)."""
    try:
        return float(getattr(aligner, name))
    except AttributeError:
        return float(getattr(aligner, old_name))


class AnchoredTraceback:
    """Biopython's alignment of a read to a reference, aligned piece by piece between anchors.

    Args:
        full: the configured ``PairwiseAligner`` (global mode, free end gaps, N a wildcard)
            whose alignment this reproduces; its scores are copied into the piece aligners.
    """

    def __init__(self, full):
        self.full = full
        self.gap_open = _score(full, "open_internal_gap_score", "internal_open_gap_score")
        self.gap_extend = _score(full, "extend_internal_gap_score", "internal_extend_gap_score")
        self.match, self.mismatch = float(full.match_score), float(full.mismatch_score)
        self._ref_kmers: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # best hits repeat
        # The side-by-side shortcuts (_ungapped_score, _exact_end) need a gap to cost, a
        # mismatch to score under a match, and N to be the wildcard; reads and references
        # come cleaned to upper-case A/C/G/T/N (dna/qc.py), as base_codes reads them.
        if not (self.gap_open < 0 and self.gap_extend <= 0 and self.mismatch < self.match):
            raise ValueError("anchored traceback: gaps must cost, mismatches score under matches")
        if full.wildcard != "N":
            raise ValueError("anchored traceback: N must be the aligner's wildcard")
        # (free left end, free right end) -> aligner: the first piece may start anywhere,
        # the last may end anywhere, an inner one joins two anchors.
        self._pieces = {
            (left, right): self._piece_aligner(left, right)
            for left in (False, True)
            for right in (False, True)
        }

    def _piece_aligner(self, free_left: bool, free_right: bool):
        from Bio.Align import PairwiseAligner

        aligner = PairwiseAligner()
        aligner.mode = "global"
        aligner.match_score = self.full.match_score
        aligner.mismatch_score = self.full.mismatch_score
        aligner.open_gap_score = self.gap_open
        aligner.extend_gap_score = self.gap_extend
        aligner.wildcard = self.full.wildcard
        if free_left:
            aligner.left_gap_score = 0.0
        if free_right:
            aligner.right_gap_score = 0.0
        return aligner

    def aligned(self, read: str, ref: str, score: float) -> tuple[list, list] | None:
        """Gapless blocks ([(start, end)] in the read and in the reference, as Biopython's
        ``Alignment.aligned``), or None when no anchor exists or the pieces do not add up
        to ``score``, the optimum: then the full programme must run."""
        if ref not in self._ref_kmers:
            if len(self._ref_kmers) >= REFERENCES_KEPT:
                self._ref_kmers.clear()
            self._ref_kmers[ref] = unique_kmers(ref)
        chain = anchors(read, ref, self._ref_kmers[ref])
        if not chain:
            return None
        blocks: list[tuple[int, int, int, int]] = []
        total = 0.0
        r, f = 0, 0
        for n, (a, b, length) in enumerate([*chain, (len(read), len(ref), 0)]):
            free_left, free_right = n == 0, n == len(chain)
            piece, piece_score = self._piece(read[r:a], ref[f:b], r, f, free_left, free_right)
            blocks += piece
            total += piece_score
            if length:
                blocks.append((a, a + length, b, b + length))
                total += length * float(self.full.match_score)  # exact matches, no N
            r, f = a + length, b + length
        if abs(total - score) > 1e-6:
            return None
        merged: list[list[int]] = []
        for r0, r1, f0, f1 in blocks:
            if merged and merged[-1][1] == r0 and merged[-1][3] == f0:
                merged[-1][1], merged[-1][3] = r1, f1
            else:
                merged.append([r0, r1, f0, f1])
        return [(m[0], m[1]) for m in merged], [(m[2], m[3]) for m in merged]

    def _ungapped_score(self, a: str, b: str) -> float | None:
        """The score of two equal-length pieces side by side, when no other alignment of
        them scores as much (else None). Between two anchors a gap in one piece needs one in
        the other, so a gapped alignment pairs at most L - 1 bases and opens two gaps: when the
        ungapped score beats that bound, it is the one optimum, and Biopython's alignment."""
        x, y = base_codes(a), base_codes(b)
        called = (x >= 0) & (y >= 0)  # N is the wildcard: 0 against anything
        same = int((called & (x == y)).sum())
        score = same * self.match + (int(called.sum()) - same) * self.mismatch
        bound = (len(a) - 1) * max(self.match, 0.0) + 2 * self.gap_open
        return score if score > bound else None

    def _piece(
        self, a: str, b: str, r: int, f: int, free_left: bool, free_right: bool
    ) -> tuple[list[tuple[int, int, int, int]], float]:
        """Blocks (offset into the whole sequences) and score of one piece."""
        if not a or not b:
            gap = len(a) + len(b)
            if not gap or free_left or free_right:
                return [], 0.0
            return [], self.gap_open + (gap - 1) * self.gap_extend
        if not free_left and not free_right and len(a) == len(b):
            score = self._ungapped_score(a, b)
            if score is not None:
                return [(r, r + len(a), f, f + len(b))], score
        if free_left != free_right:  # the read's first or last piece: one end is an anchor
            block = _exact_end(a, b, r, f, free_left)
            if block is not None:
                return [block], (block[1] - block[0]) * self.match
        alignment = self._pieces[(free_left, free_right)].align(a, b)[0]
        # The path's corners; a step that advances both sequences is a gapless block (what
        # Alignment.aligned computes, without its overhead on many small pieces).
        path = alignment.coordinates.tolist()
        blocks = [
            (r0 + r, r1 + r, f0 + f, f1 + f)
            for r0, r1, f0, f1 in zip(path[0], path[0][1:], path[1], path[1][1:])
            if r1 > r0 and f1 > f0
        ]
        return blocks, float(alignment.score)
