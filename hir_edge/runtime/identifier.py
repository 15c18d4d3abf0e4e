"""Identification in the field: specimens (a read, a photo, or both) in, ranked taxa out.

For each specimen the query embedding is the fused one when both a read and a photo are given
(GatedFusion), else the one modality it has. Per rank it is compared with the bundle's prompt
bank, and — when the bundle carries a reference library — with the nearest reference specimens
(CLIBD's key-set protocol in embedding space). Both kinds of evidence are combined into
per-rank scores, turned into probabilities consistent down the tree
(:mod:`hir_edge.runtime.scoring`), and the answer stops at the deepest rank whose calibrated
confidence passes its threshold. A read is also aligned to the reference barcodes
(:mod:`hir_edge.align`): the identities vote like the embedding neighbours, and a read whose
species diverges from its best hit (mismatches that read errors cannot explain) is flagged as
novel and never given a species name.

numpy + onnxruntime + Biopython only: a Jetson or a laptop runs this without torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from hir_edge.align import Hit, ReferenceAligner, min_called_bases, novel_species
from hir_edge.dna_tokens import tokenizer_from_dict
from hir_edge.images import SYNTHETIC_PHOTO_COMMENT, PreprocessConfig, load_image, preprocess
from hir_edge.read_qc import ReadQC, reverse_complement
from hir_edge.runtime.bundle import Bundle
from hir_edge.runtime.scoring import assign, greedy_paths, tree_probabilities
from hir_edge.taxonomy import is_placeholder

MODALITIES = ("image", "dna", "fused")


@dataclass
class Specimen:
    """What the field gives for one specimen: a cleaned read and/or a photo."""

    id: str
    sequence: str | None = None
    qc: ReadQC | None = None
    image: Path | bytes | None = None
    image_name: str | None = None
    source: str | None = None  # the file the read came from (for error messages)
    line: int | None = None  # its line there, when known


@dataclass
class Identification:
    """The answer for one specimen (the JSON schema of ``hir-edge identify``)."""

    id: str
    assigned: dict
    ranks: dict
    modalities: list[str]
    gate: dict | None
    qc: dict | None
    novel: bool
    nearest: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    best_hit: dict | None = None

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "assigned": self.assigned,
            "ranks": self.ranks,
            "modalities": self.modalities,
            "gate": self.gate,
            "qc": self.qc,
            "novel": self.novel,
            "nearest": self.nearest,
            "best_hit": self.best_hit,
            "warnings": self.warnings,
        }


@dataclass
class ScoringSettings:
    """Per query modality: temperatures and thresholds per rank, reference weights, novelty.

    ``barcode_*`` concern the alignment of reads to the reference barcodes: the weight and
    temperature of its identity vote, the k-mer length and size of the alignment shortlist, and
    the novelty rule (:func:`hir_edge.align.novel_species`: estimated divergence from the
    best hit above ``novelty_divergence``, or identity below ``novelty_identity``). The
    shortlist keeps at most ``barcode_per_species`` references of a species so the next
    species is aligned too (the barcode gap in the output).
    """

    temperatures: dict[str, list[float]]
    thresholds: dict[str, list[float]]
    reference_weight: dict[str, float]
    reference_temperature: float
    reference_k: int
    novelty: dict[str, float]
    barcode_weight: dict[str, float]
    barcode_temperature: float = 0.01
    kmer_k: int = 6
    barcode_shortlist: int = 12
    barcode_per_species: int = 3
    novelty_divergence: float = 0.02
    novelty_identity: float = 0.8

    @classmethod
    def from_manifest(cls, manifest: dict, num_ranks: int) -> ScoringSettings:
        s = manifest.get("scoring", {})
        default_t = [0.05] * num_ranks
        return cls(
            temperatures={m: s.get("temperatures", {}).get(m, default_t) for m in MODALITIES},
            thresholds={m: s.get("thresholds", {}).get(m, [0.5] * num_ranks) for m in MODALITIES},
            reference_weight={m: s.get("reference_weight", {}).get(m, 0.0) for m in MODALITIES},
            reference_temperature=float(s.get("reference_temperature", 0.05)),
            reference_k=int(s.get("reference_k", 10)),
            novelty={m: s.get("novelty", {}).get(m, -1.0) for m in MODALITIES},
            barcode_weight={m: s.get("barcode_weight", {}).get(m, 0.0) for m in MODALITIES},
            barcode_temperature=float(s.get("barcode_temperature", 0.01)),
            kmer_k=int(s.get("kmer_k", 6)),
            barcode_shortlist=int(s.get("barcode_shortlist", 12)),
            barcode_per_species=int(s.get("barcode_per_species", 3)),
            novelty_divergence=float(s.get("novelty_divergence", 0.02)),
            novelty_identity=float(s.get("novelty_identity", 0.8)),
        )

    def novel(self, hit: Hit) -> tuple[bool, str]:
        """The novelty rule for a read's best barcode hit, with its reason."""
        return novel_species(hit, self.novelty_divergence, self.novelty_identity)


