"""How far a read's species is from its best hit's: the library's bases per site, the
maximum-likelihood divergence estimate and the novel-species rule.

A read that differs from its best reference can differ because its species does or because
the read has errors. Evolution leaves a footprint errors do not: at a given COI site the
species of a library carry only a few of the four bases (third positions of insect COI are
mostly A or T), and a real difference between species almost always gives one of those
bases. A sequencing error gives any base. So each mismatch is weighed by
how often the library's species carry the read's base at that site (:meth:`SiteProfile.shares`).

Sites are columns of one anchor barcode (the longest species representative). Each reference
is placed on the anchor by the diagonal of shared k-mers, nearest shared k-mer first: COI
barcodes are colinear and rarely carry indels, so numpy does it without aligning, in a
fraction of the time pairwise alignments to the anchor take, and without the codon-frame
breaks such alignments make. Each species counts once per site (its best-covered reference),
so a species with many records does not outvote the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from hir_edge.dna.kmers import base_codes, kmer_codes

if TYPE_CHECKING:
    from hir_edge.dna.align import Hit

# Share of interspecific COI substitutions at third codon positions. Insects: ~0.8-0.9 (e.g.
# Hebert et al. 2003's barcode analyses; 3rd positions are mostly four-fold degenerate).
# Sequencing errors: 1/3. The estimate below needs only that the two differ clearly.
THIRD_POSITION_SHARE = 0.85
# Below this identity to its best hit a read has no relative in the library (or is not COI):
# its mismatches are beyond what the error-plus-divergence model (rates up to 0.3) describes,
# so no divergence is reported for it (the novelty rule's identity floor is the same 80%).
MIN_ESTIMABLE_IDENTITY = 0.8
# Pseudo-count per base and site: with few species (or a site they all share) a mismatch's
# share stays near 1/3, the error model's, and so carries no evidence either way.
PSEUDOCOUNT = 0.5
# Largest shift of a reference against the anchor that is taken as an indel (bases).
MAX_SHIFT = 30


class SiteProfile:
    """Base counts per anchor site over the species of a reference library.

    Args:
        references: the library's barcodes (forward strand, cleaned to A/C/G/T/N).
        species: a species code per reference (-1 = not identified to species), or None to
            count every reference as its own species (as when none is identified to species).
        k: k-mer length used to place references on the anchor (8: specific within ~650 bp,
            and between barcodes 25% apart about one 8-mer in ten is shared, 0.75^8).
    """

    def __init__(self, references: Sequence[str], species: Sequence[int] | None, k: int = 8):
        self.references = list(references)
        self.k = k
        called = np.array([len(r) - r.count("N") for r in self.references])
        best: dict[int, int] = {}
        for j, code in enumerate(species if species is not None else ()):
            if code >= 0 and (code not in best or called[j] > called[best[code]]):
                best[code] = j
        # no species at all (a library named to genus, say): each reference counts once
        representatives = sorted(best.values()) if best else list(range(len(self.references)))
        anchor = max(representatives, key=lambda j: called[j], default=None)
        self.anchor = "" if anchor is None else self.references[anchor]
        kmers = kmer_codes(base_codes(self.anchor), k)
        values, first, counts = np.unique(kmers, return_index=True, return_counts=True)
        unique = (counts == 1) & (values >= 0)  # a repeated k-mer would place ambiguously
        self._anchor_kmers = values[unique]
        self._anchor_starts = first[unique]
        self.counts = np.zeros((len(self.anchor), 4))
        for j in representatives:
            columns = self._place(self.references[j])
            codes = base_codes(self.references[j])
            ok = (columns >= 0) & (codes >= 0)
            np.add.at(self.counts, (columns[ok], codes[ok]), 1.0)
        self.species_counted = len(representatives)
        self._columns: dict[int, np.ndarray] = {}  # int32: 4 bytes per base and reference

    def _place(self, seq: str) -> np.ndarray:
        """Anchor column of each position of ``seq`` (-1 where it cannot be placed).

        Each shared k-mer votes for a diagonal (anchor start - sequence start). The most voted
        diagonal is trusted, and those near it with a tenth of its votes (an indel moves the
        diagonal where it happens); each position takes the diagonal of the nearest trusted
        k-mer.
        """
        out = np.full(len(seq), -1, dtype=np.int64)
        kmers = kmer_codes(base_codes(seq), self.k)
        if not len(kmers) or not len(self._anchor_kmers):
            return out
        where = np.searchsorted(self._anchor_kmers, kmers)
        where = np.minimum(where, len(self._anchor_kmers) - 1)
        shared = (self._anchor_kmers[where] == kmers) & (kmers >= 0)
        starts = np.flatnonzero(shared)
        diagonals = self._anchor_starts[where[shared]] - starts
        values, votes = np.unique(diagonals, return_counts=True)
        if not len(values):
            return out
        main = values[np.argmax(votes)]
        # An indel shifts the diagonal by a few bases; a chance 8-mer lands anywhere.
        keep = (votes >= max(2, 0.1 * votes.max())) & (np.abs(values - main) <= MAX_SHIFT)
        trusted = np.isin(diagonals, values[keep])
        starts, diagonals = starts[trusted], diagonals[trusted]
        if not len(starts):
            return out
        positions = np.arange(len(seq))
        centres = starts + self.k // 2
        right = np.clip(np.searchsorted(centres, positions), 0, len(centres) - 1)
        left = np.clip(right - 1, 0, len(centres) - 1)
        nearer = np.where(
            np.abs(centres[left] - positions) <= np.abs(centres[right] - positions), left, right
        )
        columns = positions + diagonals[nearer]
        valid = (columns >= 0) & (columns < len(self.anchor))
        out[valid] = columns[valid]
        return out

    def columns(self, j: int) -> np.ndarray:
        """Anchor column of each position of reference ``j`` (cached: hits repeat)."""
        if j not in self._columns:
            self._columns[j] = self._place(self.references[j]).astype(np.int32)
        return self._columns[j]

    def shares(
        self, j: int, positions: np.ndarray, read_bases: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per mismatch of a read with reference ``j``: the share of the library's species
        differing from the reference's base that carry the read's base there, and whether any
        species carries it.

        ``positions`` are positions in reference ``j``; ``read_bases`` the read's base codes
        (0..3) opposite them. Unplaced sites give 1/3 (no evidence) and False.
        """
        if not len(self.counts):  # nothing could be placed: no evidence either way
            return np.full(len(positions), 1.0 / 3.0), np.zeros(len(positions), dtype=bool)
        columns = self.columns(j)[positions]
        ref_bases = base_codes(self.references[j])[positions]
        placed = (columns >= 0) & (ref_bases >= 0) & (read_bases >= 0)
        counts = self.counts[np.maximum(columns, 0)]
        rows = np.arange(len(positions))
        theirs = counts[rows, np.maximum(read_bases, 0)]
        others = counts.sum(axis=1) - counts[rows, np.maximum(ref_bases, 0)]
        share = (theirs + PSEUDOCOUNT) / (others + 3 * PSEUDOCOUNT)
        return np.where(placed, share, 1.0 / 3.0), placed & (theirs > 0)


