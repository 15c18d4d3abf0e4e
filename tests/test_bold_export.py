"""Reading a BOLD export for data synth: both layouts, markers, partial names, gaps, subsets."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import pytest

from hir_edge.data.synth import SynthConfig, generate_dataset
from hir_edge.data.synth.bold import (
    MALFORMED,
    NO_BARCODE,
    NO_ORDER,
    place_gaps,
    read_bold,
    unnamed_path,
)
from hir_edge.data.synth.world import World, assign_traits
from hir_edge.errors import InputError
from hir_edge.taxonomy import RANKS

HEADER = "processid\torder_name\tfamily_name\tgenus_name\tspecies_name\tnucleotides"
FULL = [
    ("Culicidae", "Aedes", "Aedes vexans"),
    ("Culicidae", "Aedes", "Aedes albopictus"),
    ("Culicidae", "Culex", "Culex pipiens"),
    ("Chironomidae", "Tanytarsus", "Tanytarsus mendax"),
    ("Chironomidae", "Chironomus", "Chironomus riparius"),
    ("Chironomidae", "Chironomus", "Chironomus plumosus"),
]


def write_bold(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def named_rows(n: int) -> list[str]:
    """``n`` records of Diptera named to species, cycling through FULL."""
    rows = []
    for i in range(n):
        family, genus, species = FULL[i % len(FULL)]
        rows.append(f"F{i}\tDiptera\t{family}\t{genus}\t{species}\tACGTTACG")
    return rows


def labels_of(folder: Path) -> dict[str, tuple[str, ...]]:
    with (folder / "metadata.tsv").open(newline="", encoding="utf-8") as handle:
        return {
            r["processid"]: tuple(r[k] for k in RANKS)
            for r in csv.DictReader(handle, delimiter="\t")
        }


def test_missing_columns_and_unusable_records(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("processid\torder_name\nX\tDiptera\n")
    with pytest.raises(InputError) as err:
        read_bold(bad, None, 0)
    assert str(err.value) == (
        f"{bad}: line 1: not a BOLD export: missing column(s) family_name or family, "
        "genus_name or genus, species_name or species, nucleotides or nuc"
    )
    source = write_bold(
        tmp_path / "b.tsv",
        [
            "A1\tDiptera\tCulicidae\tAedes\tAedes vexans\tACGTTA",
            "A3\tDiptera\tCulicidae\tAedes\tAedes vexans\tAC?T",
        ],
    )
    world, records, skipped = read_bold(source, None, 0)
    assert [r.processid for r in records] == ["A1"] and skipped == {NO_BARCODE: 1}
    assert world.species == (("Diptera", "Culicidae", "Aedes", "Aedes vexans"),)
    with pytest.raises(InputError, match="BOLD barcode file not found"):
        read_bold(tmp_path / "none.tsv", None, 0)


def test_v5_data_packages_read_as_the_older_export_and_other_markers_are_skipped(tmp_path):
    """The same record in BOLD's older export and in a v5 data package (gzipped CSV, with a
    BOM and CRLF line ends) gives the same world; an ITS record and a malformed row are
    skipped and counted."""
    old = write_bold(tmp_path / "old.tsv", ["A1\tDiptera\tCulicidae\tAedes\tAedes vexans\tACGTTA"])
    new = tmp_path / "new.csv.gz"
    new.write_bytes(
        gzip.compress(
            "\ufeffprocessid,order,family,genus,species,nuc,marker_code\r\n"
            "A1,Diptera,Culicidae,Aedes,Aedes vexans,ACGTTA,COI-5P \r\n"
            "A2,Diptera,Culicidae,Aedes,Aedes vexans,ACGTTA,ITS\r\n"
            "A3,Diptera,Culicidae\r\n".encode()
        )
    )
    world_old, records_old, skipped_old = read_bold(old, None, 0)
    world_new, records_new, skipped_new = read_bold(new, None, 0)
    assert (world_new.species, records_new, skipped_old, skipped_new) == (
        world_old.species,
        records_old,
        {},
        {NO_BARCODE: 1, MALFORMED: 1},
    )


def test_a_missing_rank_is_placed_by_the_other_records_else_incertae_sedis():
    """Aedes is placed in Culicidae by two records (and in Muscidae by one, a misfiling): a
    record of Aedes without a family goes to Culicidae, not to a second Aedes. A genus no
    record places gets the placeholder; an order no record gives is no place at all."""
    lineages = [
        ("Diptera", "Culicidae", "Aedes", "Aedes vexans"),
        ("Diptera", "Culicidae", "Aedes", None),
        ("Diptera", "Muscidae", "Aedes", "Aedes vexans"),
        ("Diptera", None, "Aedes", "Aedes vexans"),
        ("Diptera", None, "Toxorhynchites", None),
        (None, "Culicidae", "Culex", None),
        (None, "Nowhereidae", None, None),
    ]
    assert place_gaps(lineages)[3:] == [
        ("Diptera", "Culicidae", "Aedes", "Aedes vexans"),
        ("Diptera", "Diptera incertae sedis", "Toxorhynchites", None),
        ("Diptera", "Culicidae", "Culex", None),
        (None, "Nowhereidae", None, None),
    ]
    assert place_gaps(lineages)[:3] == lineages[:3]
    with pytest.raises(ValueError, match="not named to order"):
        unnamed_path((None, "Culicidae", None, None))


def test_records_named_above_species_are_labelled_only_as_far_and_always_train(tmp_path):
    """BOLD holds many records named to genus or family only: they are kept, their labels stop
    where their names do, they all train (never val, test or held-out species), and the stand-in
    species that seeds their photos is in no label, taxonomy or metadata file."""
    rows = named_rows(24)
    rows += [f"G{n}\tDiptera\tCulicidae\tAedes\t\tACGTTACG" for n in range(5)]
    rows += [f"H{n}\tDiptera\tChironomidae\t\t\tACGTTACG" for n in range(4)]
    rows += ["X1\t\t\t\t\tACGTTACG"]
    source = write_bold(tmp_path / "bold.tsv", rows)
    _, records, skipped = read_bold(source, None, 0)
    named = {r.processid: (r.named, r.species) for r in records}
    assert named["G0"] == (3, ("Diptera", "Culicidae", "Aedes", "Aedes [unnamed species]"))
    assert named["H1"] == (
        2,
        ("Diptera", "Chironomidae", "Chironomidae [unnamed genus]",
         "Chironomidae [unnamed genus] [unnamed species]"),
    )  # fmt: skip
    assert skipped == {NO_ORDER: 1}
    config = SynthConfig.from_dict(
        {
            "barcodes": str(source),
            "image_size": 16,
            "seed": 0,
            "label_only_family_frac": 0.3,
            "unseen_species_frac": 0.5,
        }
    )
    out = tmp_path / "out"
    summary = generate_dataset(config, out, quiet=True)
    assert summary.taxa == {"order": 1, "family": 2, "genus": 4, "species": 6}
    assert summary.named_above_species == 9
    assert summary.line().endswith(
        "; 9 records named above species, labelled only as far; "
        "skipped 1 record (1 not named to order)"
    )
    with (out / "metadata.tsv").open(newline="", encoding="utf-8") as handle:
        meta = {r["processid"]: r for r in csv.DictReader(handle, delimiter="\t")}
    assert {meta[p]["split"] for p in meta if p[0] in "GH"} == {"train"}
    assert {meta[p]["split"] for p in meta if p[0] == "F"} >= {"test_unseen", "train"}
    labels = labels_of(out)
    assert all(label[3] == "" for pid, label in labels.items() if pid[0] in "GH")
    assert all(label[2] == "" for pid, label in labels.items() if pid[0] == "H")
    assert {label[:2] for pid, label in labels.items() if pid[0] == "G"} <= {
        ("Diptera", "Culicidae"),
        ("Diptera", ""),
    }
    text = (out / "metadata.tsv").read_text() + (out / "taxonomy.json").read_text()
    assert "unnamed" not in text


def test_max_species_keeps_the_partial_records_of_the_kept_taxa(tmp_path):
    rows = [
        *named_rows(12),
        "G1\tDiptera\tCulicidae\tAedes\t\tACGT",
        "M1\tDiptera\tMuscidae\t\t\tACGT",
    ]
    source = write_bold(tmp_path / "bold.tsv", rows)
    for max_species in (1, 2, 4, 10):
        world, records, _ = read_bold(source, max_species, 0)
        named = {r.species for r in records if r.named == 4}
        assert len(named) == min(max_species, len(FULL))
        kept = {r.processid for r in records}
        assert "M1" not in kept  # Muscidae holds no named species: never kept by a subset
        assert ("G1" in kept) == any(sp[2] == "Aedes" for sp in named)
        assert set(world.species) == {r.species for r in records}
    _, everything, _ = read_bold(source, None, 0)
    assert "M1" in {r.processid for r in everything}


def test_stand_ins_leave_named_species_looking_as_they_would_without_them():
    """A stand-in is drawn after its named siblings, so adding records named above species
    never re-draws a named species."""
    named = [("Diptera", "Culicidae", "Aedes", f"Aedes sp{i}") for i in range(7)]
    stand_in = ("Diptera", "Culicidae", "Aedes", "Aedes [unnamed species]")
    for seed in range(6):
        alone = assign_traits(World(tuple(named), "test"), seed)
        beside = assign_traits(World(tuple(sorted([*named, stand_in])), "test"), seed)
        assert all(alone[p] == beside[p] for p in named)
