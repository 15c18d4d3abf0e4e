"""The torch ``Dataset`` over one split of an HDF5 specimen file, and its collate function.

Each item carries every modality the specimen has, plus flags for the ones it lacks, so one
batch can mix photo-only, DNA-only and paired specimens: the losses mask by ``has_image`` /
``has_dna`` instead of the loader dropping records.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from hir_edge.data.hdf5 import SpecimenStore
from hir_edge.errors import InputError
from hir_edge.taxonomy import MISSING, Taxonomy, depth, prompt_text, truncate_at_gap


class DnaTokenizer(Protocol):
    """What the dataset needs of ``hir_edge.dna.tokens``' tokenizers."""

    max_length: int

    def encode_batch(self, seqs: Sequence[str]) -> tuple[np.ndarray, np.ndarray]: ...


ImageTransform = Callable[[Image.Image], torch.Tensor]


class SpecimenDataset(Dataset):
    """Specimens of one split as training items.

    Args:
        path: the HDF5 file (CLIBD layout, see :mod:`hir_edge.data.hdf5`).
        split: the group to read.
        taxonomy: label ids and prompt text; ranks outside it encode as -1.
        image_transform: PIL RGB image -> float tensor [3, S, S] (an open_clip preprocess).
            None: images are not decoded and items have no ``image`` key.
        dna_tokenizer: ``encode_batch`` + ``max_length`` (``hir_edge.dna.tokens``). None: items
            have no ``dna_ids`` / ``dna_mask`` keys.
        read_transform: cleaned read → the read the encoder sees (training-time degradation).

    Items are dicts: ``image`` FloatTensor [3, S, S] (zeros when the specimen has none),
    ``has_image`` bool, ``dna_ids`` / ``dna_mask`` LongTensor [max_length] (an empty read's
    encoding when there is no usable barcode), ``has_dna`` bool, ``text`` (prompt of the
    deepest known rank), ``text_level`` (the rank it names; -1 when no rank is labelled),
    ``labels`` LongTensor [ranks] (-1 = missing), ``processid`` str,
    ``index`` int.
    """

    def __init__(
        self,
        path: str | Path,
        split: str,
        taxonomy: Taxonomy,
        image_transform: ImageTransform | None = None,
        dna_tokenizer: DnaTokenizer | None = None,
        read_transform: Callable[[str], str] | None = None,
    ):
        self.store = SpecimenStore(path, split)
        self.read_transform = read_transform
        self.taxonomy = taxonomy
        self.image_transform = image_transform
        self.dna_tokenizer = dna_tokenizer
        self._blank: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.store)

    def labels(self) -> np.ndarray:
        """[N, ranks] label ids of the whole split (for :class:`TaxonomyBatchSampler`)."""
        return self.taxonomy.encode_many(self.store.lineages())

    def text(self, lineage: Sequence[str | None], labels: Sequence[int]) -> str:
        """Prompt of the deepest rank with a label; the lineage's own names when none has one."""
        known = [level for level, label in enumerate(labels) if label != MISSING]
        if known:
            return self.taxonomy.prompt(known[-1], labels[known[-1]])
        lin = truncate_at_gap(tuple(lineage))
        return prompt_text([n for n in lin[: depth(lin)] if n is not None])

    def __getitem__(self, index: int) -> dict[str, Any]:
        specimen = self.store[index]
        labels = self.taxonomy.encode(specimen.lineage)
        known = [level for level, label in enumerate(labels) if label != MISSING]
        item: dict[str, Any] = {
            "text": self.text(specimen.lineage, labels),
            "text_level": known[-1] if known else -1,
            "labels": torch.tensor(labels, dtype=torch.long),
            "processid": specimen.processid,
            "index": int(index),
        }
        item.update(self._image(specimen.image, specimen.processid))
        item.update(self._dna(specimen.barcode, specimen.processid))
        return item

    # -- modalities
    def _image(self, data: bytes | None, processid: str) -> dict[str, Any]:
        if self.image_transform is None:
            return {"has_image": data is not None}
        from hir_edge.images import load_image

        if data is not None:
            try:
                return {"image": self.image_transform(load_image(data)), "has_image": True}
            except InputError as err:
                warnings.warn(
                    f"{self.store.path}: split {self.store.split!r}: record {processid!r}: "
                    f"image skipped: {err.message}",
                    stacklevel=2,
                )
        return {"image": self._blank_image(), "has_image": False}

    def _blank_image(self) -> torch.Tensor:
        """Zeros shaped like the transform's output, worked out once by transforming a blank."""
        if self._blank is None:
            sample = self.image_transform(Image.new("RGB", (256, 256)))  # type: ignore[misc]
            self._blank = torch.zeros_like(sample)
        return self._blank.clone()

    def _dna(self, barcode: str, processid: str) -> dict[str, Any]:
        seq = ""
        if barcode:
            from hir_edge.dna.io import clean_read

            try:
                seq, _ = clean_read(barcode)
            except ValueError as err:
                warnings.warn(
                    f"{self.store.path}: split {self.store.split!r}: record {processid!r}: "
                    f"barcode skipped: {err}",
                    stacklevel=2,
                )
        if self.dna_tokenizer is None:
            return {"has_dna": bool(seq)}
        if seq and self.read_transform is not None:
            seq = self.read_transform(seq)
        # No barcode: the tokenizer's encoding of an empty read (its special tokens under
        # mask 1), so the encoder still gets a well-formed input; has_dna=False masks the loss.
        ids, mask = self.dna_tokenizer.encode_batch([seq])
        length = int(self.dna_tokenizer.max_length)
        if ids.shape != (1, length) or mask.shape != (1, length):
            raise ValueError(
                f"the DNA tokenizer returned ids {ids.shape} and mask {mask.shape}; "
                f"expected (1, {length}) (padded to its max_length)"
            )
        return {
            "dna_ids": torch.from_numpy(np.asarray(ids[0], dtype=np.int64)),
            "dna_mask": torch.from_numpy(np.asarray(mask[0], dtype=np.int64)),
            "has_dna": bool(seq),
        }


def collate_specimens(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack a list of items: tensors on a new first axis, flags and indices as tensors,
    strings (``text``, ``processid``) as lists."""
    if not batch:
        raise ValueError("cannot collate an empty batch")
    out: dict[str, Any] = {}
    for key in batch[0]:
        values = [item[key] for item in batch]
        first = values[0]
        if isinstance(first, torch.Tensor):
            out[key] = torch.stack(values)
        elif isinstance(first, bool):
            out[key] = torch.tensor(values, dtype=torch.bool)
        elif isinstance(first, int):
            out[key] = torch.tensor(values, dtype=torch.long)
        else:
            out[key] = list(values)
    return out
