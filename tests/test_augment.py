"""Training-time augmentation: degraded reads, coarser prompts, colour jitter."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from hir_edge.errors import ConfigError
from hir_edge.images import PreprocessConfig
from hir_edge.taxonomy import Taxonomy
from hir_edge.train.augment import ReadAugment, SeededDataset, TrainTransform
from hir_edge.train.config import AugmentSection, ReadAugmentSection, load_config

READ = "ACGTTGCAAC" * 60  # 600 bp


def test_read_augment_windows_degrades_and_is_reproducible():
    augment = ReadAugment(
        ReadAugmentSection(degrade_prob=1.0, window_prob=1.0, window=(100, 150), severity=(1, 1))
    )
    torch.manual_seed(3)
    first = [augment(READ) for _ in range(20)]
    torch.manual_seed(3)
    assert [augment(READ) for _ in range(20)] == first
    # windows of 100-150 bases, then ~10% truncation and indels at p=0.01
    assert all(70 <= len(r) <= 160 for r in first)
    assert all("N" in r for r in first)  # p_N 0.03 and a 10% dropout run
    assert len(set(first)) == 20
    assert augment("") == ""
    never = ReadAugment(ReadAugmentSection())
    assert not never.enabled and never(READ) == READ


def test_read_augment_reverse_complements():
    from hir_edge.dna.qc import reverse_complement

    augment = ReadAugment(ReadAugmentSection(reverse_complement_prob=1.0))
    assert augment(READ) == reverse_complement(READ)


def test_bad_read_augment_settings_are_named():
    with pytest.raises(ConfigError, match=r"data.read_augment.degrade_prob must be in \[0, 1\]"):
        load_config(None, ["data.path=x.h5", "data.read_augment.degrade_prob=2"])
    with pytest.raises(ConfigError, match=r"data.read_augment.preset: unknown degradation preset"):
        load_config(None, ["data.path=x.h5", "data.read_augment.preset=noisy"])


class _Items(torch.utils.data.Dataset):
    def __init__(self, labels):
        self.labels = labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        labels = self.labels[index]
        return {"text": "deepest", "text_level": 3, "labels": torch.tensor(labels)}


def test_coarser_prompts_skip_ranks_that_tell_nothing_apart():
    """One order and a placeholder family (EU-Moths): a coarser prompt can only be the genus."""
    taxonomy = Taxonomy.from_lineages(
        [
            ("Lepidoptera", "Lepidoptera incertae sedis", "Aa", "Aa bb"),
            ("Lepidoptera", "Lepidoptera incertae sedis", "Cc", "Cc dd"),
        ]
    )
    labels = taxonomy.encode(("Lepidoptera", "Lepidoptera incertae sedis", "Aa", "Aa bb"))
    data = SeededDataset(_Items([labels] * 50), 0, taxonomy, text_coarsen_prob=1.0)
    items = [data[i] for i in range(50)]
    assert {item["text_level"] for item in items} == {2}
    assert {item["text"] for item in items} == {taxonomy.prompt(2, labels[2])}


def test_colour_jitter_changes_brightness_within_its_range():
    pixels = np.full((40, 40, 3), 100, np.uint8)
    pre = PreprocessConfig(image_size=32, mean=(0.0,) * 3, std=(1.0,) * 3)
    section = AugmentSection(
        random_resized_crop_scale=(1.0, 1.0), hflip=0, rotation_degrees=0, brightness=0.5
    )
    values = []
    for seed in range(30):
        torch.manual_seed(seed)
        values.append(float(TrainTransform(pre, section)(Image.fromarray(pixels)).mean()))
    base = 100 / 255
    assert min(values) >= 0.5 * base - 1e-3 and max(values) <= 1.5 * base + 1e-3
    assert max(values) - min(values) > 0.3 * base