def _grid_argmax(f, e: np.ndarray, d: np.ndarray, stride: int) -> tuple[int, int]:
    """(i, j) of ``np.argmax`` of ``f(e, d)`` over the whole grid, from a fraction of it.

    ``f`` is concave (:func:`divergence_estimate`), so its grid maximum lies near the best
    point of every ``stride``-th row and column. From there, windows move to their best point
    until it is the best of the ``stride`` points on each side of it (the first window is
    twice as wide, so that usually settles it). ``f`` gives a point the same value in any
    window, and a window keeps the grid's row-major order, so ties go as ``np.argmax`` over
    the whole grid sends them.
    """
    rows = np.unique(np.r_[np.arange(0, len(e), stride), len(e) - 1])
    cols = np.unique(np.r_[np.arange(0, len(d), stride), len(d) - 1])
    a, b = np.unravel_index(int(np.argmax(f(e[rows], d[cols]))), (len(rows), len(cols)))
    i, j, reach = int(rows[a]), int(cols[b]), 2 * stride
    for _ in range(len(e) * len(d)):  # each move rises, or ties earlier in the grid: no cycle
        i0, i1 = max(i - reach, 0), min(i + reach + 1, len(e))
        j0, j1 = max(j - reach, 0), min(j + reach + 1, len(d))
        window = f(e[i0:i1], d[j0:j1])
        a, b = np.unravel_index(int(np.argmax(window)), window.shape)
        i, j = i0 + int(a), j0 + int(b)
        # settled when the window holds the best point's own neighbourhood
        if (
            (i - i0 >= stride or i0 == 0)
            and (i1 - 1 - i >= stride or i1 == len(e))
            and (j - j0 >= stride or j0 == 0)
            and (j1 - 1 - j >= stride or j1 == len(d))
        ):
            return i, j
        reach = stride
    return i, j


