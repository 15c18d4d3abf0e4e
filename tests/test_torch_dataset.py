"""The torch Dataset over an HDF5 split: item contents, missing modalities, worker processes."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from hir_edge.data.hdf5 import Specimen, write_hdf5
from hir_edge.data.sampler import TaxonomyBatchSampler
from hir_edge.data.torch_dataset import SpecimenDataset, collate_specimens
from hir_edge.dna.tokens import KmerTokenizer
from hir_edge.taxonomy import Taxonomy


def jpeg(colour: tuple[int, int, int], size=(48, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def to_tensor_16(image: Image.Image) -> torch.Tensor:
    """A tiny stand-in for open_clip's preprocess: 16 x 16, [0, 1]."""
    pixels = np.asarray(image.resize((16, 16)), dtype=np.float32) / 255.0
    return torch.from_numpy(pixels.transpose(2, 0, 1).copy())


LINEAGES = [
    ("Diptera", "Culicidae", "Aedes", "Aedes vexans"),
    ("Diptera", "Culicidae", "Aedes", None),
    ("Lepidoptera", "Lepidoptera incertae sedis", "Abrostola", "Abrostola tripartita"),
    ("Coleoptera", None, None, None),
]


@pytest.fixture
def h5(tmp_path):
    specimens = [
        Specimen("P0", LINEAGES[0], "ACGTAACGTT", jpeg((255, 0, 0))),
        Specimen("P1", LINEAGES[1], "", jpeg((0, 0, 255))),
        Specimen("P2", LINEAGES[2], "acgt-acgtn", None),
        Specimen("P3", LINEAGES[3], "", b"\xff\xd8\xffbroken"),
    ] * 4
    path = tmp_path / "d.h5"
    write_hdf5(path, {"train": specimens})
    return path


@pytest.fixture
def taxonomy():
    return Taxonomy.from_lineages(LINEAGES[:3])  # Coleoptera is unknown to it


def test_item_contents(h5, taxonomy):
    tokenizer = KmerTokenizer(k=2, max_length=8)
    dataset = SpecimenDataset(h5, "train", taxonomy, to_tensor_16, tokenizer)
    assert len(dataset) == 16
    item = dataset[0]
    assert item["image"].shape == (3, 16, 16) and item["image"].dtype == torch.float32
    assert torch.allclose(item["image"][0], torch.ones(16, 16), atol=0.02)  # red
    assert torch.allclose(item["image"][2], torch.zeros(16, 16), atol=0.02)
    assert item["has_image"] is True and item["has_dna"] is True
    # k=2 non-overlapping: <CLS>, AC, GT, AA, CG, TT -> 3 + base-4 value of each 2-mer.
    assert item["dna_ids"].tolist() == [1, 3 + 1, 3 + 11, 3 + 0, 3 + 6, 3 + 15, 2, 2]
    assert item["dna_mask"].tolist() == [1, 1, 1, 1, 1, 1, 0, 0]
    assert item["text"] == "Diptera Culicidae Aedes Aedes vexans"
    assert item["labels"].tolist() == list(taxonomy.encode(LINEAGES[0]))
    assert item["index"] == 0 and item["processid"] == "P0"

    no_dna = dataset[1]
    assert no_dna["has_dna"] is False
    assert no_dna["dna_ids"].tolist() == [1, 2, 2, 2, 2, 2, 2, 2]  # an empty read's encoding
    assert no_dna["text"] == "Diptera Culicidae Aedes"  # deepest known rank: genus
    assert no_dna["labels"][3].item() == -1

    no_image = dataset[2]
    assert no_image["has_image"] is False
    assert torch.equal(no_image["image"], torch.zeros(3, 16, 16))
    assert no_image["has_dna"] is True  # cleaned: gaps removed, upper-cased
    assert no_image["dna_ids"][:5].tolist() == [1, 3 + 1, 3 + 11, 3 + 1, 3 + 11]
    assert no_image["text"] == "Lepidoptera Abrostola Abrostola tripartita"  # placeholder left out
    assert no_image["labels"][1].item() == -1 and no_image["labels"][3].item() >= 0

    with pytest.warns(
        UserWarning, match=r"record 'P3': image skipped: is not an image Pillow can read"
    ):
        broken = dataset[3]
    assert broken["has_image"] is False and torch.equal(broken["image"], torch.zeros(3, 16, 16))
    assert broken["labels"].tolist() == [-1, -1, -1, -1]
    assert broken["text"] == "Coleoptera"  # not in the taxonomy: the lineage's own names


def test_without_transform_or_tokenizer_items_skip_those_tensors(h5, taxonomy):
    item = SpecimenDataset(h5, "train", taxonomy)[0]
    assert set(item) == {
        "text",
        "text_level",
        "labels",
        "processid",
        "index",
        "has_image",
        "has_dna",
    }
    assert item["has_image"] is True and item["has_dna"] is True


def test_collate_stacks_tensors_and_keeps_text_as_a_list(h5, taxonomy):
    dataset = SpecimenDataset(h5, "train", taxonomy, to_tensor_16, KmerTokenizer(k=2, max_length=8))
    batch = collate_specimens([dataset[0], dataset[1], dataset[2]])
    assert batch["image"].shape == (3, 3, 16, 16)
    assert batch["dna_ids"].shape == (3, 8) and batch["dna_ids"].dtype == torch.long
    assert batch["labels"].shape == (3, 4)
    assert batch["has_image"].tolist() == [True, True, False]
    assert batch["has_dna"].tolist() == [True, False, True]
    assert batch["index"].tolist() == [0, 1, 2]
    assert batch["text"][1] == "Diptera Culicidae Aedes"
    with pytest.raises(ValueError, match="cannot collate an empty batch"):
        collate_specimens([])


def test_dataloader_with_two_workers_matches_the_main_process(h5, taxonomy):
    dataset = SpecimenDataset(h5, "train", taxonomy, to_tensor_16, KmerTokenizer(k=2, max_length=8))
    dataset[0]  # the parent opens its handle first: workers must open their own
    labels = dataset.labels()
    assert labels.shape == (16, 4)
    sampler = TaxonomyBatchSampler(labels, 8, per_group=2, seed=1)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=2, collate_fn=collate_specimens)
    batches = list(loader)
    assert len(batches) == 2
    for batch, indices in zip(batches, sampler):
        assert batch["index"].tolist() == indices
        with warnings.catch_warnings():  # P3's broken image warns (in workers: not seen here)
            warnings.simplefilter("ignore")
            expected = collate_specimens([dataset[i] for i in indices])
        assert torch.equal(batch["image"], expected["image"])
        assert torch.equal(batch["dna_ids"], expected["dna_ids"])
        assert torch.equal(batch["labels"], expected["labels"])
        assert batch["text"] == expected["text"]
