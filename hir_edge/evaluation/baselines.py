"""Classical DNA baselines: best hit in a reference library, by alignment or by k-mer cosine.

Biologists identify a COI barcode by searching a reference library (BOLD's ID engine, BLAST)
and taking the name of the best hit. That is the bar the DNA branch must clear, so both
searches are here, reporting the same per-rank Top-1/Top-5 and Global figures as the learned
models (``hir_edge.evaluation.protocol``):

* ``KmerIndex`` / ``kmer_knn``: cosine between L2-normalised k-mer count profiles, the fast
  alignment-free variant (one matrix product per query chunk);
* ``AlignmentIndex`` / ``alignment_predict``: edit-distance identity with edlib, on the
  ``prefilter`` references most similar by k-mer cosine, as BLAST-like tools seed before they
  align.

At rank l a query takes the label of its best reference *labelled at l*. Top-k lists the k
best **distinct taxa** at each rank, in the order their best reference appears in the ranked
references. The best-hit identity is also the simplest novelty signal: in COI barcoding a
best hit below ~97–98% identity (2–3% divergence) conventionally means "species not in the
library" (``SPECIES_IDENTITY``).

numpy only at import; edlib is imported when an ``AlignmentIndex`` is built
(``pip install 'hir-edge[baselines]'``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from hir_edge.dna.kmers import KmerIndex, _stable_order, clean_sequences
from hir_edge.evaluation.protocol import GLOBAL_DEFINITION, TopKResult
from hir_edge.taxonomy import RANKS

# Species threshold by convention, not by law: Hebert et al. 2003 (Proc. R. Soc. B 270:313)
# proposed ~3% COI divergence between animal species, BOLD's BIN algorithm clusters at 2.2%
# (Ratnasingham & Hebert 2013, PLoS ONE 8:e66213), so a best hit under 97–98% identity is
# read as "species absent from the library". Intra- and interspecific distances overlap in
# many genera, which is why this is a flag, not a decision.
SPECIES_IDENTITY = 0.97
MODES = ("HW", "NW")
INSTALL_HINT = "pip install 'hir-edge[baselines]'"
# N in a read is "any base": it never counts against a reference. edlib's equalities are
# symmetric, so references carry their N as "n", which only a query N matches: a reference's
# run of N (BOLD records hold runs of up to ~300) would otherwise be a free perfect match for
# any short read aligned into it.
_REF_N = "n"
_N_EQUALITIES = [("N", base) for base in "ACGT" + _REF_N]


def _edlib():
    try:
        import edlib
    except ImportError:
        raise ImportError(
            f"the alignment baseline needs edlib, which is not installed; run {INSTALL_HINT}"
        ) from None
    return edlib


class AlignmentIndex:
    """Best hit by edit-distance identity (edlib), on k-mer-prefiltered candidates.

    identity = 1 − edit distance / query length. An 'N' in the query matches any base, so
    masked positions count as matches: an N-rich read scores high against everything, and
    its ``ReadQC.n_fraction`` should be checked before its identity is trusted as a novelty
    signal. An 'N' in a reference matches only a query 'N' (an unknown reference base is no
    evidence for the read), so a reference's N run cannot attract unrelated short reads.

    Modes:
        ``"HW"`` (infix, default): the whole query aligned anywhere inside the reference, the
            reference's unaligned ends free. Right for field reads: fragments, truncated
            reads, references longer than the read (primer overhangs, full-length barcodes).
            A query *longer* than its reference pays for the overhang.
        ``"NW"`` (global): both sequences end to end. Right only when queries and references
            span the same trimmed region; a 150-bp fragment of a 650-bp reference costs 500
            edits there, so its identity can go negative.

    Args:
        references: reference barcodes (cleaned to A/C/G/T/N here), on the coding strand like
            the queries (``read_sequences(..., orient=True)`` puts them there).
        prefilter: align each query only to its ``prefilter`` most k-mer-similar references
            (what BLAST-like tools do); ``None`` aligns to all of them (exact, slow: ~50 µs per
            pair of 600-bp barcodes). k-mer cosine favours references of about the query's
            length, so short fragments need a larger prefilter than full barcodes.
        k: k-mer length of the prefilter.
        mode: ``"HW"`` or ``"NW"`` (above).

    Raises:
        ImportError: edlib is missing (the message gives the install command).
        ValueError: no reference, a bad sequence, or a bad setting.
    """

    def __init__(
        self,
        references: Sequence[str],
        prefilter: int | None = 50,
        k: int = 6,
        mode: str = "HW",
    ):
        self._align = _edlib().align
        if mode not in MODES:
            raise ValueError(f"unknown alignment mode {mode!r}; choose HW (infix) or NW (global)")
        if prefilter is not None and (
            isinstance(prefilter, bool) or not isinstance(prefilter, int) or prefilter < 1
        ):
            raise ValueError(f"prefilter must be an integer >= 1 or None, got {prefilter!r}")
        self.kmers = KmerIndex(references, k=k)
        self.prefilter = prefilter
        self.mode = mode
        self._targets = [seq.replace("N", _REF_N) for seq in self.kmers.sequences]

    @property
    def sequences(self) -> list[str]:
        return self.kmers.sequences

    def __len__(self) -> int:
        return len(self.kmers)

    def identities(self, query: str, candidates: np.ndarray) -> np.ndarray:
        """Identity of one clean query against each candidate reference (float64)."""
        distances = [
            self._align(
                query,
                self._targets[j],
                mode=self.mode,
                task="distance",
                additionalEqualities=_N_EQUALITIES,
            )["editDistance"]
            for j in candidates
        ]
        return 1.0 - np.asarray(distances, dtype=np.float64) / len(query)

    def _ranked_chunks(self, queries: list[str]) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(start, reference order [c, M], best identity [c]) per chunk.

        The aligned candidates come first, by identity, then k-mer cosine, then index; the
        rest follow in k-mer order (they only matter to a top-k that runs past the taxa of
        the aligned candidates).
        """
        n_candidates = len(self) if self.prefilter is None else min(self.prefilter, len(self))
        for start, scores in self.kmers._score_chunks(queries):
            order = _stable_order(scores)
            best = np.empty(len(scores))
            for row, cosine_order in enumerate(order):
                candidates = cosine_order[:n_candidates]
                identity = self.identities(queries[start + row], candidates)
                # cosine order is already (cosine desc, index asc): a stable sort keeps it.
                ranked = np.argsort(-identity, kind="stable")
                order[row, :n_candidates] = candidates[ranked]
                best[row] = identity[ranked[0]]
            yield start, order, best

    def best_hits(self, sequences: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The best-identity reference of each query.

        Ties go to the higher k-mer cosine, then the lower reference index.

        Returns:
            (reference indices [N] int64, identity [N] float64).
        """
        queries = clean_sequences(sequences, "query")
        indices = np.zeros(len(queries), dtype=np.int64)
        identity = np.zeros(len(queries))
        for start, order, best in self._ranked_chunks(queries):
            indices[start : start + len(order)] = order[:, 0]
            identity[start : start + len(order)] = best
        return indices, identity


@dataclass
class BaselinePrediction:
    """What a baseline says about each query, enough for the per-rank tables.

    Attributes:
        labels: [N, L] predicted id per rank (the best reference labelled at that rank, or
            the k-neighbour vote); -1 where no reference is labelled at the rank.
        ranked: [N, L, top] the best distinct taxa per rank, best first (-1 pads).
        best_index: [N] the best reference overall.
        best_score: [N] its identity (alignment) or cosine (k-mer).
        seconds: wall time of the search, for throughput.
    """

    labels: np.ndarray
    ranked: np.ndarray
    best_index: np.ndarray
    best_score: np.ndarray
    seconds: float

    @property
    def queries_per_second(self) -> float:
        return len(self.labels) / self.seconds if self.seconds > 0 else float("inf")

    def novel(self, threshold: float = SPECIES_IDENTITY) -> np.ndarray:
        """[N] True where the best hit is below ``threshold``: the species may be absent.

        The default is the COI identity convention, for the alignment baseline; the k-mer
        baseline's score is a cosine and needs a threshold of its own.
        """
        return self.best_score < threshold


@dataclass(frozen=True)
class _RankGroups:
    """The references labelled at one rank, grouped by label for ``reduceat``."""

    members: np.ndarray  # reference indices, sorted by label
    starts: np.ndarray  # first position of each label's run in ``members``
    taxa: np.ndarray  # the label of each run


def _check_labels(ref_labels: np.ndarray, n_refs: int) -> np.ndarray:
    labels = np.asarray(ref_labels)
    if labels.ndim != 2 or labels.shape[0] != n_refs:
        raise ValueError(
            f"ref_labels must be [references, ranks] = [{n_refs}, L], got shape {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"ref_labels must hold integer ids (-1 = missing), got {labels.dtype}")
    return labels.astype(np.int64)


def _rank_groups(labels: np.ndarray) -> list[_RankGroups]:
    groups = []
    for level in range(labels.shape[1]):
        labelled = np.flatnonzero(labels[:, level] >= 0)
        members = labelled[np.argsort(labels[labelled, level], kind="stable")]
        sorted_labels = labels[members, level]
        starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
        groups.append(_RankGroups(members, starts, sorted_labels[starts]))
    return groups


def _taxa_from_order(
    order: np.ndarray, groups: list[_RankGroups], top: int, k_neighbours: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-rank prediction [c, L] and best distinct taxa [c, L, top] from a reference order.

    A taxon ranks where its first (best) reference appears. With ``k_neighbours`` > 1 the
    prediction is the most common taxon among the k best references labelled at the rank
    (a tie goes to the taxon whose best reference ranks first), and it leads the top list.
    """
    c, m = order.shape
    position = np.empty_like(order)
    position[np.arange(c)[:, None], order] = np.arange(m)
    labels = np.full((c, len(groups)), -1, dtype=np.int64)
    ranked = np.full((c, len(groups), top), -1, dtype=np.int64)
    for level, g in enumerate(groups):
        if g.members.size == 0:
            continue
        pos = position[:, g.members]
        first = np.minimum.reduceat(pos, g.starts, axis=1)  # [c, taxa]
        if k_neighbours == 1:
            winner = first.argmin(axis=1)
        else:
            kk = min(k_neighbours, pos.shape[1]) - 1
            within = pos <= np.partition(pos, kk, axis=1)[:, [kk]]
            votes = np.add.reduceat(within.astype(np.int64), g.starts, axis=1)
            winner = (votes * (m + 1) - first).argmax(axis=1)
            first[np.arange(c), winner] = -1
        labels[:, level] = g.taxa[winner]
        best = np.argsort(first, axis=1, kind="stable")[:, :top]
        ranked[:, level, : best.shape[1]] = g.taxa[best]
    return labels, ranked


def _predict(
    index: KmerIndex | AlignmentIndex,
    sequences: Sequence[str],
    ref_labels: np.ndarray,
    k_neighbours: int,
    top: int,
) -> BaselinePrediction:
    for name, value in (("k_neighbours", k_neighbours), ("top", top)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    groups = _rank_groups(_check_labels(ref_labels, len(index)))
    start_time = time.perf_counter()
    queries = clean_sequences(sequences, "query")
    n = len(queries)
    labels = np.full((n, len(groups)), -1, dtype=np.int64)
    ranked = np.full((n, len(groups), top), -1, dtype=np.int64)
    best_index = np.zeros(n, dtype=np.int64)
    best_score = np.zeros(n)
    for start, order, best in index._ranked_chunks(queries):
        rows = slice(start, start + len(order))
        labels[rows], ranked[rows] = _taxa_from_order(order, groups, top, k_neighbours)
        best_index[rows] = order[:, 0]
        best_score[rows] = best
    seconds = time.perf_counter() - start_time
    return BaselinePrediction(labels, ranked, best_index, best_score, seconds)


def kmer_predict(
    sequences: Sequence[str],
    index: KmerIndex,
    ref_labels: np.ndarray,
    k_neighbours: int = 1,
    top: int = 5,
) -> BaselinePrediction:
    """K-mer cosine nearest-neighbour identification, with top-``top`` distinct taxa per rank.

    Args:
        sequences: query reads.
        index: the reference library.
        ref_labels: [M, L] label ids of the references (-1 = not labelled at that rank).
        k_neighbours: vote among this many nearest references labelled at each rank.
        top: how many distinct taxa to list per rank.
    """
    return _predict(index, sequences, ref_labels, k_neighbours, top)


def kmer_knn(
    sequences: Sequence[str],
    index: KmerIndex,
    ref_labels: np.ndarray,
    k_neighbours: int = 1,
) -> np.ndarray:
    """[N, L] labels: at rank l, the nearest reference labelled at l (or the k-neighbour vote)."""
    return kmer_predict(sequences, index, ref_labels, k_neighbours, top=1).labels


def alignment_predict(
    sequences: Sequence[str],
    index: AlignmentIndex,
    ref_labels: np.ndarray,
    top: int = 5,
) -> BaselinePrediction:
    """Best-hit identification by alignment identity, as BOLD's ID engine or BLAST would.

    At rank l the prediction is the best-identity reference labelled at l; ``best_score`` is
    the best hit's identity (compare it with ``SPECIES_IDENTITY`` to flag a novel species).

    Args:
        sequences: query reads, on the coding strand.
        index: the reference library.
        ref_labels: [M, L] label ids of the references (-1 = not labelled at that rank).
        top: how many distinct taxa to list per rank.
    """
    return _predict(index, sequences, ref_labels, 1, top)


def per_species_split(
    species: Sequence[str], test_fraction: float = 0.3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Reference/query split within each species, so every query's species is in the library.

    Each species' records are shuffled by one generator seeded with ``seed`` (species taken in
    sorted order) and round(test_fraction · n) of them become queries, always leaving one in
    the reference set.

    Returns:
        (reference indices, query indices), each sorted.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(species):
        groups.setdefault(name, []).append(i)
    rng = np.random.default_rng(seed)
    train: list[int] = []
    test: list[int] = []
    for name in sorted(groups):
        members = rng.permutation(groups[name])
        n_test = min(round(test_fraction * len(members)), len(members) - 1)
        test.extend(members[:n_test].tolist())
        train.extend(members[n_test:].tolist())
    return np.sort(np.asarray(train, dtype=np.int64)), np.sort(np.asarray(test, dtype=np.int64))


def _check_truth(pred: np.ndarray, truth: np.ndarray, ranks: Sequence[str]) -> None:
    if pred.shape[:2] != truth.shape or truth.ndim != 2 or truth.shape[1] != len(ranks):
        raise ValueError(
            f"predictions {pred.shape} and truth {truth.shape} must both be [N, {len(ranks)}] "
            f"for ranks {', '.join(ranks)}"
        )


def per_rank_accuracy(
    pred: np.ndarray, truth: np.ndarray, ranks: Sequence[str] = RANKS
) -> dict[str, float]:
    """Top-1 accuracy (%) per rank over the specimens labelled there, and "global".

    Global as in the learned models' reports: correct at every rank where the specimen is
    labelled, over the specimens labelled at one rank or more (``GLOBAL_DEFINITION``).
    NaN where no specimen is labelled.
    """
    pred, truth = np.asarray(pred), np.asarray(truth)
    _check_truth(pred, truth, ranks)
    result = _topk(pred[:, :, None], truth, ranks, (1,))
    return {rank: acc[1] for rank, acc in result.per_rank.items()}


def _topk(
    ranked: np.ndarray, truth: np.ndarray, ranks: Sequence[str], ks: Sequence[int]
) -> TopKResult:
    result = TopKResult(tuple(sorted(set(ks))))
    labelled = truth >= 0
    hit = ranked == truth[:, :, None]  # [N, L, top]; -1 pads never match a labelled truth
    for level, rank in enumerate(ranks):
        n = int(labelled[:, level].sum())
        result.counts[rank] = n
        result.per_rank[rank] = {
            k: 100.0 * float(hit[labelled[:, level], level, :k].any(axis=1).mean())
            if n
            else float("nan")
            for k in result.ks
        }
    any_label = labelled.any(axis=1)
    result.counts["global"] = int(any_label.sum())
    result.per_rank["global"] = {}
    for k in result.ks:
        ok = np.where(labelled, hit[:, :, :k].any(axis=2), True).all(axis=1)
        result.per_rank["global"][k] = (
            100.0 * float(ok[any_label].mean()) if any_label.any() else float("nan")
        )
    return result


def topk_accuracy(
    ranked: np.ndarray,
    truth: np.ndarray,
    ranks: Sequence[str] = RANKS,
    ks: Sequence[int] = (1, 5),
) -> TopKResult:
    """Top-k accuracy per rank and Global from a baseline's distinct-taxa lists.

    Args:
        ranked: [N, L, top] best distinct taxa per rank (``BaselinePrediction.ranked``).
        truth: [N, L] true ids (-1 = not labelled at that rank).
        ranks: rank names, coarse to fine.
        ks: the k of top-k (each <= top).

    Returns:
        The same ``TopKResult`` the learned models report (Global: ``GLOBAL_DEFINITION``).
    """
    ranked, truth = np.asarray(ranked), np.asarray(truth)
    _check_truth(ranked, truth, ranks)
    if ranked.ndim != 3 or max(ks) > ranked.shape[2]:
        raise ValueError(
            f"top-{max(ks)} needs ranked lists of at least {max(ks)} taxa, got shape {ranked.shape}"
        )
    return _topk(ranked, truth, ranks, ks)


__all__ = [
    "GLOBAL_DEFINITION",
    "INSTALL_HINT",
    "MODES",
    "SPECIES_IDENTITY",
    "AlignmentIndex",
    "BaselinePrediction",
    "KmerIndex",
    "alignment_predict",
    "clean_sequences",
    "kmer_knn",
    "kmer_predict",
    "per_rank_accuracy",
    "per_species_split",
    "topk_accuracy",
]