def divergence_estimate(
    called: tuple[int, int],
    third: np.ndarray,
    shares: np.ndarray,
    share3: float = THIRD_POSITION_SHARE,
    whole_grid: bool = False,
) -> float:
    """Maximum-likelihood divergence per site between the read's species and the reference's.

    Each aligned, called site of the read is, independently, an error (rate e, any of the
    three other bases alike), a divergent site (rate D times the codon position's weight:
    3·s at third positions, 1.5·(1-s) at the others, with s = ``share3``, so D is the mean
    per site; the new base is the one the library's species carry there with the mismatch's
    ``shares``), or a match. The log-likelihood is a sum of logs of linear functions of
    (e, D), hence concave: a coarse grid over 0..0.3 and a fine one around its best find the
    maximum to 0.0005 in D. Each grid's best point is found from a strided subgrid and a
    window around it (:func:`_grid_argmax`: about a sixth of the points); ``whole_grid``
    evaluates every point instead, as a check.

    Args:
        called: aligned sites with a base on both sides, (third positions, other positions).
        third: per mismatch, whether it is at a third codon position.
        shares: per mismatch, the share from :meth:`hir_edge.dna.divergence.SiteProfile.shares`
            (1/3 when unknown: then only the codon positions decide).
    """
    w3, w12 = 3.0 * share3, 1.5 * (1.0 - share3)
    third = np.asarray(third, dtype=bool)
    matched = ((called[0] - int(third.sum()), w3), (called[1] - int((~third).sum()), w12))
    weights = np.where(third, w3, w12) * np.asarray(shares, dtype=float)
    values, counts = np.unique(np.round(weights, 4), return_counts=True)

    if not len(weights):  # nothing but matches: the likelihood falls as e or D grows
        return 0.0
    scaled = counts[:, None, None], values[:, None, None]

    def loglik(e: np.ndarray, d: np.ndarray) -> np.ndarray:
        """[len(e), len(d)] log-likelihood at every (e, D) pair; -inf where a site's chance
        of matching would fall below 0. Terms are summed in one order (a reduction along the
        first axis), so a point's value is the same in any grid or window holding it."""
        e, d = e[:, None], d[None, :]
        parts = np.empty((2 + len(values), e.shape[0], d.shape[1]))
        for k, (sites, weight) in enumerate(matched):
            room = 1.0 - e - d * weight
            np.multiply(sites, np.log(np.clip(room, 0.0, None)), out=parts[k])
            parts[k][room < 0] = -np.inf
        np.multiply(scaled[0], np.log(e / 3.0 + d * scaled[1]), out=parts[2:])
        out = np.add.reduce(parts, axis=0)
        out[np.isnan(out)] = -np.inf  # no sites of a kind and no room: 0 · -inf
        return out

    e, d = np.linspace(0.0, 0.3, 31), np.linspace(0.0, 0.3, 61)
    with np.errstate(divide="ignore", invalid="ignore"):
        for stride in (4, 5):
            if whole_grid:
                i, j = np.unravel_index(int(np.argmax(loglik(e, d))), (len(e), len(d)))
            else:
                # A fine grid clipped at 0 or 0.3 repeats its end value: a flat run the window
                # search would stop on. Each value once (the grid is sorted) gives the same best.
                e, d = np.unique(e), np.unique(d)
                i, j = _grid_argmax(loglik, e, d, stride)
            e = np.clip(np.linspace(e[i] - 0.02, e[i] + 0.02, 41), 0.0, 0.3)
            d = np.clip(np.linspace(d[j] - 0.01, d[j] + 0.01, 41), 0.0, 0.3)
    return round(float(d[20]), 4)  # a multiple of 0.0005: no float noise at a cut-off


def novel_species(
    hit: Hit, divergence: float = 0.02, identity_min: float = MIN_ESTIMABLE_IDENTITY
) -> tuple[bool, str]:
    """Is the read's species absent from the references? And why, in one phrase.

    Novel when the best hit is under ``identity_min`` (no relative, or not COI) or the
    estimated divergence exceeds ``divergence`` (BOLD's 2% convention). The barcode gap is
    reported beside it but does not decide: on real BOLD data a read beyond the cut-off, with a
    large gap to every other species, was more often a sister species missing from the library
    than a deep lineage of the known one (the 'gap' column of benchmarks/results/
    novelty_rules.md).
    """
    by_pos = "/".join(str(m) for m in hit.mismatches_by_position)
    if hit.identity < identity_min:
        return True, (
            f"best reference barcode only {100 * hit.identity:.1f}% identical "
            f"(< {100 * identity_min:.0f}%)"
        )
    mismatches = sum(hit.mismatches_by_position)
    return hit.divergence > divergence, (
        f"best reference barcode {100 * hit.identity:.1f}% identical; estimated divergence "
        f"{100 * hit.divergence:.1f}% > {100 * divergence:.1f}% (mismatches at codon positions "
        f"1/2/3: {by_pos}; {hit.library_bases} of {mismatches} with a base other species carry "
        "there)"
    )