def prompt_cosines(
    queries: np.ndarray,
    banks: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    parents: Sequence[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """Per rank, cosine of each query to each taxon's prompt.

    A placeholder ("incertae sedis") has no prompt of its own: its score is the best score of
    its children, filled in from the finest rank up, so the specimens under it stay reachable
    (a genus known only to its order competes through its placeholder family on its own merit).
    """
    cos = [queries @ b.T for b in banks]
    if parents is None:
        return cos
    for level in range(len(cos) - 2, -1, -1):
        holders = np.flatnonzero(~masks[level])
        if not len(holders):
            continue
        child_parent = np.asarray(parents[level + 1])
        best = np.full((cos[level].shape[0], cos[level].shape[1]), -np.inf)
        np.maximum.at(best.T, child_parent, cos[level + 1].T)
        cos[level][:, holders] = np.where(np.isfinite(best[:, holders]), best[:, holders], -1.0)
    return cos


def combine_evidence(
    cos: Sequence[np.ndarray],
    temperatures: Sequence[float],
    votes: Sequence[np.ndarray] | None,
    weight: float,
    barcode_votes: Sequence[np.ndarray] | None = None,
    barcode_weight: float = 0.0,
) -> list[np.ndarray]:
    """Per-rank logits: prompt cosine / T_l, plus ``weight`` × the embedding-neighbour log-vote,
    plus ``barcode_weight`` × the aligned-barcode log-vote."""
    logits = [c / t for c, t in zip(cos, temperatures)]
    if votes is not None and weight:
        logits = [lg + weight * v for lg, v in zip(logits, votes)]
    if barcode_votes is not None and barcode_weight:
        logits = [lg + barcode_weight * v for lg, v in zip(logits, barcode_votes)]
    return logits


def reference_log_probs(
    sims: np.ndarray, labels: np.ndarray, n_taxa: Sequence[int], k: int, temperature: float
) -> list[np.ndarray]:
    """Per rank, log of a soft nearest-neighbour vote over the k most similar references.

    Each of the k neighbours votes for its taxon at the rank with weight exp(sim / τ); ranks
    where a neighbour is unlabelled get no vote from it. A small floor keeps unvoted taxa
    possible (the prompt evidence can still win), so log-probabilities are finite.
    """
    k = min(k, sims.shape[1])
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    top_sims = np.take_along_axis(sims, top, axis=1)
    weights = np.exp((top_sims - top_sims.max(axis=1, keepdims=True)) / temperature)
    out = []
    rows = np.arange(sims.shape[0])[:, None]
    for level, n in enumerate(n_taxa):
        votes = np.zeros((sims.shape[0], n))
        lab = labels[top, level]
        ok = lab >= 0
        np.add.at(votes, (np.broadcast_to(rows, lab.shape)[ok], lab[ok]), weights[ok])
        total = votes.sum(axis=1, keepdims=True)
        probs = np.where(total > 0, votes / np.maximum(total, 1e-12), 1.0 / n)
        out.append(np.log(probs * 0.99 + 0.01 / n))
    return out


class Identifier:
    """Identify batches of specimens with one bundle and one backend.

    Args:
        bundle: an opened bundle.
        backend: a :mod:`hir_edge.runtime.backends` backend.
        top_k: taxa listed per rank.
        min_confidence: one threshold for every rank instead of the bundle's fitted ones.
        max_rank: never assign deeper than this rank (e.g. "genus").
        workers: processes aligning reads to the reference barcodes.
        novel_divergence: the novelty rule's divergence cut-off instead of the bundle's.
    """

    def __init__(
        self,
        bundle: Bundle,
        backend,
        top_k: int = 3,
        min_confidence: float | None = None,
        max_rank: str | None = None,
        workers: int = 1,
        novel_divergence: float | None = None,
    ):
        self.bundle = bundle
        self.workers = workers  # processes aligning reads to the reference barcodes
        self.backend = backend
        self.top_k = top_k
        self.taxonomy = bundle.taxonomy
        self.ranks = self.taxonomy.ranks
        self.preprocess = PreprocessConfig.from_dict(bundle.manifest["preprocess"])
        self.tokenizer = tokenizer_from_dict(bundle.manifest["dna_tokenizer"], root=bundle.root)
        self.scoring = ScoringSettings.from_manifest(bundle.manifest, len(self.ranks))
        if novel_divergence is not None:
            self.scoring = replace(self.scoring, novelty_divergence=novel_divergence)
        self.min_confidence = min_confidence
        self.max_level = len(self.ranks) - 1 if max_rank is None else self.taxonomy.level(max_rank)
        self.parents = [self.taxonomy.parents(lv) for lv in range(len(self.ranks))]
        self.labels_mask = [self.taxonomy.label_mask(lv) for lv in range(len(self.ranks))]
        self._aligner: ReferenceAligner | None = None
        self._barcoded = np.zeros(0, dtype=np.int64)  # reference rows that have a barcode
        branches = bundle.manifest.get("provenance", {}).get("branches", {})
        self.synthetic_image_branch = branches.get("image", {}).get("kind") == "synthetic"

    # ------------------------------------------------------------------ embeddings
    def _pixels(self, specimen: Specimen) -> np.ndarray:
        image = load_image(specimen.image, min_size=2 * self.preprocess.image_size)
        return preprocess(image, self.preprocess)

    def unusable_read(self, sequence: str | None) -> str | None:
        """Why a read carries no DNA evidence (None when it does, or when there is no read).

        A read needs as many called bases (A/C/G/T) as the alignment does; below that (a
        window of Ns, a failed trace) the encoder would still rank taxa, confidently and at
        random.
        """
        if not sequence:
            return None
        called = len(sequence) - sequence.count("N")
        needed = min_called_bases(self.scoring.kmer_k)
        if called >= needed:
            return None
        return (
            f"read has {called} called bases (A/C/G/T) of {len(sequence)}; "
            f"at least {needed} are needed"
        )

    def embed(self, specimens: Sequence[Specimen]) -> dict[str, np.ndarray]:
        """Image, DNA and fused embeddings (zero rows where a modality is absent) and gates."""
        n, d = len(specimens), self.bundle.embed_dim
        image = np.zeros((n, d), np.float32)
        dna = np.zeros((n, d), np.float32)
        has_image = np.array([s.image is not None for s in specimens])
        has_dna = np.array(
            [bool(s.sequence) and not self.unusable_read(s.sequence) for s in specimens]
        )
        if has_image.any():
            idx = np.flatnonzero(has_image)
            pixels = np.stack([self._pixels(specimens[i]) for i in idx])
            image[idx] = self.backend.embed_images(pixels)
        if has_dna.any():
            idx = np.flatnonzero(has_dna)
            ids, mask = self.tokenizer.encode_batch([specimens[i].sequence for i in idx])
            dna[idx] = self.backend.embed_dna(ids, mask)
        fused = np.zeros((n, d), np.float32)
        gate = np.full(n, np.nan, np.float32)
        both = has_image & has_dna
        if both.any():
            idx = np.flatnonzero(both)
            f, g = self.backend.fuse(image[idx], dna[idx])
            fused[idx] = f
            if g is not None:  # None: the bundle averages (no GatedFusion head)
                gate[idx] = g.mean(axis=1)
        return {
            "image": image,
            "dna": dna,
            "fused": fused,
            "gate": gate,
            "has_image": has_image,
            "has_dna": has_dna,
            "both": both,
        }

    # ------------------------------------------------------------------ scoring
    def prompt_cosines(self, queries: np.ndarray) -> list[np.ndarray]:
        return prompt_cosines(queries, self.bundle.prompt_banks, self.labels_mask, self.parents)

    def reference_votes(self, sims: np.ndarray, temperature: float) -> list[np.ndarray]:
        """Per-rank log-votes of the nearest references for similarities ``sims`` [N, M]."""
        return reference_log_probs(
            sims,
            self.bundle.references.labels,
            [b.shape[0] for b in self.bundle.prompt_banks],
            self.scoring.reference_k,
            temperature,
        )

    def _reference_aligner(self) -> ReferenceAligner | None:
        """The aligner over the library's barcodes, built on first use (None without any)."""
        refs = self.bundle.references
        if self._aligner is None and refs is not None and refs.barcodes is not None:
            barcodes = [
                b.decode("ascii") if isinstance(b, bytes) else str(b) for b in refs.barcodes
            ]
            self._barcoded = np.flatnonzero([bool(b) for b in barcodes])
            if len(self._barcoded):
                species = refs.labels[self._barcoded, -1]
                self._aligner = ReferenceAligner(
                    [barcodes[j] for j in self._barcoded],
                    self.scoring.kmer_k,
                    self.scoring.barcode_shortlist,
                    [int(c) if c >= 0 else None for c in species],
                    self.scoring.barcode_per_species,
                    workers=self.workers,
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
        aligner = self._reference_aligner() if unsure else None
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
        self, sequences: Sequence[str]
    ) -> tuple[np.ndarray | None, list[Hit | None] | None]:
        """[N, M] alignment identity of reads to the reference barcodes (0 outside each read's
        shortlist) and each read's best hit; (None, None) when the bundle has no barcodes.

        References without a barcode (photo-only specimens) are left out of the alignment and
        keep identity 0; hits point at rows of the whole reference library.
        """
        aligner = self._reference_aligner()
        if aligner is None:
            return None, None
        sims, hits = aligner.search(sequences)
        full = np.zeros((len(sims), len(self.bundle.references.barcodes)), dtype=np.float32)
        full[:, self._barcoded] = sims
        hits = [
            None if h is None else replace(h, reference=int(self._barcoded[h.reference]))
            for h in hits
        ]
        return full, hits

    def scores(
        self,
        queries: np.ndarray,
        modality: str,
        reference_queries: np.ndarray | None,
        sequences: Sequence[str] | None = None,
    ) -> tuple[list[np.ndarray], np.ndarray | None, np.ndarray | None, list | None]:
        """Per-rank logits — prompt cosine / T, plus w × the embedding-neighbour log-vote, plus
        w_b × the aligned-barcode log-vote — the embedding similarities and barcode identities
        to the references, and each read's best barcode hit (None where not available).

        The export's calibration fits T, w and w_b through the same pieces.
        """
        cos = self.prompt_cosines(queries)
        sims = votes = barcode_sims = barcode_votes = hits = None
        refs = self._reference_matrix(modality)
        weight = self.scoring.reference_weight[modality]
        if refs is not None and reference_queries is not None and len(refs):
            sims = reference_queries @ refs.T
            if weight > 0:
                votes = self.reference_votes(sims, self.scoring.reference_temperature)
        if sequences is not None:
            barcode_sims, hits = self.barcode_alignments(sequences)
        barcode_weight = self.scoring.barcode_weight[modality]
        if barcode_weight > 0 and barcode_sims is not None:
            barcode_votes = self.reference_votes(barcode_sims, self.scoring.barcode_temperature)
        logits = combine_evidence(
            cos, self.scoring.temperatures[modality], votes, weight, barcode_votes, barcode_weight
        )
        return logits, sims, barcode_sims, hits

    def close(self) -> None:
        """Stop the alignment worker processes, if any were started."""
        if self._aligner is not None:
            self._aligner.close()

    def _reference_matrix(self, modality: str) -> np.ndarray | None:
        refs = self.bundle.references
        if refs is None:
            return None
        return refs.image if modality == "image" else refs.dna

    def probabilities(self, logits: list[np.ndarray]) -> list[np.ndarray]:
        return tree_probabilities(logits, self.parents, [1.0] * len(logits))

    # ------------------------------------------------------------------ the answer
    def identify(self, specimens: Sequence[Specimen]) -> list[Identification]:
        """Identify a batch; photo-only, read-only and paired specimens may be mixed."""
        specimens = self.strand_from_library(specimens)
        emb = self.embed(specimens)
        results: list[Identification | None] = [None] * len(specimens)
        groups = {
            "fused": emb["both"],
            "image": emb["has_image"] & ~emb["has_dna"],
            "dna": emb["has_dna"] & ~emb["has_image"],
        }
        for modality, mask in groups.items():
            idx = np.flatnonzero(mask)
            if not len(idx):
                continue
            queries = emb[modality][idx]
            ref_queries = emb["image"][idx] if modality == "image" else emb["dna"][idx]
            seqs = None if modality == "image" else [specimens[i].sequence for i in idx]
            logits, sims, barcode_sims, hits = self.scores(queries, modality, ref_queries, seqs)
            probs = self.probabilities(logits)
            path_ids, path_p = greedy_paths(probs, self.parents)
            thresholds = (
                [self.min_confidence] * len(self.ranks)
                if self.min_confidence is not None
                else self.scoring.thresholds[modality]
            )
            levels = assign(path_p, thresholds)
            for row, i in enumerate(idx):
                evidence = _Evidence(
                    modality=modality,
                    probs=[p[row] for p in probs],
                    path=path_ids[row],
                    path_p=path_p[row],
                    level=int(levels[row]),
                    ref_sims=None if sims is None else sims[row],
                    barcode_sims=None if barcode_sims is None else barcode_sims[row],
                    hit=None if hits is None else hits[row],
                    gate=None if np.isnan(emb["gate"][i]) else float(emb["gate"][i]),
                )
                results[i] = self._answer(specimens[i], evidence)
        for i, s in enumerate(specimens):
            if results[i] is None:  # neither a usable read nor a photo
                results[i] = Identification(
                    s.id,
                    {"rank": None, "taxon": None, "confidence": 0.0, "lineage": []},
                    {r: [] for r in self.ranks},
                    [],
                    None,
                    None,
                    False,
                    warnings=[self.unusable_read(s.sequence) or "no usable read or photo"],
                )
        return results  # type: ignore[return-value]

    def _assigned_level(self, ev: _Evidence, novel: bool) -> int:
        """The threshold's rank, capped by --rank and by novelty, stepped back past placeholders."""
        species = len(self.ranks) - 1
        level = min(ev.level, min(self.max_level, species - 1) if novel else self.max_level)
        while level >= 0 and not self.labels_mask[level][int(ev.path[level])]:
            level -= 1  # "incertae sedis" is not an answer: say the deepest real taxon above
        return level

    def _novelty(self, ev: _Evidence) -> tuple[bool, str]:
        """Of a species absent from the references? For a read, by its best barcode hit: the
        divergence that read errors cannot explain (:func:`hir_edge.align.novel_species`); for
        a photo alone (or a read too short to align), by the embedding similarity of its
        nearest reference."""
        if ev.hit is not None:
            return self.scoring.novel(ev.hit)
        threshold = self.scoring.novelty[ev.modality]
        if ev.ref_sims is None or threshold <= 0:
            return False, ""
        best = float(ev.ref_sims.max())
        return best < threshold, f"similarity to the nearest reference {best:.3f} < {threshold:.3f}"

    def _answer(self, specimen: Specimen, ev: _Evidence) -> Identification:
        novel, why = self._novelty(ev)
        level = self._assigned_level(ev, novel)
        if level >= 0:
            taxon_id = int(ev.path[level])
            assigned = {
                "rank": self.ranks[level],
                "taxon": self.taxonomy.name(level, taxon_id),
                "confidence": round(float(ev.path_p[level]), 4),
                "lineage": [
                    n
                    for n in self.taxonomy.lineage(level, taxon_id)
                    if n is not None and not is_placeholder(n)
                ],
            }
        else:
            assigned = {"rank": None, "taxon": None, "confidence": 0.0, "lineage": []}
        ranks = {}
        for lv, rank in enumerate(self.ranks):
            p = ev.probs[lv]
            order = [t for t in np.argsort(-p) if self.labels_mask[lv][t] and p[t] > 0]
            ranks[rank] = [
                {"taxon": self.taxonomy.name(lv, int(t)), "probability": round(float(p[t]), 4)}
                for t in order[: self.top_k]
            ]
        modalities = {"fused": ["image", "dna"], "image": ["image"], "dna": ["dna"]}[ev.modality]
        gate = (
            None if ev.gate is None else {"image": round(ev.gate, 3), "dna": round(1 - ev.gate, 3)}
        )
        warnings = []
        unusable = self.unusable_read(specimen.sequence)
        if unusable:
            warnings.append(f"{unusable}: identified from the photo alone")
        if (
            "image" in modalities
            and self.synthetic_image_branch
            and not _is_synthetic_photo(specimen.image)
        ):
            warnings.append(
                "this bundle's image branch was trained on drawn photos: the photo's evidence is "
                "unreliable for a real specimen"
            )
        if novel:
            warnings.append(
                f"novel: likely a species absent from the reference library ({why}); "
                "not named below genus"
            )
        return Identification(
            id=specimen.id,
            assigned=assigned,
            ranks=ranks,
            modalities=modalities,
            gate=gate,
            qc=None if specimen.qc is None else specimen.qc.to_dict(),
            novel=novel,
            nearest=self._nearest(
                ev.barcode_sims if ev.barcode_sims is not None else ev.ref_sims,
                first=None if ev.hit is None else ev.hit.reference,
            ),
            warnings=warnings,
            best_hit=None if ev.hit is None else self._best_hit(ev.hit),
        )

    def _best_hit(self, hit: Hit) -> dict:
        """The best-aligned reference barcode, as a taxonomist reads a BLAST/BOLD hit."""
        refs = self.bundle.references
        return {
            "id": str(refs.ids[hit.reference]),
            **self._reference_taxon(hit.reference),
            **hit.to_dict(),
        }

    def _reference_taxon(self, j: int) -> dict:
        lab = self.bundle.references.labels[j]
        known = [lv for lv in range(len(lab)) if lab[lv] >= 0 and self.labels_mask[lv][lab[lv]]]
        if not known:
            return {"rank": None, "taxon": None}
        deepest = known[-1]
        return {
            "rank": self.ranks[deepest],
            "taxon": self.taxonomy.name(deepest, int(lab[deepest])),
        }

    def _nearest(
        self, ref_sims: np.ndarray | None, count: int = 3, first: int | None = None
    ) -> list[dict]:
        """The ``count`` most similar references; ``first`` (the best aligned hit) leads, so
        the list agrees with ``best_hit`` when several references tie."""
        if ref_sims is None:
            return []
        refs = self.bundle.references
        out = []
        order = [int(j) for j in np.argsort(-ref_sims, kind="stable")]
        if first is not None:
            order = [first] + [j for j in order if j != first]
        for j in order[:count]:
            out.append(
                {
                    "id": str(refs.ids[j]),
                    "taxon": self._reference_taxon(int(j))["taxon"],
                    "similarity": round(float(ref_sims[j]), 4),
                }
            )
        return out


@dataclass
class _Evidence:
    """One specimen's scores, path and threshold rank, before the answer is written."""

    modality: str
    probs: list[np.ndarray]
    path: np.ndarray
    path_p: np.ndarray
    level: int
    ref_sims: np.ndarray | None
    barcode_sims: np.ndarray | None
    hit: Hit | None
    gate: float | None


def _is_synthetic_photo(source) -> bool:
    """Photos written by ``hir-edge data synth`` carry a JPEG comment naming them (in the
    first few kilobytes, where JPEG keeps its markers)."""
    if isinstance(source, bytes | bytearray):
        return SYNTHETIC_PHOTO_COMMENT in source[:4096]
    try:
        with Path(source).open("rb") as handle:
            return SYNTHETIC_PHOTO_COMMENT in handle.read(4096)
    except (OSError, TypeError):
        return False
