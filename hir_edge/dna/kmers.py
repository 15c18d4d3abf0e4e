"""K-mer counts and cosine search over reference barcodes: alignment-free, indel-tolerant.

The count profile of overlapping k-mers (k = 6 by default) hardly changes when a read loses a
base, gains one, has a few errors or is cut short — each error touches at most k of ~650
k-mers — which is why k-mer search is the fast classical stand-in for alignment, and why the
field runtime uses it as evidence beside the learned embeddings. The cosine is computed from
exact integer products of counts (ONNX Runtime's int8 matrix product where the counts fit).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from hir_edge.dna.qc import base_codes, clean_read

MAX_K = 8  # 4^8 = 65,536 profile columns: int8 counts cost 64 kB per reference
_DROP_CLEAN = str.maketrans("", "", "ACGTN")  # what a cleaned read is made of
_CHUNK_ELEMENTS = 1 << 20  # query × reference scores at once (three [chunk, M] arrays, 8 MB each)


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


# k-mer counts held at once while counting: 64 sequences at k=6, 2 MB of int64 that stay in
# cache (more at once spill out of it and count slower)
_COUNT_ELEMENTS = 2**18


def _count_chunks(
    sequences: Sequence[str], k: int, transposed: bool = False
) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, int64 k-mer counts [chunk, 4^k], or [4^k, chunk] ``transposed``) over
    ``sequences``, a bounded chunk at a time; k-mers holding N are skipped."""
    width = 4**k
    # Many sequences at a time, joined: one k-mer pass and one count for all of them (k-mers
    # across a join are dropped), not one Python step per sequence.
    chunk = max(1, _COUNT_ELEMENTS // width)
    for first in range(0, len(sequences), chunk):
        part = sequences[first : first + chunk]
        lengths = np.fromiter((len(seq) for seq in part), dtype=np.int64, count=len(part))
        kmers = kmer_codes(base_codes("".join(part)), k)
        row = np.repeat(np.arange(len(part)), lengths)[: len(kmers)]
        inside = np.arange(len(kmers)) + k <= np.cumsum(lengths)[row]
        keep = inside & (kmers >= 0)
        if transposed:
            where = kmers[keep] * len(part) + row[keep]
            shape = (width, len(part))
        else:
            where = row[keep] * width + kmers[keep]
            shape = (len(part), width)
        yield first, np.bincount(where, minlength=len(part) * width).reshape(shape)


def kmer_counts(
    sequences: Sequence[str], k: int, dtype=np.int32, transposed: bool = False
) -> np.ndarray:
    """[N, 4^k] k-mer counts ([4^k, N] ``transposed``, built so: no copy to transpose); a
    k-mer's column is its base-4 number (:func:`kmer_codes`).

    Raises:
        OverflowError: a count does not fit ``dtype``.
    """
    width = 4**k
    shape = (width, len(sequences)) if transposed else (len(sequences), width)
    out = np.zeros(shape, dtype=dtype)
    limit = np.iinfo(dtype).max
    for first, counts in _count_chunks(sequences, k, transposed):
        if counts.size and counts.max() > limit:
            raise OverflowError(f"a k-mer occurs more than {limit} times in one sequence")
        if transposed:
            out[:, first : first + counts.shape[1]] = counts
        else:
            out[first : first + len(counts)] = counts
    return out


# ONNX Runtime's integer matrix product (MatMulInteger: uint8 reads x int8 references -> int32),
# as a one-node model: ModelProto(ir_version 5, opset 10, graph "kmer_dot" with inputs
# reads [n, kmers] uint8 and references [kmers, m] int8, output shared [n, m] int32).
# tests/test_kmers.py rebuilds it with onnx.helper; the runtime needs no onnx package.
_KMER_DOT_ONNX = bytes.fromhex(
    "080512086869722d656467653a95010a2a0a0572656164730a0a7265666572656e6365731206736861726564"
    "220d4d61744d756c496e746567657212086b6d65725f646f745a1d0a05726561647312140a120802120e0a03"
    "12016e0a0712056b6d6572735a220a0a7265666572656e63657312140a120803120e0a0712056b6d657273"
    "0a0312016d621a0a0673686172656412100a0e0806120a0a0312016e0a0312016d42040a00100a"
)


def _kmer_dot_session(threads: int):
    """The ONNX Runtime session of :data:`_KMER_DOT_ONNX` (``threads`` 0: one per core)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(_KMER_DOT_ONNX, options, providers=["CPUExecutionProvider"])


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


def reference_counts(sequences: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The references' k-mer counts [4^k, M], one column each, and their norms [M] float64.

    int8 for ONNX Runtime's integer product (a quarter of float32's memory, read once per
    batch), float64 when a count passes 127 (a long low-complexity stretch; exact to 2^53).
    """
    try:
        counts = kmer_counts(sequences, k, np.int8, transposed=True)
    except OverflowError:
        counts = kmer_counts(sequences, k, np.int64, transposed=True).astype(float)
    # a sum of squared counts is at most (length - k + 1)^2: int32 is exact (and twice as
    # fast as int64) for sequences under 46,000 bases
    exact = np.int32 if max(map(len, sequences)) < 46_000 else np.int64
    squares = np.einsum(
        "ij,ij->j", counts, counts, dtype=exact if counts.dtype == np.int8 else np.float64
    )
    return counts, np.sqrt(squares.astype(np.float64))


INDEX_FORMAT = 1  # of the kept counts: a new layout gets a new number (and new files)
SPOT_CHECKS = 8  # references recounted when kept counts are read back
KEPT_INDEXES = 8  # libraries whose counts a cache folder keeps (the least recently used go)


def index_key(sequences: Sequence[str], k: int) -> str:
    """What the kept counts of these references are named by: a hash of the sequences, in
    order, k and the version of hir-edge that counted them (another library, order, k or
    counting code is another file)."""
    from hir_edge import __version__

    head = f"hir-edge {__version__} kmer index {INDEX_FORMAT} k={k}\n"
    digest = hashlib.sha256(head.encode())
    digest.update("\n".join(sequences).encode("ascii"))
    return digest.hexdigest()[:32]


def cached_counts(sequences: list[str], k: int, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """:func:`reference_counts`, read from ``folder`` when a run has kept them there
    (:func:`_read_kept`), else counted and kept (:func:`_keep`)."""
    key = index_key(sequences, k)
    path = folder / f"kmer-index-{key}.npz"
    kept = _read_kept(path, key, sequences, k)
    if kept is not None:
        with contextlib.suppress(OSError):
            os.utime(path)  # used now: the last to go when the folder is pruned
        return kept
    counts, norms = reference_counts(sequences, k)
    _keep(path, key, counts, norms)
    return counts, norms


def _is_plain_file(path: Path) -> bool:
    """``path`` is a regular file itself (not a link to one, a FIFO or missing)."""
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def _prune(folder: Path) -> None:
    """Remove all but the :data:`KEPT_INDEXES` most recently used indexes of ``folder`` (each
    is tens of MB: a field kit's disk is small, and a library that comes back is counted
    again)."""
    kept = []
    for path in folder.glob("kmer-index-*.npz"):
        with contextlib.suppress(OSError):
            if _is_plain_file(path):
                kept.append((path.stat().st_mtime, path))
    for _, path in sorted(kept, reverse=True)[KEPT_INDEXES:]:
        with contextlib.suppress(OSError):
            path.unlink()


def _read_kept(
    path: Path, key: str, sequences: list[str], k: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """The counts and norms kept at ``path`` when it is a plain file that reads back whole
    (npz members carry a CRC that reading checks) with this key, these shapes, and the counts
    of :data:`SPOT_CHECKS` references recounted here; else None (counted again). A link or a
    FIFO of that name is no index: it is neither read nor written through."""
    if not _is_plain_file(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as kept:
            counts, norms, stored = kept["counts"], kept["norms"], str(kept["key"])
    except Exception:  # a damaged zip raises more than OSError (NotImplementedError, ...)
        return None
    shape = (4**k, len(sequences))
    if stored != key or counts.shape != shape or norms.shape != shape[1:]:
        return None
    if counts.dtype not in (np.int8, np.float64) or norms.dtype != np.float64:
        return None
    picks = np.unique(np.linspace(0, len(sequences) - 1, SPOT_CHECKS).astype(int))
    fresh, fresh_norms = reference_counts([sequences[i] for i in picks], k)
    same = np.array_equal(counts[:, picks].astype(np.float64), fresh.astype(np.float64))
    if not same or not np.array_equal(norms[picks], fresh_norms):
        return None
    return counts, norms


def _keep(path: Path, key: str, counts: np.ndarray, norms: np.ndarray) -> None:
    """Write the counts to ``path`` whole, then rename them into place (a run that stops
    half-way leaves no half file: :func:`hir_edge.io.atomic_open`), in a folder of the
    user's own. A folder that cannot be written costs the cache, not the run."""
    from hir_edge.io import atomic_open

    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if os.path.lexists(path) and not _is_plain_file(path):
            return  # someone else's link or FIFO: not written through
        with atomic_open(path, "wb") as handle:
            np.savez(handle, counts=counts, norms=norms, key=np.array(key))
        _prune(path.parent)
    except OSError:
        pass  # a read-only or full disk: this run counted, the next counts again


class KmerIndex:
    """K-mer cosine search over a reference library of barcodes.

    Args:
        references: reference barcodes (cleaned to A/C/G/T/N here).
        k: k-mer length, 1..8 (6 is the usual choice for ~650-bp COI barcodes: 4,096 columns,
            specific enough to tell species apart, short enough to survive a few errors).
        threads: ONNX Runtime threads for the product; 1 (``identify``'s worker processes
            already fill the cores), 0 for one per core.
        cache_dir: a folder to keep the references' counts in between runs (None: none), as
            a BLAST database is built once: counting a library's k-mers is most of a one-read
            command's alignment set-up (:func:`cached_counts`).

    The cosine is the exact integer dot product of k-mer counts over their exact norms: ties
    are true ties (the lower index first), whatever the library's size or the CPU.

    Raises:
        ValueError: no reference, a bad sequence (naming it), or k out of range.
    """

    def __init__(
        self,
        references: Sequence[str],
        k: int = 6,
        threads: int = 1,
        cache_dir: str | Path | None = None,
    ):
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise ValueError(f"k must be an integer in 1..{MAX_K}, got {k!r}")
        self.sequences = clean_sequences(references, "reference")
        if not self.sequences:
            raise ValueError("no reference sequences: the reference library is empty")
        self.k = k
        self.threads = threads
        if cache_dir is None:
            counts, norms = reference_counts(self.sequences, k)
        else:
            counts, norms = cached_counts(self.sequences, k, Path(cache_dir))
        self._norms = norms
        self._counts = counts  # [4^k, M]
        # Without VNNI, x86 CPUs add a uint8 x int8 product's neighbouring pairs in int16 with
        # saturation: a read's counts go to ONNX Runtime only while 2 * read * reference
        # counts stay within 32,767 (255 for any library whose counts stay under 65).
        self._read_limit = min(255, 32_767 // (2 * max(int(counts.max(initial=0)), 1)))
        self._session = None  # made on first use (and not pickled)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_session": None}

    def __len__(self) -> int:
        return len(self.sequences)

    def _shared(self, counts: np.ndarray) -> np.ndarray:
        """[n, M] float64 dot products of queries' k-mer ``counts`` (int64) with every
        reference's, exact: uint8 x int8 on ONNX Runtime where the counts fit
        (``_read_limit``), exact int64 over the read's own k-mers for a read that does not, and
        float64 for a float64 library."""
        if self._counts.dtype != np.int8:
            return counts.astype(np.float64) @ self._counts
        fits = counts.max(axis=1, initial=0) <= self._read_limit
        shared = np.empty((len(counts), self._counts.shape[1]), dtype=np.float64)
        if fits.any():
            if self._session is None:
                self._session = _kmer_dot_session(self.threads)
            feed = {"reads": counts[fits].astype(np.uint8), "references": self._counts}
            shared[fits] = self._session.run(None, feed)[0]
        for row in np.flatnonzero(~fits):
            present = np.flatnonzero(counts[row])
            shared[row] = counts[row, present] @ self._counts[present].astype(np.int64)
        return shared

    def _score_chunks(self, queries: list[str]) -> Iterator[tuple[int, np.ndarray]]:
        """(first query row, cosine [chunk, M] float64) over clean queries, a bounded chunk at
        a time."""
        size = max(1, _CHUNK_ELEMENTS // max(len(self), 4**self.k))
        for start in range(0, len(queries), size):
            counts = kmer_counts(queries[start : start + size], self.k, np.int64)
            norms = np.sqrt(np.einsum("ij,ij->i", counts, counts).astype(np.float64))
            shared = self._shared(counts)
            del counts
            outer = norms[:, None] * self._norms[None, :]
            # a zero norm has a zero product: it stays 0, the cosine to anything
            yield start, np.divide(shared, outer, out=shared, where=outer > 0)

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
