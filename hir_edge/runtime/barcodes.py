"""The library's reference barcodes as evidence for a read: its strand when the coding model
cannot call it, and its alignments to the references (identities and the best hit).

The aligner over the barcodes is built on first use: a photo-only run never pays for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from hir_edge.dna.align import Hit, ReferenceAligner
from hir_edge.dna.qc import reverse_complement
from hir_edge.runtime.bundle import References
from hir_edge.runtime.schema import Specimen
from hir_edge.runtime.scoring import ScoringSettings

# A taxon hidden from a query (open-set calibration): (rank level, taxon id), or None.
Hidden = tuple[int, int] | None
RADII_CHUNK = 256  # references whose radii are searched at once


def may_be_of(
    labels: np.ndarray, hidden: tuple[int, int], lineage: np.ndarray | None = None
) -> np.ndarray:
    """[M] the references that are of a hidden taxon, or may be: those named to it, and those
    named neither at its rank nor below whose named ranks all agree with its lineage (a record
    named to the family alone may be of any of the family's genera). ``lineage``: the taxon's
    label ids above its rank (default: those of a reference named to it); an unknown one (-1,
    "incertae sedis") agrees with any name.

    Hiding a taxon must hide these too. A library's records named above species (BOLD's BINs
    without a name, a dataset's label cuts) are often of the very taxon hidden; left in, a read
    of an "absent" genus found its own genus' records, and the open-set calibration learnt
    absent taxa from reads that were not. A record under an "incertae sedis"
    rank is named below it (-1 there, a genus named) and is not taken for any taxon of that rank.
    """
    level, taxon = hidden
    named = labels[:, level] == taxon
    if lineage is None:
        if not named.any():
            return named
        lineage = labels[np.flatnonzero(named)[0], :level]
    lineage = np.asarray(lineage)[:level]
    coarser = labels[:, :level]
    agrees = ((coarser == lineage) | (coarser < 0) | (lineage < 0)).all(axis=1)
    return named | ((labels[:, level:] < 0).all(axis=1) & agrees)


class LibraryBarcodes:
    """The reference barcodes of a bundle, aligned to reads on demand.

    Args:
        references: the bundle's reference library (None: no barcode evidence).
        scoring: k-mer length, shortlist size and references per species of the search.
        index_cache: a folder that keeps the library's k-mer index between runs (None: none).
    """

    def __init__(
        self,
        references: References | None,
        scoring: ScoringSettings,
        index_cache: Path | None = None,
    ):
        self.references = references
        self.scoring = scoring
        self.index_cache = index_cache
        self._aligner: ReferenceAligner | None = None
        self._barcoded = np.zeros(0, dtype=np.int64)  # reference rows that have a barcode
        self._radius_cache: dict[tuple[int, int, tuple[int, int]], float] = {}
        self._hidden: dict[tuple[int, int], np.ndarray] = {}  # hidden taxon -> [M] may_be_of
        # this library's own radii [M, L] and the reference each is to, aligned on first use
        self._own: tuple[np.ndarray, np.ndarray] | None = None
        self._position = np.zeros(0, dtype=np.int64)

    def aligner(self) -> ReferenceAligner | None:
        """The aligner over the library's barcodes, built on first use (None without any)."""
        refs = self.references
        if self._aligner is None and refs is not None and refs.barcodes is not None:
            barcodes = [
                b.decode("ascii") if isinstance(b, bytes) else str(b) for b in refs.barcodes
            ]
            self._barcoded = np.flatnonzero([bool(b) for b in barcodes])
            self._position = np.full(len(barcodes), -1)  # reference row -> aligner index
            self._position[self._barcoded] = np.arange(len(self._barcoded))
            if len(self._barcoded):
                species = refs.labels[self._barcoded, -1]
                self._aligner = ReferenceAligner(
                    [barcodes[j] for j in self._barcoded],
                    self.scoring.kmer_k,
                    self.scoring.barcode_shortlist,
                    [int(c) if c >= 0 else None for c in species],
                    self.scoring.barcode_per_species,
                    index_cache=self.index_cache,
                )
        return self._aligner

    def strand_from_library(self, specimens: Sequence[Specimen]) -> list[Specimen]:
        """``specimens`` with each read whose strand the coding model could not call
        (``uncertain_strand``) put on the strand its library relatives are on; its QC then says
        ``strand_from_library`` (and whether it was reverse-complemented, all told)."""
        unsure = [
            i
            for i, s in enumerate(specimens)
            if s.sequence and s.qc is not None and "uncertain_strand" in s.qc.flags
        ]
        aligner = self.aligner() if unsure else None
        if aligner is None:
            return list(specimens)
        flip, decided = aligner.prefers_reverse([specimens[i].sequence for i in unsure])
        out = list(specimens)
        for i, reverse, known in zip(unsure, flip, decided):
            if not known:
                continue
            s = specimens[i]
            flags = tuple(f for f in s.qc.flags if f != "uncertain_strand")
            qc = replace(
                s.qc,
                reverse_complemented=s.qc.reverse_complemented != bool(reverse),
                flags=(*flags, "strand_from_library"),
            )
            sequence = reverse_complement(s.sequence) if reverse else s.sequence
            out[i] = replace(s, sequence=sequence, qc=qc)
        return out

    def barcode_alignments(
        self, sequences: Sequence[str], hidden: Sequence[Hidden] | None = None
    ) -> tuple[np.ndarray | None, list[Hit | None] | None]:
        """[N, M] alignment identity of reads to the reference barcodes (0 outside each read's
        shortlist) and each read's best hit; (None, None) when the bundle has no barcodes.

        References without a barcode (photo-only specimens) are left out of the alignment and
        keep identity 0; hits point at rows of the whole reference library. ``hidden`` removes
        a taxon's references from a read's search (open-set calibration).
        """
        aligner = self.aligner()
        if aligner is None:
            return None, None
        exclude = None
        if hidden is not None:
            exclude = [
                None if h is None else self._aligned(self.hidden_references(h)) for h in hidden
            ]
        sims, hits = aligner.search(sequences, exclude)
        full = np.zeros((len(sims), len(self.references.barcodes)), dtype=np.float32)
        full[:, self._barcoded] = sims
        return full, [
            None if h is None else replace(h, reference=int(self._barcoded[h.reference]))
            for h in hits
        ]

    def radii(self) -> np.ndarray | None:
        """[M, L] each reference's identity to its nearest barcode of another taxon at each
        rank (NaN: no barcode, or not named at that rank): how far that taxon reaches in this
        library. The bundle's own (``references.radii``), else aligned once and kept."""
        refs = self.references
        if refs is None or self.aligner() is None:
            return None
        if refs.radii is None:
            refs.radii = self._own_radii()[0]
        return refs.radii

    def radius(self, reference: int, level: int, hidden: Hidden) -> float:
        """:meth:`radii` of one reference at one rank with a taxon hidden from the library
        (open-set calibration: the hidden taxon's barcodes are not there to be nearest), as
        aligned in this library (a bundle's radii do not say which reference was nearest, and
        are left as they are)."""
        if hidden is None:
            return float(self.radii()[reference, level])
        radii, nearest = self._own_radii()
        to = nearest[reference, level]
        if to < 0 or not self._hidden_mask(hidden)[to]:
            return float(radii[reference, level])  # its nearest is still there
        key = (reference, level, hidden)
        if key not in self._radius_cache:
            identity, _ = self._radii(hidden, np.array([reference]), level)
            self._radius_cache[key] = float(identity[0, level])
        return self._radius_cache[key]

    def _own_radii(self) -> tuple[np.ndarray, np.ndarray]:
        """This library's radii and the reference each is to, aligned once."""
        if self._own is None:
            self.aligner()
            self._own = self._radii(None, np.arange(len(self.references.labels)))
        return self._own

    def _radii(
        self, hidden: Hidden, rows: np.ndarray, only: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Radii of reference ``rows`` at every rank (or at rank ``only``) and the reference
        each is to (-1: none), by searching each barcode with its own taxon at that rank (and
        references not named there, which may be of it) and ``hidden`` taken out."""
        labels = self.references.labels
        out = np.full((len(rows), labels.shape[1]), np.nan, dtype=np.float32)
        nearest = np.full((len(rows), labels.shape[1]), -1, dtype=np.int64)
        gone = np.zeros(len(labels), dtype=bool)
        if hidden is not None:
            gone[self.hidden_references(hidden)] = True
        row_of = {int(j): k for k, j in enumerate(rows)}
        for level in range(labels.shape[1]) if only is None else (only,):
            asked = [j for j in rows if self._position[j] >= 0 and labels[j, level] >= 0]
            # a chunk at a time: each reference's exclusions (its own taxon and every record
            # not named at the rank) are held for a chunk, not for the whole library at once
            for start in range(0, len(asked), RADII_CHUNK):
                chunk = asked[start : start + RADII_CHUNK]
                exclude = []
                for j in chunk:
                    out_of_reach = (labels[:, level] == labels[j, level]) | (labels[:, level] < 0)
                    exclude.append(self._aligned(np.flatnonzero(out_of_reach | gone)))
                barcodes = [self._aligner.references[self._position[j]] for j in chunk]
                _, hits = self._aligner.search(barcodes, exclude)
                for j, hit in zip(chunk, hits):
                    if hit is not None:
                        out[row_of[int(j)], level] = hit.identity
                        nearest[row_of[int(j)], level] = self._barcoded[hit.reference]
        return out, nearest

    def _aligned(self, rows: np.ndarray) -> np.ndarray:
        """The aligner's indices of those reference ``rows`` that have a barcode."""
        at = self._position[rows]
        return at[at >= 0]

    def hidden_references(self, hidden: tuple[int, int]) -> np.ndarray:
        """The references a hidden taxon takes out of the library (:func:`may_be_of`)."""
        return np.flatnonzero(self._hidden_mask(hidden))

    def _hidden_mask(self, hidden: tuple[int, int]) -> np.ndarray:
        key = tuple(hidden)
        if key not in self._hidden:
            self._hidden[key] = may_be_of(self.references.labels, key)
        return self._hidden[key]

    def close(self) -> None:
        """Release the aligner (and any worker processes it started)."""
        if self._aligner is not None:
            self._aligner.close()
