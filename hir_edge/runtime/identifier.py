"""Identification in the field: specimens (a read, a photo, or both) in, ranked taxa out.

For each specimen the query embedding is the fused one when both a read and a photo are given
(GatedFusion), else the one modality it has. Per rank it is compared with the bundle's prompt
bank, and — when the bundle carries a reference library — with the nearest reference specimens
(CLIBD's key-set protocol in embedding space). A read is also aligned to the reference
barcodes (:mod:`hir_edge.dna.align`), whose identities vote like the embedding neighbours. All the
evidence becomes per-rank probabilities consistent down the tree (:mod:`hir_edge.runtime.scoring`).
A read alone whose barcode votes settle every rank, whatever its embedding, skips the DNA encoder
(:mod:`hir_edge.runtime.settled`): the same answer, sooner.

Where the answer stops: for a read with a barcode hit, the placement model
(:mod:`hir_edge.runtime.placement`) — the deepest rank whose calibrated probability of being
right passes that rank's threshold, fitted on reads of taxa removed from the library, so a read
of an absent genus stops at its family; for a photo, the deepest rank whose path probability
passes its threshold, and no answer for a photo unlike every reference photo.

numpy + onnxruntime + Biopython only: a Jetson or a laptop runs this without torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import cached_property
from pathlib import Path

import numpy as np

from hir_edge.dna.align import Hit, min_called_bases
from hir_edge.dna.complexity import low_complexity
from hir_edge.dna.tokens import tokenizer_from_dict
from hir_edge.errors import InputError
from hir_edge.images import (
    PreprocessConfig,
    is_drawn_photo,
    load_image,
    preprocess,
    source_name,
)
from hir_edge.photo_qc import blank_frame
from hir_edge.runtime import answer as fmt
from hir_edge.runtime.answer import Evidence
from hir_edge.runtime.barcodes import Hidden, LibraryBarcodes
from hir_edge.runtime.bundle import Bundle
from hir_edge.runtime.chance import chance_identities
from hir_edge.runtime.decide import AnswerRules
from hir_edge.runtime.photo_scope import PhotoScope
from hir_edge.runtime.placement import read_placement_features
from hir_edge.runtime.schema import Identification, Photo, Specimen
from hir_edge.runtime.scoring import (
    ScoringSettings,
    assign,
    combine_evidence,
    greedy_paths,
    prompt_cosines,
    reference_log_probs,
    tree_probabilities,
)
from hir_edge.runtime.settled import settled_by_barcodes

_MASKED = -1.0e4  # the logit of a hidden taxon: exp() underflows to 0, but no NaN


class Identifier:
    """Identify batches of specimens with one bundle and one backend.

    Args:
        bundle: an opened bundle.
        backend: a :mod:`hir_edge.runtime.backends` backend.
        top_k: taxa listed per rank.
        min_confidence: one threshold for every rank instead of the bundle's fitted ones.
        max_rank: never assign deeper than this rank (e.g. "genus").
        novel_divergence: the species novelty rule's divergence cut-off instead of the
            bundle's.
        alignment: align reads to the reference barcodes (False: the learned evidence alone,
            prompt ranking and reference embeddings — for measuring what the models know).
        index_cache: a folder that keeps the library's k-mer index between runs (None: none).
        encode_every_read: run the DNA encoder on every read, also those whose barcode votes
            settle the answer without it (:mod:`~hir_edge.runtime.settled`): for showing that
            skipping it changes no answer.
    """

    def __init__(
        self,
        bundle: Bundle,
        backend,
        top_k: int = 3,
        min_confidence: float | None = None,
        max_rank: str | None = None,
        novel_divergence: float | None = None,
        alignment: bool = True,
        index_cache: Path | None = None,
        encode_every_read: bool = False,
    ):
        self.bundle = bundle
        self.encode_every_read = encode_every_read
        self.alignment = alignment
        self.backend = backend
        self.top_k = top_k
        self.taxonomy = bundle.taxonomy
        self.ranks = self.taxonomy.ranks
        self.preprocess = PreprocessConfig.from_dict(bundle.manifest.preprocess)
        self.tokenizer = tokenizer_from_dict(bundle.manifest.dna_tokenizer, root=bundle.root)
        self.scoring = ScoringSettings.from_section(bundle.manifest.scoring, len(self.ranks))
        if novel_divergence is not None:
            self.scoring = replace(self.scoring, novelty_divergence=novel_divergence)
        self.min_confidence = min_confidence
        self.max_level = len(self.ranks) - 1 if max_rank is None else self.taxonomy.level(max_rank)
        self.parents = [self.taxonomy.parents(lv) for lv in range(len(self.ranks))]
        self.labels_mask = [self.taxonomy.label_mask(lv) for lv in range(len(self.ranks))]
        self.rules = AnswerRules(
            self.ranks, self.labels_mask, self.scoring, self.max_level, min_confidence
        )
        self.library = LibraryBarcodes(bundle.references, self.scoring, index_cache)
        branches = bundle.manifest.provenance.get("branches", {})
        self.synthetic_image_branch = branches.get("image", {}).get("kind") == "synthetic"

    # ------------------------------------------------------------------ embeddings
    def decode_photo(self, source: Path | bytes) -> Photo:
        """Decode a photo once: the image branch's pixels, and whether hir-edge drew it (from
        the first kilobytes of the file, where JPEG keeps its comment). A blank frame is an
        :class:`~hir_edge.errors.InputError` (:mod:`hir_edge.photo_qc`)."""
        image = load_image(source, min_size=2 * self.preprocess.image_size)
        blank = blank_frame(image)
        if blank:  # its embedding would still land among the references, and be named
            raise InputError(source_name(source), blank)
        return Photo(preprocess(image, self.preprocess), is_drawn_photo(source))

    def _pixels(self, specimen: Specimen) -> np.ndarray:
        photo = specimen.photo or self.decode_photo(specimen.image)
        return photo.pixels

    @staticmethod
    def _drawn(specimen: Specimen) -> bool:
        return specimen.photo.drawn if specimen.photo else is_drawn_photo(specimen.image)

    def unusable_read(self, sequence: str | None) -> str | None:
        """Why a read carries no DNA evidence (None when it does, or when there is no read).

        A read needs as many called bases (A/C/G/T) as the alignment does; below that (a
        window of Ns, a failed trace) the encoder would still rank taxa, confidently and at
        random. A homopolymer or short tandem repeat is no barcode either
        (:mod:`hir_edge.dna.complexity`): its far best hit would say "order absent".
        """
        if not sequence:
            return None
        called = len(sequence) - sequence.count("N")
        needed = min_called_bases(self.scoring.kmer_k)
        if called < needed:
            return (
                f"read has {called} called bases (A/C/G/T) of {len(sequence)}; "
                f"at least {needed} are needed"
            )
        if not sequence.isascii():  # not cleaned: the aligner names the character
            return None
        return low_complexity(sequence)

    def usable_reads(self, specimens: Sequence[Specimen]) -> np.ndarray:
        """[N] bool: the specimen has a read that carries DNA evidence."""
        return np.array(
            [bool(s.sequence) and not self.unusable_read(s.sequence) for s in specimens],
            dtype=bool,
        )

    def embed(
        self,
        specimens: Sequence[Specimen],
        has_dna: np.ndarray | None = None,
        encode_dna: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Image, DNA and fused embeddings (zero rows where a modality is absent) and gates;
        ``has_dna``: :meth:`usable_reads`, when the caller has it already; ``encode_dna``: the
        reads to run the DNA encoder on (default all; the others' rows stay zero)."""
        n, d = len(specimens), self.bundle.embed_dim
        image = np.zeros((n, d), np.float32)
        dna = np.zeros((n, d), np.float32)
        has_image = np.array([s.image is not None for s in specimens], dtype=bool)
        has_dna = self.usable_reads(specimens) if has_dna is None else has_dna
        encode_dna = has_dna if encode_dna is None else encode_dna
        if (has_image & has_dna & ~encode_dna).any():
            raise ValueError("a read paired with a photo must be encoded: the fusion needs it")
        if has_image.any():
            idx = np.flatnonzero(has_image)
            pixels = np.stack([self._pixels(specimens[i]) for i in idx])
            image[idx] = self.backend.embed_images(pixels)
        if encode_dna.any():
            idx = np.flatnonzero(encode_dna)
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

    # ------------------------------------------------------------------ references
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

    def strand_from_library(self, specimens: Sequence[Specimen]) -> list[Specimen]:
        """Reads of uncertain strand on their library relatives' strand (the library's)."""
        return self.library.strand_from_library(specimens)

    def barcode_alignments(
        self, sequences: Sequence[str], hidden: Sequence[Hidden] | None = None
    ) -> tuple[np.ndarray | None, list[Hit | None] | None]:
        """The reads' identities to the reference barcodes and best hits
        (:meth:`LibraryBarcodes.barcode_alignments`); (None, None) without alignment."""
        if not self.alignment or not sequences:
            return None, None
        return self.library.barcode_alignments(sequences, hidden)

    def _settled_reads(
        self,
        specimens: Sequence[Specimen],
        reads: list[int],
        barcode_sims: np.ndarray | None,
        hits: list[Hit | None] | None,
        hidden: Sequence[Hidden] | None,
    ) -> np.ndarray:
        """[N] the reads alone (no photo) whose barcode votes settle every rank whatever their
        embedding (:func:`~hir_edge.runtime.settled.settled_by_barcodes`): the DNA encoder is
        skipped for them and their answer is the same. All False where the DNA logits also
        hold an embedding-neighbour vote, which the embedding moves."""
        settled = np.zeros(len(specimens), dtype=bool)
        scoring = self.scoring
        weight = scoring.barcode_weight["dna"]
        if self.encode_every_read or hits is None or not weight or scoring.reference_weight["dna"]:
            return settled
        alone = [specimens[i].image is None for i in reads]
        rows = [r for r, hit in enumerate(hits) if hit is not None and alone[r]]
        if not rows:
            return settled
        log_votes = self.reference_votes(barcode_sims[rows], scoring.barcode_temperature)
        # the logits' two parts, from the one formula: the votes at cosine 0, and a cosine's
        # weight (the logit of cosine 1 without votes)
        votes = self._logits("dna", [np.zeros_like(v) for v in log_votes], None, log_votes)
        scales = [float(x[0, 0]) for x in self._logits("dna", [np.ones((1, 1))] * len(votes))]
        masked = None if hidden is None or all(h is None for h in hidden) else _MASKED
        ok = settled_by_barcodes(
            votes, scales, self.bundle.prompt_banks, self.labels_mask, self.parents, masked
        )
        settled[[reads[r] for r in rows]] = ok
        return settled

    def _hidden_taxa(self, hidden: tuple[int, int]) -> list[np.ndarray]:
        """Per rank, the taxa under a hidden taxon (itself at its rank, none above it)."""
        level, taxon = hidden
        masks = [np.zeros(len(p), dtype=bool) for p in self.parents]
        masks[level][taxon] = True
        for lv in range(level + 1, len(masks)):
            masks[lv] = masks[lv - 1][self.parents[lv]]
        return masks

    def _reference_matrix(self, modality: str) -> np.ndarray | None:
        refs = self.bundle.references
        if refs is None:
            return None
        return refs.image if modality == "image" else refs.dna

    @cached_property
    def photo_scope(self) -> PhotoScope | None:
        """The library's species as Gaussians over their photos' embeddings, fitted on first
        use on the references given (None: no reference photos, or too few to fit:
        :meth:`PhotoScope.fit`). Photos are refused by it where the bundle sets a distance
        limit (``scoring.scope_distance``)."""
        refs = self.bundle.references
        if refs is None or refs.image is None:
            return None
        return PhotoScope.fit(refs.image, refs.labels)

    def close(self) -> None:
        """Release the library's aligner."""
        self.library.close()

    # ------------------------------------------------------------------ scoring
    def scores(
        self,
        queries: np.ndarray,
        modality: str,
        reference_queries: np.ndarray | None,
        aligned: tuple[np.ndarray | None, list | None] = (None, None),
        hidden: Sequence[Hidden] | None = None,
    ) -> tuple[list[np.ndarray], np.ndarray | None, np.ndarray | None, list | None]:
        """Per-rank logits — prompt cosine / T, plus w × the embedding-neighbour log-vote, plus
        w_b × the aligned-barcode log-vote, over the rank's logit temperature — the embedding
        similarities and barcode identities to the references, and each read's best barcode
        hit (None where not available). ``aligned``: the queries' barcode identities and hits
        (:meth:`barcode_alignments`, with the same ``hidden``). ``hidden`` takes a taxon out
        of a query's library: its prompts, references and barcodes (the export's open-set
        calibration).

        The export's calibration fits T, w and w_b through the same pieces.
        """
        cos = self.prompt_cosines(queries)
        sims = votes = barcode_votes = None
        barcode_sims, hits = aligned
        refs = self._reference_matrix(modality)
        weight = self.scoring.reference_weight[modality]
        if refs is not None and reference_queries is not None and len(refs):
            sims = reference_queries @ refs.T
            for row, h in enumerate(hidden or ()):
                if h is not None:
                    sims[row, self.library.hidden_references(h)] = -2.0  # below any cosine
            if weight > 0:
                votes = self.reference_votes(sims, self.scoring.reference_temperature)
        barcode_weight = self.scoring.barcode_weight[modality]
        if barcode_weight > 0 and barcode_sims is not None:
            barcode_votes = self.reference_votes(barcode_sims, self.scoring.barcode_temperature)
        logits = self._logits(modality, cos, votes, barcode_votes)
        for row, h in enumerate(hidden or ()):
            if h is not None:
                for lv, mask in enumerate(self._hidden_taxa(h)):
                    logits[lv][row, mask] = _MASKED
        return logits, sims, barcode_sims, hits

    def _logits(
        self,
        modality: str,
        cos: Sequence[np.ndarray],
        votes: Sequence[np.ndarray] | None = None,
        barcode_votes: Sequence[np.ndarray] | None = None,
    ) -> list[np.ndarray]:
        """Per rank, :func:`combine_evidence` over the rank's logit temperature."""
        s = self.scoring
        logits = combine_evidence(
            cos,
            s.temperatures[modality],
            votes,
            s.reference_weight[modality],
            barcode_votes,
            s.barcode_weight[modality],
        )
        return [lg / t for lg, t in zip(logits, s.logit_temperatures[modality])]

    def probabilities(self, logits: list[np.ndarray]) -> list[np.ndarray]:
        return tree_probabilities(logits, self.parents, [1.0] * len(logits))

    # ------------------------------------------------------------------ evidence
    def evidence(
        self, specimens: Sequence[Specimen], hidden: Sequence[Hidden] | None = None
    ) -> tuple[list[Specimen], list[Evidence | None]]:
        """Every specimen's evidence (None: neither a usable read nor a photo), with reads of
        uncertain strand put on the library's strand first. ``hidden``: per specimen, a taxon
        to take out of the library for it (open-set calibration), or None."""
        specimens = self.strand_from_library(specimens)
        # Alignment comes first: a read whose barcode votes settle every rank needs no DNA
        # encoder (runtime/settled.py). identify parallelises whole batches: runtime/parallel.py.
        has_dna = self.usable_reads(specimens)
        reads = np.flatnonzero(has_dna).tolist()
        barcode_sims, hits = self.barcode_alignments(
            [specimens[i].sequence for i in reads],
            None if hidden is None else [hidden[i] for i in reads],
        )
        row_of = {i: row for row, i in enumerate(reads)}
        settled = self._settled_reads(specimens, reads, barcode_sims, hits, hidden)
        emb = self.embed(specimens, has_dna, encode_dna=has_dna & ~settled)
        out: list[Evidence | None] = [None] * len(specimens)
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
            hid = None if hidden is None else [hidden[i] for i in idx]
            aligned = (None, None)
            if seqs is not None and hits is not None:
                rows = [row_of[i] for i in idx]
                aligned = (barcode_sims[rows], [hits[r] for r in rows])
            logits, sims, group_sims, group_hits = self.scores(
                queries, modality, ref_queries, aligned, hid
            )
            probs = self.probabilities(logits)
            path_ids, path_p = greedy_paths(probs, self.parents)
            thresholds = (
                [self.min_confidence] * len(self.ranks)
                if self.min_confidence is not None
                else self.scoring.thresholds[modality]
            )
            levels = assign(path_p, thresholds)
            for row, i in enumerate(idx):
                out[i] = Evidence(
                    modality=modality,
                    probs=[p[row] for p in probs],
                    path=path_ids[row],
                    path_p=path_p[row],
                    level=int(levels[row]),
                    ref_sims=None if sims is None or settled[i] else sims[row],
                    barcode_sims=None if group_sims is None else group_sims[row],
                    hit=None if group_hits is None else group_hits[row],
                    gate=None if np.isnan(emb["gate"][i]) else float(emb["gate"][i]),
                )
            limited = modality == "image" and self.scoring.scope_distance.get("image", -1.0) > 0
            if limited and self.photo_scope is not None:
                for i, distance in zip(idx, self.photo_scope.distances(ref_queries)):
                    out[i].scope_distance = float(distance)
            placement = self.scoring.placement
            reads = [i for i in idx if out[i].hit is not None]
            if placement is not None and seqs is not None and reads:
                if "labelled_margin" in placement.features:
                    self.library.radii()  # the bundle's, or aligned once for this library
                features = read_placement_features(
                    [out[i] for i in reads],
                    [specimens[i].sequence for i in reads],
                    self.bundle.references,
                )
                on_path = np.stack([out[i].path >= 0 for i in reads])
                for i, reach in zip(reads, placement.probabilities(features, on_path)):
                    out[i].reach = reach
        return specimens, out

    # ------------------------------------------------------------------ the answer
    def _test_far_reads(
        self, specimens: Sequence[Specimen], evidence: list[Evidence | None]
    ) -> dict[int, str]:
        """Sets ``chance_identity`` of each read too far to place (:mod:`.chance`), and
        returns the paired specimens whose read is not recognisably COI, by index, with why.

        Those become their photo's, as one whose read is unusable: embedded again without the
        read, which had pulled the fused embedding and the barcode votes.
        """
        floor = self.rules.far_identity()
        far = [
            k
            for k, ev in enumerate(evidence)
            if ev is not None and ev.hit is not None and ev.hit.identity < floor
        ]
        if not far or not self.alignment:
            return {}
        chance = chance_identities(self.barcode_alignments, [specimens[k].sequence for k in far])
        for k, identity in zip(far, chance):
            evidence[k].chance_identity = identity
        junk = {
            k: why
            for k in far
            if evidence[k].modality == "fused" and (why := AnswerRules.not_coi(evidence[k]))
        }
        if junk:
            _, alone = self.evidence([replace(specimens[k], sequence=None, qc=None) for k in junk])
            for k, ev in zip(junk, alone):
                evidence[k] = ev
        return junk

    def identify(self, specimens: Sequence[Specimen]) -> list[Identification]:
        """Identify a batch; photo-only, read-only and paired specimens may be mixed. A photo
        that does not decode, or a blank frame, raises :class:`~hir_edge.errors.InputError`
        (``identify`` decodes each photo first with :meth:`decode_photo` and skips those)."""
        specimens, evidence = self.evidence(specimens)
        junk = self._test_far_reads(specimens, evidence)
        results = []
        for k, (specimen, ev) in enumerate(zip(specimens, evidence)):
            unusable = self.unusable_read(specimen.sequence) or junk.get(k)
            if ev is None:  # neither a usable read nor a photo
                results.append(
                    fmt.unanswered(
                        self.taxonomy, specimen.id, unusable or "no usable read or photo"
                    )
                )
                continue
            warnings = [f"{unusable}: identified from the photo alone"] if unusable else []
            if ev.modality != "dna" and self.synthetic_image_branch and not self._drawn(specimen):
                warnings.append(
                    "this bundle's image branch was trained on drawn photos: the photo's evidence"
                    " is unreliable for a real specimen"
                )
            results.append(
                fmt.identification(
                    self.taxonomy,
                    self.labels_mask,
                    self.bundle.references,
                    specimen,
                    ev,
                    self.rules.decide(ev),
                    self.top_k,
                    warnings,
                )
            )
        return results
