"""Embeddings of a whole split under one condition (Clean, Noisy I, Noisy D, Noisy I+D).

Inputs go through the same numpy path as the field runtime (``hir_edge.images.preprocess``,
``hir_edge.dna.io.clean_read``, the DNA tokenizer), and degradations are applied on the fly
and deterministically: specimen i is degraded with ``specimen_rng(seed, i)`` whatever the batch
size. Photos are decoded batch by batch, so 225k specimens never sit in memory at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from hir_edge.data.hdf5 import SpecimenStore
from hir_edge.degrade import DegradationPreset, blur_chw, degrade_dna_seeded
from hir_edge.dna.io import clean_read
from hir_edge.errors import InputError
from hir_edge.images import load_image, preprocess
from hir_edge.progress import progress
from hir_edge.taxonomy import Taxonomy


@dataclass(frozen=True)
class Condition:
    """Which modalities are degraded (METHOD.md §6)."""

    name: str
    noisy_image: bool
    noisy_dna: bool

    @property
    def label(self) -> str:
        return {
            "clean": "Clean",
            "noisy_i": "Noisy I",
            "noisy_d": "Noisy D",
            "noisy_id": "Noisy I+D",
        }[self.name]


CONDITIONS: dict[str, Condition] = {
    "clean": Condition("clean", False, False),
    "noisy_i": Condition("noisy_i", True, False),
    "noisy_d": Condition("noisy_d", False, True),
    "noisy_id": Condition("noisy_id", True, True),
}


@dataclass
class SplitEmbeddings:
    """Per-specimen embeddings of one split and condition (float32, L2-normalised rows).

    ``image``/``dna`` rows of specimens without that modality are zeros (``has_*`` False).
    ``fused``/``gate`` come from the model's GatedFusion (None without a fusion head); the
    gate is its mean over dimensions (the image's share).
    """

    image: np.ndarray
    dna: np.ndarray
    has_image: np.ndarray
    has_dna: np.ndarray
    labels: np.ndarray
    fused: np.ndarray | None = None
    gate: np.ndarray | None = None

    def average(self) -> np.ndarray:
        """I+DT Avg: normalised mean of the image and DNA embeddings."""
        return _normalise(self.image + self.dna)

    def save(self, path) -> None:
        arrays = {k: v for k, v in self.__dict__.items() if v is not None}
        from hir_edge.io import atomic_path

        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    @classmethod
    def load(cls, path) -> SplitEmbeddings:
        with np.load(path) as data:
            return cls(**{k: data[k] for k in data.files})


def _normalise(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


@torch.no_grad()
def fuse_embeddings(model, image: np.ndarray, dna: np.ndarray, batch_size: int = 4096):
    """GatedFusion of precomputed image and DNA embeddings (e.g. a noisy photo with a noisy read).

    Returns (fused [N, d], mean gate [N]); the normalised average when the model has no head.
    """
    fused, gates = [], []
    was_training = model.training
    model.eval()
    device = model.logit_scale.device
    for start in range(0, len(image), batch_size):
        zi = torch.from_numpy(image[start : start + batch_size]).to(device)
        zd = torch.from_numpy(dna[start : start + batch_size]).to(device)
        f, g = model.fuse(zi, zd)
        fused.append(f.float().cpu().numpy())
        gates.append(g.float().mean(dim=1).cpu().numpy())
    model.train(was_training)
    if not fused:
        return np.zeros_like(image), np.zeros(0, np.float32)
    return np.concatenate(fused), np.concatenate(gates)


def prompt_banks(model, taxonomy: Taxonomy) -> list[np.ndarray]:
    """One [n_l, d] array of normalised prompt embeddings per rank (the text tower's output)."""
    return [
        model.embed_prompts(taxonomy.prompts(level)).float().cpu().numpy()
        for level in range(taxonomy.num_ranks)
    ]


def _image_input(data: bytes | None, model, noisy: bool, blur_kernel: int) -> np.ndarray | None:
    if data is None:
        return None
    try:
        pixels = preprocess(
            load_image(data, min_size=2 * model.preprocess.image_size), model.preprocess
        )
    except InputError:
        return None
    return blur_chw(pixels, blur_kernel) if noisy and blur_kernel > 1 else pixels


def _dna_input(
    raw: str, noisy: bool, preset: DegradationPreset | None, seed: int, index: int
) -> str:
    if not raw:
        return ""
    try:
        seq, _ = clean_read(raw, orient=True)
    except ValueError:
        return ""
    if noisy and preset is not None:
        seq = degrade_dna_seeded(seq, preset.dna, seed, index)
    return seq


@torch.no_grad()
def embed_split(
    model,
    store: SpecimenStore,
    taxonomy: Taxonomy,
    *,
    condition: Condition = CONDITIONS["clean"],
    preset: DegradationPreset | None = None,
    seed: int = 0,
    indices: Sequence[int] | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    quiet: bool = True,
    workers: int = 2,
    modalities: tuple[str, ...] = ("image", "dna"),
) -> SplitEmbeddings:
    """Embed (a subset of) a split under ``condition``.

    Args:
        model: a HirModel (eval mode is set here and restored after).
        store: the split.
        taxonomy: label ids (the training taxonomy).
        condition: which modalities to degrade.
        preset: degradation values (required for a noisy condition).
        seed: degradation seed; specimen i uses ``specimen_rng(seed, i)`` (i = its index in
            the split, so subsets see the same noise as the full split).
        indices: specimens to embed (default: all).
        batch_size: specimens per forward pass.
        device: where the model runs.
        quiet: no progress bar.
        workers: threads decoding photos (Pillow releases the GIL while decoding).
        modalities: which towers to run; the other's rows stay zero (``has_*`` False), and no
            fused embedding is computed unless both run.
    """
    do_image, do_dna = "image" in modalities, "dna" in modalities
    if (condition.noisy_image or condition.noisy_dna) and preset is None:
        raise ValueError(f"condition {condition.name!r} needs a degradation preset")
    blur = preset.blur_kernel if preset is not None else 1
    indices = np.arange(len(store)) if indices is None else np.asarray(indices, dtype=np.int64)
    lineages = store.lineages()
    barcodes = store.barcodes()
    labels = taxonomy.encode_many(lineages[i] for i in indices)
    d = model.embed_dim
    n = len(indices)
    out = SplitEmbeddings(
        image=np.zeros((n, d), np.float32),
        dna=np.zeros((n, d), np.float32),
        has_image=np.zeros(n, bool),
        has_dna=np.zeros(n, bool),
        labels=labels,
        fused=np.zeros((n, d), np.float32)
        if model.fusion is not None and do_image and do_dna
        else None,
        gate=np.zeros(n, np.float32) if model.fusion is not None and do_image and do_dna else None,
    )
    was_training = model.training
    model.eval()
    device = torch.device(device)
    size = model.preprocess.image_size
    starts = range(0, n, batch_size)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for start in progress(
            starts, total=len(starts), desc=f"embed {condition.name}", quiet=quiet
        ):
            idx = indices[start : start + batch_size]
            sl = slice(start, start + len(idx))
            if do_image:
                pix = list(
                    pool.map(
                        lambda i: _image_input(
                            store.image_bytes(int(i)), model, condition.noisy_image, blur
                        ),
                        idx,
                    )
                )
                has_img = np.array([p is not None for p in pix])
                blank = np.zeros((3, size, size), np.float32)
                images = np.stack([p if p is not None else blank for p in pix])
                z_i = model.encode_image(torch.from_numpy(images).to(device))
                out.image[sl] = np.where(has_img[:, None], z_i.float().cpu().numpy(), 0.0)
                out.has_image[sl] = has_img
            if do_dna:
                seqs = [
                    _dna_input(barcodes[int(i)], condition.noisy_dna, preset, seed, int(i))
                    for i in idx
                ]
                has_dna = np.array([bool(s) for s in seqs])
                ids, mask = model.tokenize_dna([s if s else "N" for s in seqs])
                z_d = model.encode_dna(ids.to(device), mask.to(device))
                out.dna[sl] = np.where(has_dna[:, None], z_d.float().cpu().numpy(), 0.0)
                out.has_dna[sl] = has_dna
            if out.fused is not None:
                fused, gate = model.fuse(z_i, z_d)
                out.fused[sl] = fused.float().cpu().numpy()
                out.gate[sl] = gate.float().mean(dim=1).cpu().numpy()
    model.train(was_training)
    return out
