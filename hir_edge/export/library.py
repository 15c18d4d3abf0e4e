"""Export stages that run specimens through the shipped graphs: the model inputs, the reference
library and the calibration of the bundle's scoring."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hir_edge.data.hdf5 import SpecimenStore
from hir_edge.export.manifest import finalize_manifest
from hir_edge.runtime.bundle import MANIFEST, REFERENCES, TAXONOMY


def spread_indices(n: int, count: int | None) -> np.ndarray:
    if count is None or count >= n:
        return np.arange(n)
    return np.linspace(0, n - 1, count).round().astype(np.int64)


@dataclass
class FieldInputs:
    """Model inputs of some specimens, built exactly as the runtime builds them."""

    pixels: np.ndarray  # [N, 3, S, S] preprocessed photos (zeros where none)
    has_image: np.ndarray
    ids: np.ndarray  # [N, T] DNA tokens
    mask: np.ndarray
    has_dna: np.ndarray
    sequences: list[str]  # cleaned, oriented reads ("" where none)


def cleaned_barcode(barcode: str) -> str:
    """A stored barcode cleaned and put on its coding strand, as the field cleans a read; ""
    when there is none or it is not DNA."""
    from hir_edge.dna.qc import clean_read

    if not barcode:
        return ""
    try:
        return clean_read(barcode, orient=True)[0]
    except ValueError:
        return ""


def field_inputs(store: SpecimenStore, indices, preprocess_config, tokenizer) -> FieldInputs:
    """Preprocessed photos and tokenised reads of ``indices`` (the runtime's own code path)."""
    from hir_edge.images import load_image, preprocess

    pixels, has_image, seqs = [], [], []
    barcodes = store.barcodes()
    size = preprocess_config.image_size
    for i in indices:
        data = store.image_bytes(int(i))
        if data is None:
            pixels.append(np.zeros((3, size, size), np.float32))
            has_image.append(False)
        else:
            pixels.append(preprocess(load_image(data, min_size=2 * size), preprocess_config))
            has_image.append(True)
        seqs.append(cleaned_barcode(barcodes[int(i)]))
    ids, mask = tokenizer.encode_batch([s or "N" for s in seqs])
    return FieldInputs(
        np.stack(pixels).astype(np.float32),
        np.array(has_image),
        ids.astype(np.int64),
        mask.astype(np.int64),
        np.array([bool(s) for s in seqs]),
        seqs,
    )


def batches(arrays: dict[str, np.ndarray], batch: int = 32) -> list[dict[str, np.ndarray]]:
    n = len(next(iter(arrays.values())))
    return [{k: v[i : i + batch] for k, v in arrays.items()} for i in range(0, n, batch)]


def write_references(
    out: Path,
    options,
    field_model,
    precision: str,
    calib_path: Path,
    splits: list[str],
    embedded: str | None = None,
    radii_scoring: dict | None = None,
) -> tuple[int, np.ndarray | None]:
    """Embed the specimens of ``splits`` through the shipped graphs as the reference library
    (with their cleaned barcodes); returns how many, and their radii. Labels outside the
    bundle's taxonomy (a species only in a validation split) are kept down to the deepest rank
    it holds.

    ``embedded`` names the split the bundle's current library already holds (the same
    specimens, through the same graphs): its rows are taken from there, not embedded again.
    ``radii_scoring``: the manifest's scoring section, to align each reference's radius per
    rank (:func:`reference_radii`) into the library, so that ``identify`` never has to."""
    from hir_edge.runtime.backends import OnnxRuntimeBackend
    from hir_edge.runtime.bundle import Bundle, Manifest
    from hir_edge.taxonomy import Taxonomy

    taxonomy = Taxonomy.load(out / TAXONOMY)
    bundle = Bundle(out, Manifest.from_dict(json.loads((out / MANIFEST).read_text())), taxonomy, [])
    backend = OnnxRuntimeBackend(bundle, precision, device="cpu")
    with_dna = bundle.has_part("dna")
    ids, labels, dna, image, barcodes = [], [], [], [], []
    for split in splits:
        if split == embedded:
            with np.load(out / REFERENCES) as done:
                ids += done["ids"].tolist()
                labels.append(done["labels"])
                image.append(done["image"])
                if with_dna:
                    dna.append(done["dna"])
                    barcodes += done["barcodes"].tolist()
            continue
        store = SpecimenStore(calib_path, split)
        idx = spread_indices(len(store), options.max_references)
        for start in range(0, len(idx), 128):
            chunk = idx[start : start + 128]
            x = field_inputs(store, chunk, field_model.preprocess, field_model.dna_tokenizer)
            if with_dna:
                dna.append(np.where(x.has_dna[:, None], backend.embed_dna(x.ids, x.mask), 0.0))
            image.append(np.where(x.has_image[:, None], backend.embed_images(x.pixels), 0.0))
        lineages, processids, raw = store.lineages(), store.processids(), store.barcodes()
        labels.append(taxonomy.encode_many(lineages[int(i)] for i in idx))
        ids += [processids[int(i)] for i in idx]
        barcodes += [_clean_or_empty(raw[int(i)]).encode("ascii") for i in idx]
    arrays = {
        "ids": np.array(ids),
        "labels": np.concatenate(labels),
        "image": np.concatenate(image).astype(np.float16),
    }
    radii = None
    if with_dna:  # a photo-only bundle has neither a DNA branch nor barcodes to align
        arrays["dna"] = np.concatenate(dna).astype(np.float16)
        arrays["barcodes"] = np.array(barcodes)
        if radii_scoring is not None:
            radii = reference_radii(arrays["labels"], arrays["barcodes"], radii_scoring)
        if radii is not None:
            arrays["radii"] = radii
    np.savez_compressed(out / REFERENCES, **arrays)
    return len(ids), radii


def reference_radii(labels: np.ndarray, barcodes: np.ndarray, scoring: dict) -> np.ndarray | None:
    """[M, L] float32 each reference's radius per rank (:meth:`LibraryBarcodes.radii`), aligned
    with the search settings of the manifest's ``scoring`` section; None without barcodes."""
    from hir_edge.runtime.barcodes import LibraryBarcodes
    from hir_edge.runtime.bundle import References
    from hir_edge.runtime.scoring import ScoringSettings

    settings = ScoringSettings.from_section(scoring, labels.shape[1])
    library = LibraryBarcodes(
        References(np.arange(len(labels)), labels, None, barcodes=barcodes), settings
    )
    radii = library.radii()
    library.close()
    return None if radii is None else radii.astype(np.float32)


def _clean_or_empty(raw: str) -> str:
    from hir_edge.dna.qc import clean_read

    try:
        return clean_read(raw, orient=True)[0] if raw else ""
    except ValueError:
        return ""


def calibrate_scoring(out: Path, options, field_model, precision: str, calib_path: Path) -> dict:
    """The bundle's scoring, fitted on the validation specimens as the field will see them:
    clean reads, degraded copies (``calibration_noise``) and fragments
    (``calibration_fragments``), each copy paired with the specimen's photo for the fused path."""
    from hir_edge.degrade import degrade_dna_seeded, fragment_seeded
    from hir_edge.dna.align import min_called_bases
    from hir_edge.export.calibrate import ValidationSet, fit_scoring
    from hir_edge.runtime.backends import OnnxRuntimeBackend
    from hir_edge.runtime.bundle import open_bundle
    from hir_edge.runtime.identifier import Identifier

    manifest = json.loads((out / MANIFEST).read_text())
    finalize_manifest(out, manifest)  # checksums, so the bundle opens through the normal path
    bundle = open_bundle(out)
    backend = OnnxRuntimeBackend(bundle, precision, device="cpu")
    identifier = Identifier(bundle, backend)
    store = SpecimenStore(calib_path, options.val_split)
    idx = spread_indices(len(store), 2000)
    variants = []  # (name, read -> field copy of it), each seeded per specimen
    if options.calibration_noise:
        from hir_edge.degrade import get_preset

        noise = get_preset(options.calibration_noise).dna
        variants.append(("noisy", lambda s, i: degrade_dna_seeded(s, noise, 1, i)))
    needed = min_called_bases(identifier.scoring.kmer_k)  # no window of Ns: the field refuses one
    for n, length in enumerate(options.calibration_fragments):
        variants.append(
            (
                f"fragment_{length}bp",
                lambda s, i, length=length, n=n: fragment_seeded(s, length, 2 + 10 * n, i, needed),
            )
        )
    # Field photos are not all sharp: blurred copies (the noise preset's box blur) of the
    # validation photos join the clean ones in the photo-only fit, as degraded reads do for DNA.
    blur = 1
    if options.calibration_noise:
        from hir_edge.degrade import get_preset

        blur = get_preset(options.calibration_noise).blur_kernel
    zi, zd, fused, has_img, has_dna, seqs, zi_blur = [], [], [], [], [], [], []
    copies: dict[str, dict[str, list]] = {
        name: {"dna": [], "fused": [], "seqs": []} for name, _ in variants
    }
    with_dna = bundle.has_part("dna")
    if not with_dna:
        variants = []
    for start in range(0, len(idx), 128):  # bounded memory: 128 photos at a time
        x = field_inputs(
            store, idx[start : start + 128], field_model.preprocess, field_model.dna_tokenizer
        )
        zi.append(backend.embed_images(x.pixels))
        if blur > 1:
            from hir_edge.degrade import blur_chw

            zi_blur.append(backend.embed_images(blur_chw(x.pixels, blur)))
        if with_dna:
            zd.append(backend.embed_dna(x.ids, x.mask))
            fused.append(backend.fuse(zi[-1], zd[-1])[0])
        else:  # photo-only: no read is embedded, every specimen counts as read-less
            zd.append(np.zeros_like(zi[-1]))
            fused.append(np.zeros_like(zi[-1]))
            x.has_dna[:] = False
        has_img.append(x.has_image)
        has_dna.append(x.has_dna)
        seqs += x.sequences
        for name, make in variants:
            reads = [make(s, start + j) if s else "" for j, s in enumerate(x.sequences)]
            ids, mask = field_model.dna_tokenizer.encode_batch([s or "N" for s in reads])
            z = backend.embed_dna(ids.astype(np.int64), mask.astype(np.int64))
            copies[name]["dna"].append(z)
            copies[name]["fused"].append(backend.fuse(zi[-1], z)[0])
            copies[name]["seqs"] += reads
    zi, zd, fused = np.concatenate(zi), np.concatenate(zd), np.concatenate(fused)
    has_img, has_dna = np.concatenate(has_img), np.concatenate(has_dna)
    labels = bundle.taxonomy.encode_many(store.lineages()[int(i)] for i in idx)
    both = has_img & has_dna
    dna_q, dna_lab, dna_seqs = (
        [zd[has_dna]],
        [labels[has_dna]],
        [s for s, ok in zip(seqs, has_dna) if ok],
    )
    fus_q, fus_ref, fus_lab = [fused[both]], [zd[both]], [labels[both]]
    fus_seqs = [s for s, ok in zip(seqs, both) if ok]
    for name, _ in variants:  # in the order of ValidationSet.read_groups
        z, zf = np.concatenate(copies[name]["dna"]), np.concatenate(copies[name]["fused"])
        dna_q.append(z[has_dna])
        dna_lab.append(labels[has_dna])
        dna_seqs += [s for s, ok in zip(copies[name]["seqs"], has_dna) if ok]
        fus_q.append(zf[both])
        fus_ref.append(z[both])
        fus_lab.append(labels[both])
        fus_seqs += [s for s, ok in zip(copies[name]["seqs"], both) if ok]
    image_q, image_lab = [zi[has_img]], [labels[has_img]]
    if zi_blur:
        image_q.append(np.concatenate(zi_blur)[has_img])
        image_lab.append(labels[has_img])
    image_q, image_lab = np.concatenate(image_q), np.concatenate(image_lab)
    val = ValidationSet(
        queries={
            "image": image_q,
            "dna": np.concatenate(dna_q),
            "fused": np.concatenate(fus_q),
        },
        ref_queries={
            "image": image_q,
            "dna": np.concatenate(dna_q),
            "fused": np.concatenate(fus_ref),
        },
        labels={
            "image": image_lab,
            "dna": np.concatenate(dna_lab),
            "fused": np.concatenate(fus_lab),
        },
        sequences={"dna": dna_seqs, "fused": fus_seqs},
        read_groups={
            **{
                modality: [(kind, int(mask.sum())) for kind in ("clean", *(n for n, _ in variants))]
                for modality, mask in (("dna", has_dna), ("fused", both))
            },
            "image": [("clean", int(has_img.sum()))]
            + ([("blurred", int(has_img.sum()))] if zi_blur else []),
        },
    )
    scoring = fit_scoring(identifier, val, options.target_precision)
    scoring["calibration_noise"] = options.calibration_noise
    scoring["calibration_fragments"] = list(options.calibration_fragments)
    identifier.close()
    refs = bundle.references
    if with_dna and refs is not None and refs.barcodes is not None and any(refs.barcodes):
        from hir_edge.export.open_set import calibrate_placement

        manifest["scoring"] = scoring  # the placement is fitted through the fitted scoring
        finalize_manifest(out, manifest)
        scoring["placement"], scoring["open_set"] = calibrate_placement(
            out, options, precision, calib_path, seqs, labels
        )
    bundle.close()
    return scoring
