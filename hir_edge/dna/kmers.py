"""K-mer profiles and cosine search over reference barcodes: alignment-free, indel-tolerant.

The count profile of overlapping k-mers (k = 6 by default) hardly changes when a read loses a
base, gains one, has a few errors or is cut short — each error touches at most k of ~650
k-mers — which is why k-mer search is the fast classical stand-in for alignment, and why the
field runtime uses it as evidence beside the learned embeddings. numpy only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from hir_edge.dna.qc import base_codes, clean_read

MAX_K = 8  # 4^8 = 65,536 profile columns: float32 profiles cost 256 kB per reference
_DROP_CLEAN = str.maketrans("", "", "ACGTN")  # what a cleaned read is made of
_CHUNK_ELEMENTS = 1 << 22  # query × reference scores held at once (16 MB of float32)


def clean_sequences(sequences: Sequence[str], what: str) -> list[str]:
    """Clean every sequence to upper-case A/C/G/T/N (``clean_read``), naming the bad one. A
    read already cleaned (by the reader: each read is cleaned once) passes as it is.

    Raises:
        ValueError: "<what> <i>: <problem>" for a non-string, empty or non-DNA sequence, or
            when ``sequences`` is a single string rather than a list of them.
    """
    if isinstance(sequences, (str, bytes)):
        raise ValueError(f"{what}s must be a list of sequences, not one string")
    out = []
    for i, raw in enumerate(sequences):
        if not isinstance(raw, str):
            raise ValueError(f"{what} {i}: expected a DNA string, got {type(raw).__name__}")
        if raw and not raw.translate(_DROP_CLEAN):  # cleaned upstream: one C-speed check
            out.append(raw)
            continue
        try:
            out.append(clean_read(raw)[0])
        except ValueError as exc:
            raise ValueError(f"{what} {i}: {exc}") from None
    return out


def kmer_codes(codes: np.ndarray, k: int) -> np.ndarray:
    """The base-4 number of the k-mer starting at each position of ``codes`` (A=0, C=1, G=2,
    T=3, first base most significant); -1 where the k-mer holds an N."""
    if codes.size < k:
        return np.zeros(0, dtype=np.int64)
    n = codes.size - k + 1
    base = codes.astype(np.int64)
    out = base[:n].copy()
    for shift in range(1, k):  # Horner's rule in place: k passes, no [n, k] window product
        out *= 4
        out += base[shift : shift + n]
    ns = np.concatenate([[0], np.cumsum(codes < 0)])  # Ns before each position
    out[ns[k:] - ns[:n] > 0] = -1
    return out


_PROFILE_ELEMENTS = 2**20  # k-mer counts held at once while profiling (256 sequences at k=6)


def kmer_profiles(sequences: Sequence[str], k: int) -> np.ndarray:
    """[N, 4^k] float32 k-mer counts, L2-normalised; k-mers holding N are skipped.

    A k-mer's column is its base-4 number (:func:`kmer_codes`). A read with no complete k-mer
    (shorter than k, or all N) gets a zero row: cosine 0 to all.
    """
    width = 4**k
    out = np.zeros((len(sequences), width), dtype=np.float32)
    # Many sequences at a time, joined: one k-mer pass and one count for all of them (k-mers
    # across a join are dropped), not one Python step per sequence.
    chunk = max(1, _PROFILE_ELEMENTS // width)
    for first in range(0, len(sequences), chunk):
        part = sequences[first : first + chunk]
        lengths = np.fromiter((len(seq) for seq in part), dtype=np.int64, count=len(part))
        kmers = kmer_codes(base_codes("".join(part)), k)
        row = np.repeat(np.arange(len(part)), lengths)[: len(kmers)]
        inside = np.arange(len(kmers)) + k <= np.cumsum(lengths)[row]
        keep = inside & (kmers >= 0)
        counts = np.bincount(row[keep] * width + kmers[keep], minlength=len(part) * width)
        out[first : first + len(part)] = counts.reshape(len(part), width)
    # Counts are integers: their squares sum exactly, in any order.
    norms = np.sqrt(np.einsum("ij,ij->i", out, out))[:, None]
    np.divide(out, norms, out=out, where=norms > 0)
    return out


def _stable_order(scores: np.ndarray) -> np.ndarray:
    """Column indices of each row, best score first; equal scores keep the lower index first."""
    return np.argsort(-scores, axis=1, kind="stable")


def stable_top(scores: np.ndarray, count: int) -> np.ndarray:
    """The first ``count`` indices of the stable best-first order of a 1-D ``scores`` (equal
    scores: the lower index first), without sorting all of it: the same indices as
    ``np.argsort(-scores, kind="stable")[:count]``."""
    n = len(scores)
    if count >= n:
        return np.argsort(-scores, kind="stable")
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    neg = -scores
    cut = np.partition(neg, count - 1)[count - 1]  # the count-th best score (negated)
    better = np.flatnonzero(neg < cut)
    tied = np.flatnonzero(neg == cut)[: count - len(better)]
    chosen = np.concatenate([better, tied])
    return chosen[np.argsort(neg[chosen], kind="stable")]


class KmerIndex:
    """K-mer cosine search over a reference library of barcodes.

    Args:
        references: reference barcodes (cleaned to A/C/G/T/N here).
        k: k-mer length, 1..8 (6 is the usual choice for ~650-bp COI barcodes: 4,096 columns,
            specific enough to tell species apart, short enough to survive a few errors).

    Raises:
        ValueError: no reference, a bad sequence (naming it), or k out of range.
    """

    def __init__(self, references: Sequence[str], k: int = 6):
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise ValueError(f"k must be an integer in 1..{MAX_K}, got {k!r}")
        self.sequences = clean_sequences(references, "reference")
        if not self.sequences:
            raise ValueError("no reference sequences: the reference library is empty")
        self.k = k
        self.profiles = kmer_profiles(self.sequences, k)

    def __len__(self) -> int:
        return len(self.sequences)

    def _score_chunks(self, queries: list[str]) -> Iterator[tuple[int, np.ndarray]]:
        """(first query row, cosine [chunk, M]) over clean queries, a bounded chunk at a time."""
        size = max(1, _CHUNK_ELEMENTS // max(len(self), 4**self.k))
        for start in range(0, len(queries), size):
            profiles = kmer_profiles(queries[start : start + size], self.k)
            yield start, profiles @ self.profiles.T

    def query(self, sequences: Sequence[str], top: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``top`` most similar references of each query (capped at the library size).

        Returns:
            (reference indices [N, top], cosine [N, top]), best first; ties keep the lower
            reference index first.
        """
        if isinstance(top, bool) or not isinstance(top, int) or top < 1:
            raise ValueError(f"top must be an integer >= 1, got {top!r}")
        queries = clean_sequences(sequences, "query")
        top = min(top, len(self))
        indices = np.zeros((len(queries), top), dtype=np.int64)
        cosine = np.zeros((len(queries), top), dtype=np.float32)
        for start, scores in self._score_chunks(queries):
            order = np.stack([stable_top(row, top) for row in scores])
            rows = slice(start, start + len(scores))
            indices[rows] = order
            cosine[rows] = np.take_along_axis(scores, order, axis=1)
        return indices, cosine

    def _ranked_chunks(self, queries: list[str]) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(start, best-first reference order [c, M], best cosine [c]) per chunk."""
        for start, scores in self._score_chunks(queries):
            order = _stable_order(scores)
            yield start, order, scores[np.arange(len(scores)), order[:, 0]]
