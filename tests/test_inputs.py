"""Pairing reads and photos into specimens: files, stems and specimen sheets."""

from __future__ import annotations

import pytest
from PIL import Image

from hir_edge.dna.io import ReadReport
from hir_edge.errors import InputError
from hir_edge.runtime.inputs import Problems, specimens_from_files, specimens_from_manifest

READ = "ACTTTATATTTTATTTTTGGGGCCTGATCTGGAATAGTAGGTACATCTCTTAGTATTTTAATTCGAGCAGAATTAGGTCACCC" * 4


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "reads.fa").write_text(f">A\n{READ}\n>B\n{READ}\n>C\n{READ}\n")
    for name in ("A", "Z"):
        Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / f"{name}.jpg")
    return tmp_path


def test_reads_pair_with_photos_by_stem_and_the_rest_stand_alone(folder):
    problems, report = Problems(), ReadReport()
    out = list(
        specimens_from_files(
            folder / "reads.fa", [folder / "A.jpg", folder / "Z.jpg"], problems, report
        )
    )
    kinds = {s.id: (s.sequence is not None, s.image is not None) for s in out}
    assert kinds == {"A": (True, True), "B": (True, False), "C": (True, False), "Z": (False, True)}
    assert not problems.errors


def test_one_read_and_one_photo_are_one_specimen(folder, tmp_path):
    reads = tmp_path / "one.fa"
    reads.write_text(f">sample1\n{READ}\n")
    out = list(specimens_from_files(reads, [folder / "Z.jpg"], Problems(), ReadReport()))
    assert len(out) == 1 and out[0].id == "sample1" and out[0].image == folder / "Z.jpg"


def test_sheet_pairs_explicitly_and_identifies_unnamed_reads(folder):
    sheet = folder / "sheet.csv"
    sheet.write_text("specimen_id,sequence_id,image\nS1,A,Z.jpg\nS2,B,\nS1,C,\n,C,\n")
    problems = Problems()
    out = list(specimens_from_manifest(sheet, folder / "reads.fa", problems, ReadReport()))
    ids = [s.id for s in out]
    assert ids == ["S1", "S2", "C"]  # C is not named by any kept row: identified from its read
    assert out[0].image == folder / "Z.jpg" and out[0].sequence
    assert [str(e) for e in problems.errors] == [
        f"{sheet}: record 'S1': line 4: duplicate specimen id; this row is skipped",
        f"{sheet}: line 5: empty specimen id",
    ]


def test_sheet_errors_are_one_line(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InputError, match=r"empty.csv: contains no rows"):
        list(specimens_from_manifest(empty, None, Problems(), ReadReport()))
    no_id = tmp_path / "noid.csv"
    no_id.write_text("name,image\nx,y.jpg\n")
    with pytest.raises(InputError, match=r"has no specimen id column \(one of specimen_id, id"):
        list(specimens_from_manifest(no_id, None, Problems(), ReadReport()))
    latin = tmp_path / "latin.csv"
    latin.write_bytes("specimen_id,sequence\nCaf\xe9,ACGT\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin.csv: is not UTF-8 text"):
        list(specimens_from_manifest(latin, None, Problems(), ReadReport()))
