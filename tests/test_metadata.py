"""Metadata tables: BIOSCAN-1M/5M, BOLD, EU-Moths style; aliases, image paths, errors."""

from __future__ import annotations

import gzip

import pytest

from hir_edge.data.metadata import MetadataRow, iter_metadata, read_metadata
from hir_edge.errors import InputError

# BIOSCAN-1M's TSV columns (bioscan-ml/dataset bioscan1m.py COLUMN_DTYPES), abridged.
BIOSCAN1M = (
    "sampleid\tprocessid\turi\tphylum\tclass\torder\tfamily\tsubfamily\ttribe\tgenus\tspecies"
    "\tnucraw\timage_file\tchunk_number\tlarge_diptera_family\n"
    "BIOUG1-A01\tABC1-21\tBOLD:AAA1\tArthropoda\tInsecta\tDiptera\tCecidomyiidae\tnot_classified"
    "\tnot_classified\tnot_classified\tnot_classified\tAACT\tBIOUG1-A01.jpg\t18\ttrain\n"
    "BIOUG1-A02\tABC2-21\tBOLD:AAA2\tArthropoda\tInsecta\tDiptera\tChironomidae\tnot_classified"
    "\tnot_classified\tTanytarsus\tTanytarsus sp. 1\tGGTT\tBIOUG1-A02.jpg\t93\ttest\n"
)

# BIOSCAN-5M's CSV columns (bioscan-ml/dataset bioscan5m.py COLUMN_DTYPES), abridged.
BIOSCAN5M = (
    "processid,sampleid,taxon,phylum,class,order,family,subfamily,genus,species,dna_bin,"
    "dna_barcode,country,split,chunk\n"
    "AACTA1040-20,AACTA1040-20,Culicidae,Arthropoda,Insecta,Diptera,Culicidae,,Aedes,"
    "Aedes vexans,BOLD:A1,ACGTN,Canada,pretrain,3a\n"
    "AACTA1041-20,S2,Diptera,Arthropoda,Insecta,Diptera,,,,,BOLD:A2,,Canada,test,\n"
)


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_bioscan1m_tsv_reads_with_chunked_image_folders(tmp_path):
    rows = read_metadata(write(tmp_path / "BIOSCAN_Insect_Dataset_metadata.tsv", BIOSCAN1M))
    assert rows == [
        MetadataRow(
            "ABC1-21",
            "BIOUG1-A01",
            ("Diptera", "Cecidomyiidae", None, None),
            "AACT",
            "part18/BIOUG1-A01.jpg",
            "train",
            2,
        ),
        MetadataRow(
            "ABC2-21",
            "BIOUG1-A02",
            ("Diptera", "Chironomidae", "Tanytarsus", "Tanytarsus sp. 1"),
            "GGTT",
            "part93/BIOUG1-A02.jpg",
            "train",
            3,
        ),
    ]
    # The split can come from any column the user names.
    by_partition = read_metadata(
        tmp_path / "BIOSCAN_Insect_Dataset_metadata.tsv", split_column="large_diptera_family"
    )
    assert [r.split for r in by_partition] == ["train", "test"]


def test_bioscan5m_csv_derives_split_chunk_image_paths(tmp_path):
    rows = read_metadata(write(tmp_path / "BIOSCAN_5M_Insect_Dataset_metadata.csv", BIOSCAN5M))
    assert [(r.processid, r.image, r.split, r.barcode) for r in rows] == [
        ("AACTA1040-20", "pretrain/3a/AACTA1040-20.jpg", "pretrain", "ACGTN"),
        ("AACTA1041-20", "test/AACTA1041-20.jpg", "test", ""),
    ]
    assert rows[0].lineage == ("Diptera", "Culicidae", "Aedes", "Aedes vexans")
    assert rows[1].lineage == ("Diptera", None, None, None)


def test_bold_export_columns(tmp_path):
    text = (
        "processid\tsampleid\tbin_uri\tphylum_name\tclass_name\torder_name\tfamily_name"
        "\tgenus_name\tspecies_name\tnucleotides\tsequence_len\n"
        "SSJAE238-13\tBIOUG07089-A06\tBOLD:AAF3628\tArthropoda\tInsecta\tDiptera\tChironomidae"
        "\tAblabesmyia\tAblabesmyia aspera\tAACT-TTA\t7\n"
    )
    (row,) = read_metadata(write(tmp_path / "bold.tsv", text), default_split="reference")
    assert row == MetadataRow(
        "SSJAE238-13",
        "BIOUG07089-A06",
        ("Diptera", "Chironomidae", "Ablabesmyia", "Ablabesmyia aspera"),
        "AACT-TTA",
        None,
        "reference",
        2,
    )


