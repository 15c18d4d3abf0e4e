"""``hir-edge data pack`` and ``hir-edge data inspect`` end to end, on built and on real data."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from hir_edge.cli import main
from hir_edge.data.hdf5 import SpecimenStore, read_attrs

SUMMARY = re.compile(
    r"^(\d+) specimens in (\d+) splits? written to (.+) \((.+)\) in [\d.]+s; (\d+) problems?$",
    re.M,
)


def save(path, size, fmt="JPEG", seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format=fmt)
    return path.read_bytes()


def run(*args):
    return CliRunner().invoke(main, ["data", *map(str, args)])


@pytest.fixture
def table(tmp_path):
    images = tmp_path / "photos"
    originals = {
        "P1": save(images / "small.jpg", (64, 48), seed=1),
        "P2": save(images / "big.jpg", (1200, 900), seed=2),
        "P3": save(images / "drawing.png", (100, 80), fmt="PNG", seed=3),
    }
    (images / "notes.jpg").write_text("not a photo")
    rows = [
        "processid\torder\tfamily\tgenus\tspecies\tnucleotides\timage_file\tsplit",
        "P1\tDiptera\tCulicidae\tAedes\tAedes vexans\tACGT\tsmall.jpg\ttrain",
        "P2\tDiptera\tCulicidae\tAedes\tnot_classified\t\tbig.jpg\ttrain",
        "P3\tHymenoptera\tNA\t\t\tTTGA\tdrawing.png\ttest",
        "P4\tDiptera\tChironomidae\t\t\tAAAA\tgone.jpg\ttrain",
        "P5\tDiptera\t\t\t\t\tnotes.jpg\ttest",
        "P6\tColeoptera\t\t\t\tCCCC\t\ttrain",
    ]
    metadata = tmp_path / "specimens.tsv"
    metadata.write_text("\n".join(rows) + "\n")
    return metadata, images, originals


def test_pack_stores_images_reports_problems_and_summarises(table, tmp_path):
    metadata, images, originals = table
    out = tmp_path / "out.h5"
    result = run("pack", "--metadata", metadata, "--images", images, "-o", out, "--workers", 2)
    assert result.exit_code == 0, result.output
    assert (
        f"warning: {images / 'gone.jpg'}: record 'P4': image not found (line 5 of the table)"
        in (result.stderr)
    )
    assert (
        f"warning: {images / 'notes.jpg'}: record 'P5': is not an image Pillow can read "
        "(cannot identify image file) (line 6 of the table)" in result.stderr
    )
    assert "splits: train 4, test 2; with image 3, with barcode 4" in result.stderr
    match = SUMMARY.search(result.stderr)
    assert match is not None, result.stderr
    assert match.group(1, 2, 3, 5) == ("6", "2", str(out), "2")

    train = SpecimenStore(out, "train")
    assert train.processids() == ["P1", "P2", "P4", "P6"]
    assert train.image_bytes(0) == originals["P1"]  # small JPEG: stored byte for byte
    big = Image.open(io.BytesIO(train.image_bytes(1)))
    assert (big.format, big.size) == ("JPEG", (512, 384))  # shrunk to --max-image-side
    assert train.image_bytes(2) is None and train.image_bytes(3) is None
    assert train.lineages()[1] == ("Diptera", "Culicidae", "Aedes", None)
    assert train.barcodes() == ["ACGT", "", "AAAA", "CCCC"]
    test = SpecimenStore(out, "test")
    png = Image.open(io.BytesIO(test.image_bytes(0)))
    assert (png.format, png.size) == ("JPEG", (100, 80))  # other formats become JPEG
    assert test.lineages() == [("Hymenoptera", None, None, None), ("Diptera", None, None, None)]
    attrs = read_attrs(out)
    assert attrs["source"] == "specimens.tsv" and attrs["max_image_side"] == 512


def test_require_images_skips_and_force_is_needed_to_overwrite(table, tmp_path):
    metadata, images, _ = table
    out = tmp_path / "out.h5"
    result = run("pack", "-m", metadata, "--images", images, "-o", out, "--require-images", "-q")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("warning:") == 3  # P4 missing, P5 unreadable, P6 names none
    assert f"warning: {metadata}: record 'P6': line 7: names no image" in result.stderr
    assert SpecimenStore(out, "train").processids() == ["P1", "P2"]
    assert SpecimenStore(out, "test").processids() == ["P3"]
    again = run("pack", "-m", metadata, "--images", images, "-o", out)
    assert again.exit_code == 2
    assert again.stderr.strip() == f"error: {out} already exists; pass --force to overwrite it"
    forced = run("pack", "-m", metadata, "--images", images, "-o", out, "--force", "-q")
    assert forced.exit_code == 0
    assert len(SpecimenStore(out, "train")) == 4


def test_pack_errors_are_one_line(tmp_path):
    metadata = tmp_path / "t.tsv"
    metadata.write_text("processid\tcolour\timage\nP1\tred\ta.jpg\n")
    result = run("pack", "-m", metadata, "-o", tmp_path / "o.h5")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {metadata}: missing column 'order' (or any rank column: order, family, genus, "
        "species, or BOLD's order_name …); columns present: processid, colour, image"
    )
    assert not (tmp_path / "o.h5").exists()
    result = run("pack", "-m", metadata, "--images", tmp_path / "nowhere", "-o", tmp_path / "o.h5")
    assert result.stderr.strip() == f"error: {tmp_path / 'nowhere'}: image folder not found"


def test_eu_moths_like_table_with_fill_gaps_and_bioscan_chunks(tmp_path):
    folder = tmp_path / "moths"
    save(folder / "images" / "a_b" / "1.jpg", (30, 20), seed=4)
    save(folder / "images" / "a_b" / "2.jpg", (30, 20), seed=5)
    metadata = folder / "moths.tsv"
    metadata.write_text(
        "image\torder\tgenus\tspecies\tsplit\n"
        "images/a_b/1.jpg\tLepidoptera\tAbrostola\tAbrostola tripartita\ttrain\n"
        "images/a_b/2.jpg\tLepidoptera\tAbrostola\tAbrostola tripartita\ttest\n"
    )
    out = tmp_path / "moths.h5"
    result = run("pack", "-m", metadata, "-o", out, "--fill-gaps", "-q")  # images beside the table
    assert result.exit_code == 0, result.output
    store = SpecimenStore(out, "train")
    assert store[0].processid == "1"
    assert store[0].lineage == (
        "Lepidoptera",
        "Lepidoptera incertae sedis",
        "Abrostola",
        "Abrostola tripartita",
    )
    assert store[0].image == (folder / "images" / "a_b" / "1.jpg").read_bytes()

    # inspect counts the placeholder family apart from the named taxa
    lines = run("inspect", tmp_path / "moths.h5").output.splitlines()
    family = ["0", "+1", "i.s.", "(100.0%)"]
    assert lines[3].split()[4:] == ["1", "(100.0%)", *family, "1", "(100.0%)", "1", "(100.0%)"]

    # BIOSCAN-1M: image_file + chunk_number -> part<chunk>/<file>
    bioscan = tmp_path / "bioscan"
    original = save(bioscan / "cropped_256" / "part7" / "BIOUG1-A01.jpg", (25, 25), seed=6)
    meta = bioscan / "BIOSCAN_Insect_Dataset_metadata.tsv"
    meta.write_text(
        "sampleid\tprocessid\torder\tfamily\tgenus\tspecies\tnucraw\timage_file\tchunk_number\n"
        "BIOUG1-A01\tX1\tDiptera\tPhoridae\tnot_classified\tnot_classified\tACGT\t"
        "BIOUG1-A01.jpg\t7\n"
    )
    out = tmp_path / "b.h5"
    result = run("pack", "-m", meta, "--images", bioscan / "cropped_256", "-o", out, "-q")
    assert result.exit_code == 0, result.output
    (specimen,) = [SpecimenStore(out, "train")[0]]
    assert (specimen.processid, specimen.sampleid, specimen.image) == ("X1", "BIOUG1-A01", original)


def test_inspect_prints_splits_taxa_and_shares(table, tmp_path):
    metadata, images, _ = table
    out = tmp_path / "out.h5"
    assert run("pack", "-m", metadata, "--images", images, "-o", out, "-q").exit_code == 0
    result = run("inspect", out)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].split() == [
        "split",
        "specimens",
        "image",
        "barcode",
        "order",
        "family",
        "genus",
        "species",
    ]
    assert lines[2].split() == [
        "test",
        "2",
        "50.0%",
        "50.0%",
        "2",
        "(100.0%)",
        "0",
        "(0.0%)",
        "0",
        "(0.0%)",
        "0",
        "(0.0%)",
    ]
    assert lines[3].split() == [
        "train",
        "4",
        "50.0%",
        "75.0%",
        "2",
        "(100.0%)",
        "2",
        "(75.0%)",
        "1",
        "(50.0%)",
        "1",
        "(25.0%)",
    ]
    assert 'source: "specimens.tsv"' in result.output
    as_json = run("inspect", out, "--format", "json")
    assert '"with_barcode": 3' in as_json.output
    missing = run("inspect", tmp_path / "none.h5")
    assert missing.exit_code == 2
    assert missing.stderr.strip() == f"error: {tmp_path / 'none.h5'}: no such file"


@pytest.mark.realdata
def test_pack_thirty_real_eu_moths_photos(eu_moths, tmp_path):
    lines = (eu_moths / "eu_moths.tsv").read_text().splitlines()
    header, rows = lines[0], lines[1:]
    picked = rows[::73][:30]  # spread over species, both splits
    metadata = tmp_path / "moths30.tsv"
    metadata.write_text("\n".join([header, *picked]) + "\n")
    out = tmp_path / "moths30.h5"
    result = run("pack", "-m", metadata, "--images", eu_moths, "-o", out, "--fill-gaps", "-q")
    assert result.exit_code == 0, result.output
    splits = [r.split("\t")[4] for r in picked]
    counts = {s: splits.count(s) for s in set(splits)}
    total = 0
    for split, n in counts.items():
        store = SpecimenStore(out, split)
        assert len(store) == n
        total += n
        for i in range(len(store)):
            specimen = store[i]
            source = next(r for r in picked if f"/{specimen.processid}.jpg" in r).split("\t")
            # Real photos are 256 px on the short side (< 512): stored byte for byte.
            assert specimen.image == (eu_moths / source[0]).read_bytes()
            assert specimen.lineage == (
                "Lepidoptera",
                "Lepidoptera incertae sedis",
                source[2],
                source[3],
            )
            assert Image.open(io.BytesIO(specimen.image)).mode == "RGB"
    assert total == 30


def test_val_fraction_holds_out_a_share_of_each_species_from_train(tmp_path):
    """--val-fraction 0.25: of a species' 8 train records 2 go to val, of one with 3 records 1,
    a species with 1 record keeps it; test records are never moved; the same records each
    time."""
    folder = tmp_path / "t"
    rows = ["image\torder\tgenus\tspecies\tsplit"]
    for species, n_train in (("Aa bb", 8), ("Aa cc", 3), ("Dd ee", 1)):
        genus = species.split()[0]
        for i in range(n_train + 2):
            name = f"{species.replace(' ', '_')}_{i}.jpg"
            save(folder / name, (20, 20), seed=i)
            split = "train" if i < n_train else "test"
            rows.append(f"{name}\tLepidoptera\t{genus}\t{species}\t{split}")
    metadata = folder / "t.tsv"
    metadata.write_text("\n".join(rows) + "\n")
    out = tmp_path / "t.h5"
    args = ("pack", "-m", metadata, "-o", out, "--val-fraction", "0.25", "-q")
    assert run(*args).exit_code == 0

    def species_of(split):
        return sorted(lin[-1] for lin in SpecimenStore(out, split).lineages())

    assert species_of("val") == ["Aa bb", "Aa bb", "Aa cc"]
    assert species_of("train") == ["Aa bb"] * 6 + ["Aa cc"] * 2 + ["Dd ee"]
    assert species_of("test") == ["Aa bb"] * 2 + ["Aa cc"] * 2 + ["Dd ee"] * 2
    first = SpecimenStore(out, "val").processids()
    assert run(*args, "--force").exit_code == 0
    assert SpecimenStore(out, "val").processids() == first
    bad = run("pack", "-m", metadata, "-o", tmp_path / "x.h5", "--val-fraction", "1.0")
    assert bad.exit_code == 2 and "--val-fraction" in bad.stderr
