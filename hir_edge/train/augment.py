"""Training-time image augmentation (CLIBD's random resized crop, flips and rotation, and an
optional colour jitter for real photos).

Photos are never blurred here (METHOD.md §5 keeps that for evaluation); reads can be degraded
and windowed (:class:`ReadAugment`, a declared deviation for the learned DNA branch). Every
specimen's augmentation is seeded from (seed, epoch, index), so a run gives the same
images whatever the number of loader workers, and a resumed run continues bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from hir_edge.images import PreprocessConfig, preprocess
from hir_edge.train.config import AugmentSection, ReadAugmentSection


class TrainTransform:
    """PIL image → normalised float tensor [3, S, S] with CLIBD-style augmentation."""

    def __init__(self, preprocess_config: PreprocessConfig, augment: AugmentSection):
        self.pre = preprocess_config
        self.aug = augment

    def __call__(self, image: Image.Image) -> torch.Tensor:
        if not self.aug.enabled:
            return torch.from_numpy(preprocess(image, self.pre))
        import torchvision.transforms.functional as TF
        from torchvision.transforms import InterpolationMode, RandomResizedCrop

        size = self.aug.image_size or self.pre.image_size
        if self.aug.rotation_degrees > 0:
            angle = float(
                torch.empty(1).uniform_(-self.aug.rotation_degrees, self.aug.rotation_degrees)
            )
            fill = tuple(round(255 * m) for m in self.pre.mean)
            image = image.rotate(angle, resample=Image.BILINEAR, fillcolor=fill)
        top, left, h, w = RandomResizedCrop.get_params(
            image, scale=tuple(self.aug.random_resized_crop_scale), ratio=(3 / 4, 4 / 3)
        )
        interp = (
            InterpolationMode.BICUBIC
            if self.pre.interpolation == "bicubic"
            else InterpolationMode.BILINEAR
        )
        image = TF.resized_crop(image, top, left, h, w, [size, size], interpolation=interp)
        if torch.rand(1).item() < self.aug.hflip:
            image = TF.hflip(image)
        if torch.rand(1).item() < self.aug.vflip:
            image = TF.vflip(image)
        for amount, adjust in (
            (self.aug.brightness, TF.adjust_brightness),
            (self.aug.contrast, TF.adjust_contrast),
            (self.aug.saturation, TF.adjust_saturation),
        ):
            if amount > 0:
                image = adjust(image, float(torch.empty(1).uniform_(1 - amount, 1 + amount)))
        pixels = np.asarray(image, dtype=np.float32) / 255.0
        mean = np.asarray(self.pre.mean, np.float32)
        std = np.asarray(self.pre.std, np.float32)
        return torch.from_numpy(((pixels - mean) / std).transpose(2, 0, 1).copy())


class ReadAugment:
    """A cleaned read → a degraded, windowed or reverse-complemented copy (see
    :class:`~hir_edge.train.config.ReadAugmentSection`). Its draws come from torch's RNG, which
    :class:`SeededDataset` seeds per (seed, epoch, specimen)."""

    def __init__(self, section: ReadAugmentSection):
        from hir_edge.degrade import get_preset

        self.section = section
        self.preset = get_preset(section.preset)

    @property
    def enabled(self) -> bool:
        s = self.section
        return max(s.degrade_prob, s.window_prob, s.reverse_complement_prob) > 0

    def __call__(self, seq: str) -> str:
        from hir_edge.degrade import degrade_dna_seeded, fragment_seeded
        from hir_edge.dna.qc import reverse_complement

        s = self.section
        if not seq:
            return seq
        seed = int(torch.randint(2**31 - 1, (1,)))
        if torch.rand(1).item() < s.window_prob:
            length = int(torch.randint(s.window[0], s.window[1] + 1, (1,)))
            seq = fragment_seeded(seq, length, seed, 0, min_called=length // 2)
        if torch.rand(1).item() < s.degrade_prob:
            factor = float(torch.empty(1).uniform_(*s.severity))
            seq = degrade_dna_seeded(seq, self.preset.scaled(factor).dna, seed, 1)
        if torch.rand(1).item() < s.reverse_complement_prob:
            seq = reverse_complement(seq)
        return seq


class SeededDataset(Dataset):
    """Wraps a dataset so item i of epoch e is drawn under the RNG seed (seed, e, i).

    With ``text_coarsen_prob`` > 0 the specimen's text is, with that probability, the prompt of
    one of its coarser known ranks (uniformly) instead of its deepest one. Prompt ranking embeds
    every rank's taxa from their own text ("Diptera", "Diptera Chironomidae"); a text tower
    trained only on full paths never learns where those shorter strings belong, and order
    accuracy then trails species accuracy. A pretrained BioCLIP text tower has seen all ranks,
    so the paper recipes leave this at 0. Ranks that tell nothing apart are not drawn: an
    "incertae sedis" placeholder (its prompt is its parent's), and a rank with a single taxon
    in the whole taxonomy (every EU-Moth is "Lepidoptera").
    """

    def __init__(self, base: Dataset, seed: int, taxonomy=None, text_coarsen_prob: float = 0.0):
        if text_coarsen_prob and taxonomy is None:
            raise ValueError("text_coarsen_prob needs the taxonomy to write coarser prompts")
        self.base = base
        self.seed = seed
        self.epoch = 0
        self.taxonomy = taxonomy
        self.text_coarsen_prob = text_coarsen_prob
        self._informative = (
            []
            if taxonomy is None
            else [
                taxonomy.label_mask(level) & (taxonomy.size(level) > 1)
                for level in range(taxonomy.num_ranks)
            ]
        )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int):
        seed = int(np.random.SeedSequence([self.seed, self.epoch, int(index)]).generate_state(1)[0])
        with torch.random.fork_rng(devices=[]):
            # The CPU generator alone: torch.manual_seed also queues a seed for every
            # accelerator backend, with a stack trace each, on every item.
            torch.default_generator.manual_seed(seed)
            item = self.base[index]
            if self.text_coarsen_prob > 0 and torch.rand(1).item() < self.text_coarsen_prob:
                labels = item["labels"].tolist()
                known = [lv for lv, y in enumerate(labels) if y >= 0]
                coarser = [lv for lv in known[:-1] if self._informative[lv][labels[lv]]]
                if coarser:
                    level = coarser[int(torch.randint(len(coarser), (1,)))]
                    item["text"] = self.taxonomy.prompt(level, int(item["labels"][level]))
                    item["text_level"] = level
            return item