def test_bold_v5_data_package_columns_and_other_markers(tmp_path):
    """BOLD v5 data packages (Barcode Core Data Model) name the ranks plainly and the sequence
    'nuc'; a record of another marker keeps its taxonomy but has no COI barcode."""
    text = (
        "processid\tsampleid\tkingdom\tphylum\tclass\torder\tfamily\tsubfamily\tgenus"
        "\tspecies\tnuc\tnuc_basecount\tmarker_code\n"
        "P1\tS1\tAnimalia\tArthropoda\tInsecta\tDiptera\tCulicidae\t\tAedes\tAedes vexans"
        "\tACGTTA\t6\tCOI-5P\n"
        "P2\tS2\tAnimalia\tArthropoda\tInsecta\tDiptera\tCulicidae\t\tAedes\tAedes vexans"
        "\tGGCCAA\t6\tITS\n"
    )
    rows = read_metadata(write(tmp_path / "bcdm.tsv", text))
    assert [(r.processid, r.lineage, r.barcode) for r in rows] == [
        ("P1", ("Diptera", "Culicidae", "Aedes", "Aedes vexans"), "ACGTTA"),
        ("P2", ("Diptera", "Culicidae", "Aedes", "Aedes vexans"), ""),
    ]


def test_bold_real_file_streams(bold_100sp):
    rows = iter_metadata(bold_100sp)
    first = next(rows)
    assert first.processid == "SSJAE238-13"
    assert first.lineage == ("Diptera", "Chironomidae", "Ablabesmyia", "Ablabesmyia aspera")
    assert 1 + sum(1 for _ in rows) == 5000


def test_eu_moths_table_without_family_and_fill_gaps(tmp_path):
    text = (
        "image\torder\tgenus\tspecies\tsplit\n"
        "images/abrostola_tripartita/a1.jpg\tLepidoptera\tAbrostola\tAbrostola tripartita\ttrain\n"
        "images/agrotis_exclamationis/b2.jpg\tLepidoptera\tAgrotis\tAgrotis exclamationis\ttest\n"
    )
    path = write(tmp_path / "eu_moths.tsv", text)
    plain = read_metadata(path)
    assert plain[0].lineage == ("Lepidoptera", None, "Abrostola", "Abrostola tripartita")
    assert plain[0].processid == "a1"  # no id column: the image file name stands in
    filled = read_metadata(path, fill_gaps=True)
    assert filled[0].lineage == (
        "Lepidoptera",
        "Lepidoptera incertae sedis",
        "Abrostola",
        "Abrostola tripartita",
    )
    assert [(r.image, r.split) for r in filled] == [
        ("images/abrostola_tripartita/a1.jpg", "train"),
        ("images/agrotis_exclamationis/b2.jpg", "test"),
    ]


def test_gzipped_table_and_default_split(tmp_path):
    path = tmp_path / "t.tsv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("processid\torder\tnucleotides\nP1\tColeoptera\tACGT\nP2\tNA\t\n")
    rows = read_metadata(path, default_split="val")
    assert [(r.processid, r.lineage[0], r.barcode, r.split) for r in rows] == [
        ("P1", "Coleoptera", "ACGT", "val"),
        ("P2", None, "", "val"),
    ]


def test_missing_columns_name_the_file_the_column_and_the_columns_present(tmp_path):
    path = write(tmp_path / "t.tsv", "processid\tcolour\tnucleotides\nP1\tred\tACGT\n")
    with pytest.raises(InputError) as err:
        read_metadata(path)
    assert str(err.value) == (
        f"{path}: missing column 'order' (or any rank column: order, family, genus, species, "
        "or BOLD's order_name …); columns present: processid, colour, nucleotides"
    )
    path = write(tmp_path / "u.csv", "processid,order\nP1,Diptera\n")
    with pytest.raises(InputError) as err:
        read_metadata(path)
    assert str(err.value) == (
        f"{path}: missing column 'nucleotides' or 'image': a table needs a DNA column "
        "(nucleotides, nuc, nucraw, dna_barcode, barcode, dna, sequence) or an image column "
        "(image, image_file, image_path, file_name, filename, file); columns present: "
        "processid, order"
    )
    path = write(tmp_path / "v.tsv", "processid\torder\tnucleotides\nP1\tDiptera\tAC\n")
    with pytest.raises(InputError) as err:
        read_metadata(path, split_column="fold")
    assert str(err.value) == (
        f"{path}: missing column 'fold'; columns present: processid, order, nucleotides"
    )
    with pytest.raises(InputError) as err:
        read_metadata(tmp_path / "absent.tsv")
    assert str(err.value) == f"{tmp_path / 'absent.tsv'}: no such file"


def test_bad_records_are_skipped_and_reported_or_raised(tmp_path):
    text = "processid\torder\tnucleotides\nP1\tDiptera\tACGT\nP2\tDiptera\nP3\tDiptera\tTT\n"
    path = write(tmp_path / "t.tsv", text)
    problems: list[InputError] = []
    rows = read_metadata(path, problems=problems)
    assert [r.processid for r in rows] == ["P1", "P3"]
    assert [str(p) for p in problems] == [
        f"{path}: record 'P2': line 3: has 2 cells, the header has 3"
    ]
    with pytest.raises(InputError, match="record 'P2': line 3: has 2 cells, the header has 3"):
        read_metadata(path)


def test_older_bold_export_markercode_column(tmp_path):
    """BOLD's older exports name the marker 'markercode'; another marker than COI-5P has no
    barcode here either."""
    text = (
        "processid\torder_name\tnucleotides\tmarkercode\n"
        "P1\tDiptera\tACGT\tCOI-5P\nP2\tDiptera\tACGT\tmatK\n"
    )
    rows = read_metadata(write(tmp_path / "old.tsv", text))
    assert [(r.processid, r.barcode) for r in rows] == [("P1", "ACGT"), ("P2", "")]
