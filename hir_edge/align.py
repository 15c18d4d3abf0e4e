"""Alignment of a read to the reference barcodes, and how far its species is from the best hit.

Biologists trust the best alignment hit, and rightly: on a known species it is close to
perfect even for noisy reads. What it cannot say is whether a 94%-identical hit is a degraded
read of that species or a different species 6% away. COI is a protein-coding gene, and that
decides it: real divergence between species sits mostly at third codon positions (synonymous
changes) and almost never shifts the frame, while sequencing errors fall on all three positions
alike and add single-base indels. So the mismatches of the best hit are split by the codon
position of the reference base and the read's own divergence is estimated as what the errors
cannot explain (:func:`divergence_estimate`).

Search is two-step: the k-mer profile cosine (:mod:`hir_edge.kmers`) shortlists references,
then Biopython's pairwise aligner (a C implementation, already a base dependency) scores each
candidate with free end gaps (a truncated read or reference costs nothing) and N as a wildcard.
numpy + Biopython only: it runs on the field kit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hir_edge.kmers import KmerIndex, clean_sequences
from hir_edge.read_qc import stop_codon_counts

# Share of interspecific COI substitutions at third codon positions. Insects: ~0.8-0.9 (e.g.
# Hebert et al. 2003's barcode analyses; 3rd positions are mostly four-fold degenerate).
# Sequencing errors: 1/3. The estimate below needs only that the two differ clearly.
THIRD_POSITION_SHARE = 0.85


@dataclass(frozen=True)
class Hit:
    """The best reference of one read, with the alignment's counts.

    ``identity`` = matches / (matches + mismatches + gap columns) over the aligned span, N not
    counted. ``divergence`` estimates the share of the span by which the read's species differs
    from the reference's, sequencing errors taken out (:func:`divergence_estimate`).
    """

    reference: int
    identity: float
    span: int
    mismatches_by_position: tuple[int, int, int]
    gaps: int
    divergence: float

    def to_dict(self) -> dict:
        return {
            "identity": round(self.identity, 4),
            "aligned_bases": self.span,
            "mismatches_by_codon_position": list(self.mismatches_by_position),
            "gaps": self.gaps,
            "divergence": round(self.divergence, 4),
        }


def divergence_estimate(mismatches: Sequence[int], span: int, share3: float = THIRD_POSITION_SHARE):
    """Share of ``span`` explained by species divergence rather than by read errors.

    Errors put E mismatches on codon positions 1+2 : 3 as 2/3 : 1/3; divergence D as
    (1 - s) : s with s = ``share3``. From m12 = 2E/3 + (1-s)D and m3 = E/3 + sD:
    D = (m3 - m12/2) / (s - (1-s)/2), clipped at 0.
    """
    m12 = mismatches[0] + mismatches[1]
    m3 = mismatches[2]
    d = (m3 - 0.5 * m12) / (share3 - 0.5 * (1.0 - share3))
    return max(d, 0.0) / max(span, 1)


def coding_frame(seq: str) -> int:
    """Frame (0, 1, 2) of the forward strand with the fewest stop codons (a barcode has none)."""
    return int(np.argmin(stop_codon_counts(seq)[0]))


class ReferenceAligner:
    """Shortlist by k-mer cosine, then align: per read, identities to its shortlisted references.

    Args:
        barcodes: reference barcodes, forward (coding) strand.
        k: k-mer length of the shortlist.
        shortlist: references aligned per read (the k-mer cosine's best).
    """

    def __init__(self, barcodes: Sequence[str], k: int = 6, shortlist: int = 24):
        from Bio.Align import PairwiseAligner

        self._index = KmerIndex(barcodes, k)
        self.references = self._index.sequences
        self.shortlist = max(1, shortlist)
        self._frames = np.array([coding_frame(r) for r in self.references])
        aligner = PairwiseAligner()
        aligner.mode = "global"
        aligner.match_score = 1.0
        aligner.mismatch_score = -1.0
        aligner.open_gap_score = -2.0
        aligner.extend_gap_score = -1.0
        aligner.end_gap_score = 0.0  # free end gaps: truncated reads and references
        aligner.wildcard = "N"
        self._aligner = aligner

    def search(self, reads: Sequence[str]) -> tuple[np.ndarray, list[Hit | None]]:
        """[N, M] alignment identities (0 outside each read's shortlist) and each best hit.

        The identity of a shortlisted reference comes from the alignment score alone (fast):
        with match +1, mismatch -1 and gaps charged, score / span ≈ 2·identity - 1. The best
        one is re-aligned with its traceback for exact counts by codon position.
        """
        reads = clean_sequences(list(reads), "read")
        top, _ = self._index.query(reads, self.shortlist)
        out = np.zeros((len(reads), len(self.references)), dtype=np.float32)
        hits: list[Hit | None] = []
        for i, read in enumerate(reads):
            called = len(read) - read.count("N")
            if called < 3 * self._index.k:
                hits.append(None)
                continue
            best_j, best_id = -1, -1.0
            for j in top[i]:
                ref = self.references[j]
                span = min(called, len(ref))
                identity = 0.5 * (self._aligner.score(read, ref) / span + 1.0)
                out[i, j] = max(identity, 0.0)
                if identity > best_id:
                    best_j, best_id = int(j), identity
            hits.append(self._hit(read, best_j))
        return out, hits

    def _hit(self, read: str, j: int) -> Hit:
        """Exact counts of the best alignment of ``read`` to reference ``j``."""
        ref = self.references[j]
        alignment = self._aligner.align(read, ref)[0]
        frame = int(self._frames[j])
        by_position = [0, 0, 0]
        matches = gaps = 0
        blocks_read, blocks_ref = alignment.aligned
        for (r0, r1), (f0, f1) in zip(blocks_read, blocks_ref):
            a = np.frombuffer(read[r0:r1].encode(), dtype=np.uint8)
            b = np.frombuffer(ref[f0:f1].encode(), dtype=np.uint8)
            called = (a != ord("N")) & (b != ord("N"))
            same = (a == b) & called
            matches += int(same.sum())
            wrong = np.flatnonzero(called & ~same) + f0
            for pos in (wrong - frame) % 3:
                by_position[int(pos)] += 1
        # Gap columns between aligned blocks (end gaps are not counted: truncation is free).
        for side in (blocks_read, blocks_ref):
            gaps += int(sum(max(side[n + 1][0] - side[n][1], 0) for n in range(len(side) - 1)))
        mismatches = sum(by_position)
        span = matches + mismatches + gaps
        return Hit(
            reference=j,
            identity=matches / max(span, 1),
            span=span,
            mismatches_by_position=(by_position[0], by_position[1], by_position[2]),
            gaps=gaps,
            divergence=divergence_estimate(by_position, span),
        )
