"""Training-time image augmentation (CLIBD's: random resized crop, flips, rotation).

Degradations (blur, noisy reads) are never used here: METHOD.md §5 keeps them for evaluation.
Every specimen's augmentation is seeded from (seed, epoch, index), so a run gives the same
images whatever the number of loader workers, and a resumed run continues bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from hir_edge.images import PreprocessConfig, preprocess
from hir_edge.train.config import AugmentSection


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

        size = self.pre.image_size
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
        pixels = np.asarray(image, dtype=np.float32) / 255.0
        mean = np.asarray(self.pre.mean, np.float32)
        std = np.asarray(self.pre.std, np.float32)
        return torch.from_numpy(((pixels - mean) / std).transpose(2, 0, 1).copy())


class SeededDataset(Dataset):
    """Wraps a dataset so item i of epoch e is drawn under the RNG seed (seed, e, i).

    With ``text_coarsen_prob`` > 0 the specimen's text is, with that probability, the prompt of
    one of its coarser known ranks (uniformly) instead of its deepest one. Prompt ranking embeds
    every rank's taxa from their own text ("Diptera", "Diptera Chironomidae"); a text tower
    trained only on full paths never learns where those shorter strings belong, and order
    accuracy then trails species accuracy. A pretrained BioCLIP text tower has seen all ranks,
    so the paper recipes leave this at 0.
    """

    def __init__(self, base: Dataset, seed: int, taxonomy=None, text_coarsen_prob: float = 0.0):
        if text_coarsen_prob and taxonomy is None:
            raise ValueError("text_coarsen_prob needs the taxonomy to write coarser prompts")
        self.base = base
        self.seed = seed
        self.epoch = 0
        self.taxonomy = taxonomy
        self.text_coarsen_prob = text_coarsen_prob

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int):
        seed = int(np.random.SeedSequence([self.seed, self.epoch, int(index)]).generate_state(1)[0])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            item = self.base[index]
            if self.text_coarsen_prob > 0 and torch.rand(1).item() < self.text_coarsen_prob:
                known = [lv for lv, y in enumerate(item["labels"].tolist()) if y >= 0]
                if len(known) > 1:
                    level = known[int(torch.randint(len(known) - 1, (1,)))]
                    item["text"] = self.taxonomy.prompt(level, int(item["labels"][level]))
            return item
