"""Taxonomy: path-keyed taxa, ids with missing ranks, prompts, JSON round trip, consistency."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from hir_edge.taxonomy import (
    MISSING,
    RANKS,
    Taxonomy,
    fill_gaps,
    lineage_of,
    prompt_text,
)

RECORDS = [
    {
        "order": "Diptera",
        "family": "Chironomidae",
        "genus": "Ablabesmyia",
        "species": "Ablabesmyia aspera",
    },
    {
        "order": "Diptera",
        "family": "Chironomidae",
        "genus": "Ablabesmyia",
        "species": "Ablabesmyia mallochi",
    },
    {"order": "Diptera", "family": "Cecidomyiidae", "genus": None, "species": None},
    {"order": "Diptera", "family": "not_classified", "genus": "", "species": ""},
    {"order": "Hemiptera", "family": "Miridae", "genus": "Lygus", "species": "Lygus lineolaris"},
    # The same genus name under two families is two taxa (homonym).
    {"order": "Hemiptera", "family": "Aphididae", "genus": "Lygus", "species": "Lygus lineolaris"},
]


@pytest.fixture
def tax() -> Taxonomy:
    return Taxonomy.from_records(RECORDS)


def test_sizes_and_sorted_ids(tax):
    assert tax.sizes() == {"order": 2, "family": 4, "genus": 3, "species": 4}
    assert tax.names("order") == ["Diptera", "Hemiptera"]
    assert tax.names("family") == ["Cecidomyiidae", "Chironomidae", "Aphididae", "Miridae"]


def test_homonyms_are_distinct_taxa_keyed_by_path(tax):
    ids = tax.find("genus", "Lygus")
    assert len(ids) == 2
    parents = {tax.name("family", tax.parent("genus", i)) for i in ids}
    assert parents == {"Aphididae", "Miridae"}
    assert len(tax.find("species", "Lygus lineolaris")) == 2


def test_encode_with_missing_and_unknown_ranks(tax):
    assert tax.encode(("Diptera", "Chironomidae", "Ablabesmyia", "Ablabesmyia mallochi")) == (
        0,
        1,
        0,
        1,
    )
    assert tax.encode(("Diptera", "Cecidomyiidae", None, None)) == (0, 0, MISSING, MISSING)
    assert tax.encode(("Diptera", None, None, None)) == (0, MISSING, MISSING, MISSING)
    # An unknown family makes everything below it unknown too.
    assert tax.encode(("Diptera", "Culicidae", "Aedes", "Aedes vexans")) == (0, -1, -1, -1)
    # A gap (genus without family) is cut at the gap.
    assert tax.encode(("Diptera", None, "Ablabesmyia", None)) == (0, -1, -1, -1)
    labels = tax.encode_many(lineage_of(r) for r in RECORDS)
    assert labels.shape == (6, 4) and labels.dtype == np.int64
    assert tax.decode(labels[0]) == lineage_of(RECORDS[0])


def test_prompts_follow_clibd_path_text(tax):
    sp = tax.encode(lineage_of(RECORDS[0]))[3]
    assert tax.prompt("species", sp) == "Diptera Chironomidae Ablabesmyia Ablabesmyia aspera"
    assert tax.prompts("order") == ["Diptera", "Hemiptera"]
    assert (
        prompt_text(("Lepidoptera", "Lepidoptera incertae sedis", "Abrostola"))
        == "Lepidoptera Abrostola"
    )


def test_tree_queries(tax):
    g = tax.find("genus", "Ablabesmyia")[0]
    assert tax.ancestor("genus", g, "order") == 0
    assert list(tax.children("genus", g)) == [0, 1]
    anc = tax.ancestor_matrix("species")
    assert anc.shape == (4, 4)
    assert tax.tree_distance("species", 0, 1) == 2  # siblings in one genus
    assert tax.tree_distance("species", 0, 2) == 8  # different orders


def test_json_round_trip(tax, tmp_path):
    path = tmp_path / "taxonomy.json"
    tax.save(path)
    assert Taxonomy.load(path) == tax
    data = json.loads(path.read_text())
    assert data["format"] == "hir-edge-taxonomy/1" and data["ranks"] == list(RANKS)


def test_load_rejects_bad_files(tmp_path):
    bad = tmp_path / "t.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"t.json: not a taxonomy JSON file"):
        Taxonomy.load(bad)
    bad.write_text(json.dumps({"format": "other/9"}))
    with pytest.raises(ValueError, match=r"unsupported taxonomy format 'other/9'"):
        Taxonomy.load(bad)
    with pytest.raises(
        ValueError, match=r"taxon 'Diptera Culicidae' has no parent at rank 'order'"
    ):
        Taxonomy([[], [("Diptera", "Culicidae")], [], []])


def test_check_reports_contradictions(tax):
    records = [
        {"order": "Diptera", "family": "Miridae", "genus": None, "species": None},
        {"order": "Diptera", "family": None, "genus": "Ablabesmyia", "species": None},
        {"order": "Odonata", "family": None, "genus": None, "species": None},
        RECORDS[0],
    ]
    problems = tax.check(records, ids=["a", "b", "c", "d"])
    assert [str(p) for p in problems] == [
        "record 'a': family 'Miridae' is under order 'Diptera' here "
        "but under 'Hemiptera' in the taxonomy",
        "record 'b': genus 'Ablabesmyia' is given but family is missing",
        "record 'c': order 'Odonata' is not in the taxonomy",
    ]


def test_unknown_rank_lists_allowed(tax):
    with pytest.raises(
        ValueError, match=r"unknown rank 'class'; choose one of: order, family, genus, species"
    ):
        tax.size("class")


def test_fill_gaps_makes_placeholders_that_are_not_labels():
    lin = fill_gaps(("Lepidoptera", None, "Abrostola", "Abrostola tripartita"))
    assert lin == ("Lepidoptera", "Lepidoptera incertae sedis", "Abrostola", "Abrostola tripartita")
    tax = Taxonomy.from_lineages([lin])
    assert tax.encode(lin) == (0, MISSING, 0, 0)
    assert tax.label_mask("family").tolist() == [False]
    assert tax.prompt("species", 0) == "Lepidoptera Abrostola Abrostola tripartita"


@pytest.mark.realdata
def test_real_bold_taxonomy_is_consistent(bold_100sp, bold_1826sp):
    for path, sizes in (
        (bold_100sp, {"order": 14, "family": 64, "genus": 97, "species": 100}),
        (bold_1826sp, {"order": 13, "family": 161, "genus": 500, "species": 1826}),
    ):
        with path.open() as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        tax = Taxonomy.from_records(rows)
        assert tax.sizes() == sizes
        labels = tax.encode_many(lineage_of(r) for r in rows)
        assert (labels >= 0).all()
        assert tax.check(rows) == []
