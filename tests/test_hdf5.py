"""HDF5 specimen files: round trips, streaming, CLIBD compatibility both ways, exact errors."""

from __future__ import annotations

import io
import pickle

import h5py
import numpy as np
import pytest
from PIL import Image

from hir_edge.data.hdf5 import (
    IMAGE_CHUNK,
    Specimen,
    SpecimenStore,
    describe,
    list_splits,
    read_attrs,
    write_hdf5,
)
from hir_edge.errors import InputError
from hir_edge.io import OutputExistsError


def jpeg(seed: int, size: tuple[int, int] = (40, 30)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


SPECIMENS = [
    Specimen("P1", ("Diptera", "Culicidae", "Aedes", "Aedes vexans"), "ACGTACGTNN", jpeg(1), "S1"),
    Specimen("P2", ("Diptera", None, None, None), "", jpeg(2, (120, 90))),
    Specimen("P3", ("Lepidoptera", "Noctuidae", "Abrostola", None), "TTTT", None, "S3"),
    Specimen("P4", (None, None, None, None), "", None),
]


def test_round_trip_keeps_bytes_lineages_and_barcodes(tmp_path):
    out = tmp_path / "d.h5"
    counts = write_hdf5(out, {"train": SPECIMENS, "test": SPECIMENS[:1]}, attrs={"k": [1, "x"]})
    assert counts == {"train": 4, "test": 1}
    assert list_splits(out) == ["test", "train"]
    assert read_attrs(out) == {"k": [1, "x"]}
    store = SpecimenStore(out, "train")
    assert len(store) == 4
    for i, expected in enumerate(SPECIMENS):
        assert store[i] == expected
    assert store[-1] == SPECIMENS[-1]
    assert store.image_bytes(0) == SPECIMENS[0].image
    assert store.image_bytes(2) is None
    assert store.lineages() == [s.lineage for s in SPECIMENS]
    assert store.barcodes() == ["ACGTACGTNN", "", "TTTT", ""]
    assert store.processids() == ["P1", "P2", "P3", "P4"]
    assert store.image_lengths().tolist() == [
        len(SPECIMENS[0].image),
        len(SPECIMENS[1].image),
        0,
        0,
    ]
    with h5py.File(out) as handle:  # missing ranks are stored the BIOSCAN way
        assert handle["train/family"][1] == b"not_classified"
        assert handle["train/image"].shape == (4, len(SPECIMENS[1].image))
        assert handle["train/image_mask"].dtype == np.int64
    with pytest.raises(IndexError, match="index 4 is out of range for split 'train' \\(4\\)"):
        store[4]


def test_streaming_writer_grows_the_image_width_and_stores_no_padding(tmp_path):
    n = 3000

    def length(i: int) -> int:  # mostly small images, a few long ones arriving late
        return 30_000 + i if i % 500 == 499 else (i * 37) % 3000

    def generate():
        for i in range(n):
            size = length(i)
            image = bytes([i % 251]) * size if size else None
            yield Specimen(f"P{i}", ("Diptera", f"F{i % 7}", None, None), "ACGT" * (i % 3), image)

    out = tmp_path / "big.h5"
    assert write_hdf5(out, {"train": generate()}, quiet=True) == {"train": n}
    store = SpecimenStore(out, "train")
    lengths = [length(i) for i in range(n)]
    assert store.image_lengths().tolist() == lengths
    for i in (0, 1, 243, 499, 2999, 1234):
        data = store.image_bytes(i)
        assert (data or b"") == bytes([i % 251]) * lengths[i]
    assert store.lineages()[8] == ("Diptera", "F1", None, None)
    with h5py.File(out) as handle:
        assert handle["train/image"].shape == (n, max(lengths))
    # Padding is never written: the file holds whole chunks of real bytes, not n x max width.
    stored = sum(-(-length // IMAGE_CHUNK) * IMAGE_CHUNK for length in lengths)
    size = out.stat().st_size
    assert stored < size < stored * 1.1 + 2_000_000
    assert size < n * max(lengths) / 5


def test_refuses_to_clobber_and_leaves_nothing_when_the_stream_fails(tmp_path):
    out = tmp_path / "d.h5"
    write_hdf5(out, {"train": SPECIMENS})
    with pytest.raises(OutputExistsError, match="already exists; pass --force to overwrite it"):
        write_hdf5(out, {"train": SPECIMENS})
    write_hdf5(out, {"val": SPECIMENS[:2]}, force=True)
    assert list_splits(out) == ["val"]

    def broken():
        yield SPECIMENS[0]
        raise RuntimeError("disk on fire")

    fresh = tmp_path / "fresh.h5"
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_hdf5(fresh, {"train": broken()})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.h5"]


def test_bad_specimens_and_split_names_are_rejected(tmp_path):
    with pytest.raises(ValueError, match=r"specimen 'X': lineage needs 4 names .* got 2"):
        write_hdf5(tmp_path / "a.h5", {"train": [Specimen("X", ("a", "b"), "", None)]})
    with pytest.raises(ValueError, match="invalid split name 'a/b'"):
        write_hdf5(tmp_path / "b.h5", {"a/b": SPECIMENS})


def write_clibd_style(path):
    """A file as CLIBD's generate_hdf5_file_5m.py writes it: fixed-length S strings, int mask,
    zero-padded image rows, and extra datasets we do not use."""
    images = [jpeg(7), jpeg(8, (60, 50))]
    width = 29598
    padded = np.zeros((2, width), dtype=np.uint8)
    for row, data in enumerate(images):
        padded[row, : len(data)] = np.frombuffer(data, dtype=np.uint8)
    with h5py.File(path, "w") as handle:
        group = handle.create_group("test_seen")
        group.create_dataset("image", data=padded, maxshape=(None, width))
        group.create_dataset("image_mask", data=np.array([len(images[0]), 0], dtype=int))
        columns = {
            "barcode": ["AACT", ""],
            "order": ["Diptera", "Hymenoptera"],
            "family": ["Cecidomyiidae", "not_classified"],
            "genus": ["not_classified", "not_classified"],
            "species": ["not_classified", "not_classified"],
            "processid": ["BIOUG1-A01", "BIOUG1-A02"],
            "sampleid": ["S-1", "S-2"],
            "image_file": ["BIOUG1-A01.1024px.jpg", "BIOUG1-A02.1024px.jpg"],
        }
        for name, values in columns.items():
            group.create_dataset(name, data=np.array(values, dtype="S"))
        group.create_dataset("language_tokens_input_ids", data=np.zeros((2, 20), dtype=np.int64))
    return images


def test_reads_a_clibd_written_file(tmp_path):
    path = tmp_path / "clibd.hdf5"
    images = write_clibd_style(path)
    assert list_splits(path) == ["test_seen"]
    store = SpecimenStore(path, "test_seen")
    assert store[0] == Specimen(
        "BIOUG1-A01", ("Diptera", "Cecidomyiidae", None, None), "AACT", images[0], "S-1"
    )
    assert store[1].image is None  # mask 0 means no image, whatever the row holds
    assert store.lineages()[1] == ("Hymenoptera", None, None, None)
    assert store.barcodes() == ["AACT", ""]


def test_clibd_reading_code_reads_our_file(tmp_path):
    out = tmp_path / "ours.h5"
    write_hdf5(out, {"all_keys": SPECIMENS})
    with h5py.File(out, "r", libver="latest") as handle:
        group = handle["all_keys"]
        # CLIBD DATA.md: list_of_barcode = [item.decode("utf-8") for item in group["barcode"][:]]
        assert [item.decode("utf-8") for item in group["barcode"][:]] == [
            "ACGTACGTNN",
            "",
            "TTTT",
            "",
        ]
        image_enc_padded = group["image"][1].astype(np.uint8)
        enc_length = group["image_mask"][1]
        image = Image.open(io.BytesIO(image_enc_padded[:enc_length]))
        assert image.size == (120, 90)


def test_errors_name_the_file_and_what_is_wrong(tmp_path):
    missing = tmp_path / "nope.h5"
    with pytest.raises(InputError) as err:
        SpecimenStore(missing, "train")
    assert str(err.value) == f"{missing}: no such file"
    text = tmp_path / "notes.h5"
    text.write_text("hello")
    with pytest.raises(InputError) as err:
        SpecimenStore(text, "train")
    assert str(err.value) == f"{text}: not an HDF5 file"
    out = tmp_path / "d.h5"
    write_hdf5(out, {"train": SPECIMENS, "test": SPECIMENS})
    with pytest.raises(InputError) as err:
        SpecimenStore(out, "val")
    assert str(err.value) == f"{out}: no split 'val'; the file has: test, train"
    with h5py.File(out, "a") as handle:
        del handle["train/barcode"]
    with pytest.raises(InputError) as err:
        SpecimenStore(out, "train")
    assert str(err.value) == (
        f"{out}: split 'train' has no dataset 'barcode'; it has: family, genus, image, "
        "image_mask, order, processid, sampleid, species"
    )


def test_store_pickles_as_its_path_and_reopens(tmp_path):
    out = tmp_path / "d.h5"
    write_hdf5(out, {"train": SPECIMENS})
    store = SpecimenStore(out, "train")
    assert store[0].processid == "P1"  # opens the handle
    state = store.__getstate__()
    assert state["_handle"] is None and state["_pid"] is None
    clone = pickle.loads(pickle.dumps(store))
    assert clone[1] == SPECIMENS[1]
    store.close()
    assert store[2] == SPECIMENS[2]  # re-opens after close


def test_describe_counts_taxa_images_and_barcodes(tmp_path):
    out = tmp_path / "d.h5"
    write_hdf5(out, {"train": SPECIMENS}, attrs={"source": "t.tsv"})
    info = describe(out)
    assert info["attrs"] == {"source": "t.tsv"}
    assert info["splits"]["train"] == {
        "specimens": 4,
        "with_image": 2,
        "with_barcode": 2,
        "taxa": {"order": 2, "family": 2, "genus": 2, "species": 1},
        "labelled": {"order": 3, "family": 2, "genus": 2, "species": 1},
        "placeholders": {"order": 0, "family": 0, "genus": 0, "species": 0},
        "filled": {"order": 0, "family": 0, "genus": 0, "species": 0},
    }
