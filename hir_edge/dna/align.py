"""Alignment of a read to the reference barcodes, and how far its species is from the best hit.

Biologists trust the best alignment hit, and rightly: on a known species it is close to
perfect even for noisy reads. What it cannot say is whether a 94%-identical hit is a degraded
read of that species or a different species 6% away. Two footprints of evolution tell them
apart: COI is a protein-coding gene, so real divergence between species sits mostly at third
codon positions (synonymous changes) while sequencing errors fall on all three alike; and at
each site the library's species carry only a few bases, which a real difference gives and an
error mostly does not (:mod:`hir_edge.dna.divergence`). The read's own divergence is the
maximum-likelihood split of its mismatches between the two (:func:`divergence_estimate`).

Each hit also carries the barcode gap (``Hit.gap``): how much closer the read is to its best
species than to the next one, which a taxonomist reads beside the identity.

Search is two-step: the k-mer profile cosine (:mod:`hir_edge.dna.kmers`) shortlists references,
at most a few per species so that the nearest other species is aligned too, then each
candidate is scored with free end gaps (a truncated read or reference costs nothing) and N as
a wildcard: by Opal's SIMD aligner (pyopal) when installed, else by Biopython's pairwise
aligner, with the same scores. Only the best hit is aligned base by base, for its counts: on
its diagonal when the read has no indel against it, else by Biopython.
numpy + Biopython (+ pyopal): it runs on the field kit.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from hir_edge.dna.divergence import MIN_ESTIMABLE_IDENTITY, SiteProfile, divergence_estimate
from hir_edge.dna.kmers import KmerIndex, base_codes, clean_sequences
from hir_edge.dna.pairwise import CandidateScorer
from hir_edge.dna.qc import reverse_complement, stop_codon_counts

# A read is aligned only with this many k-mers' worth of called bases (else: no hit).
MIN_KMERS_CALLED = 3
# A read whose best shortlisted hit is not clearly its species (estimated divergence above
# BOLD's 2%) or is far (under 90% identical) is aligned to the whole k-mer candidate list too:
# its nearest relatives may be the 4th or 5th reference of one species, which the diverse
# shortlist leaves out. The cost falls on far reads only (their rate is in identify_bold.md).
# The aligned span a hit's identity is measured over: at least this share of the possible
# overlap (a real read, even a fragment or one with junk ends, aligns far more than half).
MIN_COVERAGE = 0.5
WIDEN_DIVERGENCE = 0.02
WIDEN_IDENTITY = 0.9
SIMD_PASS = 16  # targets Opal scores in one pass at 16 bits (AVX2; 2 passes of 8 on NEON)


@dataclass(frozen=True)
class Hit:
    """The best reference of one read, with the alignment's counts.

    ``identity`` = matches / (matches + mismatches + gap columns) over the aligned span, N not
    counted. ``divergence`` estimates the share of aligned, called sites at which the read's
    species differs from the reference's, sequencing errors taken out
    (:func:`divergence_estimate`).
    ``library_bases``: mismatches where the read has a base that some library species carries
    at that site. ``gap`` is the barcode gap: the best hit's identity minus that of the
    nearest reference of another species (both from alignment scores); None when no other
    species was shortlisted or the references carry no species.
    """

    reference: int
    identity: float
    span: int
    mismatches_by_position: tuple[int, int, int]
    gaps: int
    divergence: float
    gap: float | None = None
    library_bases: int = 0

    def to_dict(self) -> dict:
        return {
            "identity": round(self.identity, 4),
            "aligned_bases": self.span,
            "mismatches_by_codon_position": list(self.mismatches_by_position),
            "mismatches_with_library_bases": self.library_bases,
            "gaps": self.gaps,
            # absent, not a misleading 0, for a hit too far for the estimate to describe
            "divergence": round(self.divergence, 4)
            if self.identity >= MIN_ESTIMABLE_IDENTITY
            else None,
            "barcode_gap": None if self.gap is None else round(self.gap, 4),
        }


def min_called_bases(k: int) -> int:
    """Called bases (A/C/G/T) a read needs to be aligned with k-mers of length ``k``."""
    return MIN_KMERS_CALLED * k


def default_workers() -> int:
    """Alignment processes by default: the CPU cores, at most 8."""
    import os

    return min(os.cpu_count() or 1, 8)


def coding_frame(seq: str) -> int:
    """Frame (0, 1, 2) of the forward strand with the fewest stop codons (a barcode has none)."""
    return int(np.argmin(stop_codon_counts(seq)[0]))


class ReferenceAligner:
    """Shortlist by k-mer cosine, then align: per read, identities to its shortlisted references.

    Args:
        barcodes: reference barcodes, forward (coding) strand.
        k: k-mer length of the shortlist.
        shortlist: references aligned per read (the k-mer cosine's best).
        species: each reference's species (None = not identified to species); with it the
            shortlist holds at most ``per_species`` references of one species (unidentified
            ones count per reference), and hits carry the barcode gap.
        per_species: see ``species``.
        workers: processes aligning reads in parallel (1 = in this process).
        min_parallel: fewer reads than this are aligned in this process.
        widen: a read whose best hit is far (``WIDEN_DIVERGENCE``, ``WIDEN_IDENTITY``) is also
            aligned to the rest of its k-mer candidates (4 × ``shortlist`` with species, one
            species may fill them); reads of known species rarely pay for it.
        kmer_index: build the k-mer index (False in worker processes, which align the
            shortlists ranked by their parent's).
        index_cache: a folder that keeps the k-mer index between runs (KmerIndex).
    """

    def __init__(
        self,
        barcodes: Sequence[str],
        k: int = 6,
        shortlist: int = 24,
        species: Sequence[str | None] | None = None,
        per_species: int = 3,
        workers: int = 1,
        min_parallel: int = 16,
        widen: bool = True,
        kmer_index: bool = True,
        index_cache: Path | None = None,
    ):
        self.workers = max(1, workers)
        self.min_parallel = min_parallel
        self._pool = None
        self.k = k
        # Worker processes align shortlists ranked here: they need no k-mer index of their own.
        self._index = KmerIndex(barcodes, k, cache_dir=index_cache) if kmer_index else None
        self.references = (
            self._index.sequences if self._index else clean_sequences(list(barcodes), "reference")
        )
        self.shortlist = max(1, shortlist)
        if species is not None and len(species) != len(self.references):
            raise ValueError(f"{len(species)} species labels for {len(self.references)} barcodes")
        codes: dict = {}
        for name in species or ():
            if name is not None:
                codes.setdefault(name, len(codes))
        # species code per reference, -1 = not identified to species
        self._species = (
            None
            if species is None
            else np.array([-1 if name is None else codes[name] for name in species], dtype=np.int64)
        )
        self.per_species = max(1, per_species)
        self.widen = widen
        # each reference's coding frame, found when it is first a best hit (-1: not yet)
        self._frames = np.full(len(self.references), -1, dtype=np.int64)
        self._scorer = CandidateScorer(self.references, biopython_aligner)

    @cached_property
    def sites(self) -> SiteProfile:
        """The library's bases per site, built when a best hit first has a mismatch (a run of
        reads identical to their references never needs it: start-up time)."""
        return SiteProfile(self.references, self._species)

    @property
    def _aligner(self):
        """Biopython's aligner, made on first use: the traceback of the best hit."""
        return self._scorer.fallback

    def search(
        self, reads: Sequence[str], exclude: Sequence[np.ndarray | None] | None = None
    ) -> tuple[np.ndarray, list[Hit | None]]:
        """[N, M] alignment identities (0 outside each read's shortlist) and each best hit.

        ``exclude`` (per read, reference indices or None) hides references from that read's
        search, as if the library lacked them: the open-set calibration removes a read's own
        species, genus or family this way.

        The identity of a shortlisted reference comes from the alignment score alone (fast):
        with match +1, mismatch -1 and gaps charged, score / span ≈ 2·identity - 1. The best
        one is re-aligned with its traceback for exact counts by codon position; when it is far
        (``widen``), the rest of the k-mer candidates are aligned too and the best taken. With
        ``workers`` > 1 and enough reads, chunks of reads go to worker processes (the aligner
        holds the GIL, so threads would not help); the answers are the same.
        """
        return self.start_search(reads, exclude)()

    def start_search(
        self, reads: Sequence[str], exclude: Sequence[np.ndarray | None] | None = None
    ) -> Callable[[], tuple[np.ndarray, list[Hit | None]]]:
        """:meth:`search`, started: call the result for its answer. With worker processes the
        reads are aligned while the caller goes on (with the DNA encoder, say); in this
        process they are aligned when the answer is asked for."""
        reads = clean_sequences(list(reads), "read")
        exclude = [None] * len(reads) if exclude is None else list(exclude)
        ranked = self._ranked(reads, exclude)
        if self.workers > 1 and len(reads) >= self.min_parallel:
            size = -(-len(reads) // self.workers)
            pool = self._worker_pool()
            futures = [
                pool.submit(_search_in_worker, (reads[i : i + size], ranked[i : i + size]))
                for i in range(0, len(reads), size)
            ]
            parts = lambda: [f.result() for f in futures]  # noqa: E731
        else:
            parts = lambda: [self._search_rows(reads, ranked)]  # noqa: E731

        def answer() -> tuple[np.ndarray, list[Hit | None]]:
            done = parts()
            rows = [row for part in done for row in part[0]]
            out = np.zeros((len(reads), len(self.references)), dtype=np.float32)
            for i, (candidates, identity) in enumerate(rows):
                out[i, candidates] = identity
            return out, [hit for part in done for hit in part[1]]

        return answer

    def prefers_reverse(self, reads: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per read, whether its reverse complement is the more library-like strand, and
        whether the library tells at all (the two strands' best k-mer cosines differ).

        For reads whose strand the coding model could not call (short ones: a 100-bp window
        has an open frame on both strands): the library's barcodes are on the coding strand.
        """
        reads = clean_sequences(list(reads), "read")
        if not reads:
            return np.zeros(0, dtype=bool), np.zeros(0, dtype=bool)
        _, cosine = self._index.query(reads + [reverse_complement(r) for r in reads], 1)
        forward, reverse = cosine[: len(reads), 0], cosine[len(reads) :, 0]
        return reverse > forward, reverse != forward

    def _ranked(self, reads: list[str], exclude: list[np.ndarray | None]) -> list[np.ndarray]:
        """Per read, the references by k-mer cosine, best first, without its excluded ones:
        as many as the widest search aligns. One matrix product for the whole batch (here,
        not in the workers: it streams every reference profile once per call)."""
        wide = self.shortlist if self._species is None else 4 * self.shortlist
        hidden = max((len(e) for e in exclude if e is not None), default=0)
        top, _ = self._index.query(reads, wide + hidden)
        return [
            (row if e is None else row[~np.isin(row, e)])[:wide] for row, e in zip(top, exclude)
        ]

    def _search_rows(
        self, reads: list[str], ranked_all: list[np.ndarray]
    ) -> tuple[list, list[Hit | None]]:
        """Per read, (shortlisted references, their identities clipped at 0) and the best hit,
        from its k-mer ranking (:meth:`_ranked`)."""
        rows: list = []
        hits: list[Hit | None] = []
        for read, ranked in zip(reads, ranked_all):
            called = len(read) - read.count("N")
            if called < min_called_bases(self.k) or not len(ranked):
                rows.append((np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)))
                hits.append(None)
                continue
            candidates = self._diverse(ranked)
            # Opal scores 16 targets in one SIMD pass as fast as 12: the pass is filled with
            # the first references a widened search would add, and their scores kept for it.
            spare = np.zeros(0, dtype=np.int64)
            if self.widen and self._scorer.simd:
                spare = ranked[~np.isin(ranked, candidates)][: -len(candidates) % SIMD_PASS]
            scores = self._scorer.scores(read, np.concatenate([candidates, spare]))
            scores, spare_scores = scores[: len(candidates)], scores[len(candidates) :]
            identity = self._identities(called, candidates, scores)
            best = self._best(candidates, identity)
            hit = self._hit(read, int(candidates[best]), scores[best])
            far = hit.identity < WIDEN_IDENTITY or hit.divergence > WIDEN_DIVERGENCE
            if self.widen and far:
                extra = ranked[~np.isin(ranked, candidates)]  # begins with the spare
                more = np.concatenate(
                    [spare_scores, self._scorer.scores(read, extra[len(spare) :])]
                )
                candidates = np.concatenate([candidates, extra])
                scores = np.concatenate([scores, more])
                identity = np.concatenate([identity, self._identities(called, extra, more)])
                nearest = self._best(candidates, identity)
                if nearest != best:
                    best = nearest
                    hit = self._hit(read, int(candidates[best]), scores[best])
            rows.append((candidates, np.maximum(identity, 0.0).astype(np.float32)))
            hits.append(replace(hit, gap=self._gap(candidates, identity, best)))
        return rows, hits

    def _identities(self, called: int, candidates: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Identity of a read with ``called`` bases to each candidate, from its alignment
        score alone."""
        spans = np.minimum(called, [len(self.references[j]) for j in candidates])
        return 0.5 * (scores / spans + 1.0)

    def _worker_pool(self):
        """Worker processes, each holding its own copy of this aligner (started once)."""
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            species = None
            if self._species is not None:
                species = [None if c < 0 else int(c) for c in self._species]
            settings = {
                "barcodes": self.references,
                "k": self.k,
                "kmer_index": False,
                "shortlist": self.shortlist,
                "species": species,
                "per_species": self.per_species,
                "widen": self.widen,
            }
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(settings, os.getpid()),
            )
        return self._pool

    def close(self) -> None:
        """Stop the worker processes, if any were started."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _best(self, candidates: np.ndarray, identity: np.ndarray) -> int:
        """The most identical candidate; among exact ties, the first identified to species (a
        reference labelled only to family says less about the read than its twin that is)."""
        tied = np.flatnonzero(identity >= identity.max())
        if self._species is not None and len(tied) > 1:
            named = tied[self._species[candidates[tied]] >= 0]
            if len(named):
                return int(named[0])
        return int(tied[0])

    def _diverse(self, ranked: np.ndarray) -> np.ndarray:
        """The first ``shortlist`` of ``ranked`` with at most ``per_species`` of one species."""
        if self._species is None:
            return ranked[: self.shortlist]
        kept, seen = [], Counter()
        for j in ranked:
            code = int(self._species[j])
            if code >= 0 and seen[code] >= self.per_species:
                continue
            seen[code] += 1
            kept.append(j)
            if len(kept) == self.shortlist:
                break
        return np.array(kept, dtype=np.int64)

    def _gap(self, candidates: np.ndarray, identity: np.ndarray, best: int) -> float | None:
        """Identity of ``candidates[best]`` minus that of the nearest other species (None
        without one), from the candidates' ``identity``.

        The best hit's species is that of the best reference identified to species; a hit on
        an unidentified reference is thus measured against the species it most resembles.
        """
        if self._species is None:
            return None
        codes = self._species[candidates]
        named = codes >= 0
        if not named.any():
            return None
        own = codes[named][np.argmax(identity[named])]
        others = named & (codes != own)
        if not others.any():
            return None
        return float(identity[best] - identity[others].max())

    def _hit(self, read: str, j: int, score: float) -> Hit:
        """Exact counts of the best alignment of ``read`` to reference ``j`` (whose alignment
        score is ``score``)."""
        ref = self.references[j]
        blocks_read, blocks_ref = self._scorer.blocks(read, j, score)
        if self._frames[j] < 0:
            self._frames[j] = coding_frame(ref)
        frame = int(self._frames[j])
        called_by_position = np.zeros(3, dtype=np.int64)
        wrong_at, wrong_bases = [], []
        matches = gaps = 0
        for (r0, r1), (f0, f1) in zip(blocks_read, blocks_ref):
            a = base_codes(read[r0:r1])
            b = base_codes(ref[f0:f1])
            called = (a >= 0) & (b >= 0)
            same = (a == b) & called
            matches += int(same.sum())
            called_by_position += np.bincount(
                (np.flatnonzero(called) + f0 - frame) % 3, minlength=3
            )
            wrong = np.flatnonzero(called & ~same)
            wrong_at.append(wrong + f0)
            wrong_bases.append(a[wrong])
        # Gap columns between aligned blocks (end gaps are not counted: truncation is free).
        for side in (blocks_read, blocks_ref):
            gaps += int(sum(max(side[n + 1][0] - side[n][1], 0) for n in range(len(side) - 1)))
        at = np.concatenate(wrong_at) if wrong_at else np.zeros(0, dtype=np.int64)
        bases = np.concatenate(wrong_bases) if wrong_bases else np.zeros(0, dtype=np.int64)
        codon_position = (at - frame) % 3
        by_position = np.bincount(codon_position, minlength=3)
        if len(at):
            shares, in_library = self.sites.shares(j, at, bases)
        else:
            shares, in_library = np.zeros(0), np.zeros(0, dtype=bool)
        third_called = int(called_by_position[2])
        span = matches + len(at) + gaps
        # Free end gaps let a read of nothing in the library align a handful of bases
        # perfectly ("100% identical"). The identity is therefore taken over
        # at least half of the overlap the read and reference could have.
        called = len(read) - read.count("N")
        floor = MIN_COVERAGE * min(called, len(ref) - ref.count("N"))
        return Hit(
            reference=j,
            identity=matches / max(span, floor, 1),
            span=span,
            mismatches_by_position=(int(by_position[0]), int(by_position[1]), int(by_position[2])),
            gaps=gaps,
            divergence=divergence_estimate(
                (third_called, int(called_by_position.sum()) - third_called),
                codon_position == 2,
                shares,
            ),
            library_bases=int(in_library.sum()),
        )


_WORKER_ALIGNER: ReferenceAligner | None = None


def biopython_aligner():
    """The alignment every score and traceback here reproduces: global, match +1, mismatch
    -1, a gap of length L costing 2 + (L - 1), free end gaps (truncated reads and
    references), N a wildcard scoring 0."""
    from Bio.Align import PairwiseAligner

    aligner = PairwiseAligner()
    aligner.mode = "global"
    aligner.match_score = 1.0
    aligner.mismatch_score = -1.0
    aligner.open_gap_score = -2.0
    aligner.extend_gap_score = -1.0
    aligner.end_gap_score = 0.0  # free end gaps: truncated reads and references
    aligner.wildcard = "N"
    return aligner


PARENT_POLL_S = 1.0  # how often a worker checks that the command it serves is still there


def _start_worker(settings: dict, parent: int) -> None:
    global _WORKER_ALIGNER
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops its workers on Ctrl-C
    _exit_with_parent(parent)
    _WORKER_ALIGNER = ReferenceAligner(**settings)


def _exit_with_parent(parent: int) -> None:
    """End this worker when ``parent`` (the process that started the pool) is gone. A killed
    ``identify`` (SIGKILL, a watchdog, an out-of-memory kill) cannot shut its pool down, and its
    idle workers would otherwise live on, each holding a copy of the library."""
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _search_in_worker(chunk: tuple[list[str], list]) -> tuple[list, list[Hit | None]]:
    assert _WORKER_ALIGNER is not None
    return _WORKER_ALIGNER._search_rows(*chunk)
