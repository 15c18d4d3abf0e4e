"""Fuzzed inputs: whatever bytes a reads file or a photo holds, the readers answer with reads
or with an InputError (one line for the user), never with any other exception."""

from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hir_edge.dna.io import ReadReport, read_sequences
from hir_edge.errors import InputError
from hir_edge.images import load_image

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# text that looks like the formats, with junk mixed in
FRAGMENTS = st.sampled_from(
    [">r1\n", ">\n", "@q\n", "+\n", "IIII\n", "ACGT", "acgtn", "NNNN", "-", "\t", ",", "\n",
     "nucleotides\tprocessid\n", "MKVL", "\x00", "é", "\r\n", "RYSW", ">r1 dup\n", "U"]
)  # fmt: skip


@SETTINGS
@given(data=st.one_of(st.binary(max_size=400), st.lists(FRAGMENTS, max_size=40).map("".join)))
@pytest.mark.parametrize("suffix", [".fa", ".fq", ".tsv", ".csv", ".txt", ".fa.gz"])
def test_reads_files_give_reads_or_one_line_errors(tmp_path, data, suffix):
    path = tmp_path / f"reads{suffix}"
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    if suffix.endswith(".gz"):
        import gzip

        raw = gzip.compress(raw)
    path.write_bytes(raw)
    report = ReadReport()
    try:
        reads = list(read_sequences(path, report=report))
    except InputError as err:
        assert "\n" not in str(err) and str(err).startswith(str(path))
        return
    for read in reads:
        assert read.sequence and set(read.sequence) <= set("ACGTN")
    assert report.n_ok == len(reads)
    assert all("\n" not in str(e) for e in report.errors)


def _jpeg() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 120, 40)).save(out, "JPEG")
    return out.getvalue()


@SETTINGS
@given(cut=st.integers(0, 700), flips=st.lists(st.tuples(st.integers(0, 699), st.integers(0, 255))))
def test_damaged_photos_give_an_image_or_one_line_errors(tmp_path, cut, flips):
    data = bytearray(_jpeg())
    for at, value in flips:
        if at < len(data):
            data[at] = value
    path = tmp_path / "photo.jpg"
    path.write_bytes(bytes(data[:cut]) if cut < len(data) else bytes(data))
    try:
        image = load_image(path, min_size=16)
    except InputError as err:
        assert "\n" not in str(err) and str(err).startswith(str(path))
        return
    assert image.mode == "RGB" and min(image.size) > 0
