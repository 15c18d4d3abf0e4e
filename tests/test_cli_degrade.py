"""``hir-edge degrade dna|image`` through the real CLI group (error printing, exit codes)."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from hir_edge.cli import main
from hir_edge.degrade import blur_image, degrade_dna_seeded, get_preset
from hir_edge.dna.io import read_sequences
from hir_edge.images import load_image

PAPER_VALUES = "preset=paper p_sub=0.03 p_n=0.03 p_indel=0.01 dropout=0.1 truncate=0.1"


def _run(*args: str):
    return CliRunner().invoke(main, ["degrade", *map(str, args)])


def _reads_fasta(path: Path, n: int = 3, bad: bool = False) -> Path:
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        lines += [f">r{i} some description", "".join(rng.choice(list("ACGT"), size=300))]
    if bad:
        lines += [">bad", "MKVLQQEFPILLLLAIIS"]  # a protein, skipped
    path.write_text("\n".join(lines) + "\n")
    return path


def _fasta(path: Path) -> list[tuple[str, str]]:
    text = path.read_text().strip().split("\n")
    return [(text[i][1:], text[i + 1]) for i in range(0, len(text), 2)]


# ---------------------------------------------------------------- dna


def test_dna_writes_headers_with_values_and_degrades_each_read_by_index(tmp_path):
    src = _reads_fasta(tmp_path / "reads.fa")
    out = tmp_path / "out.fa"
    result = _run("dna", src, "-o", out)
    assert result.exit_code == 0, result.output
    records = _fasta(out)
    assert [header for header, _ in records] == [
        f"r{i} degraded {PAPER_VALUES} seed=0 index={i}" for i in range(3)
    ]
    noise = get_preset("paper").dna
    clean = [read.sequence for read in read_sequences(src)]
    for i, (_, seq) in enumerate(records):
        assert seq == degrade_dna_seeded(clean[i], noise, 0, i)
        assert len(seq) < len(clean[i])  # 10 % truncation at least
    lines = result.stderr.strip().split("\n")
    assert lines[0] == f"degradation {PAPER_VALUES} blur_kernel=5 seed=0"
    assert re.fullmatch(
        rf"3 reads written to {re.escape(str(out))} in \d+\.\ds; 0 skipped", lines[-1]
    )


def test_dna_overrides_rename_the_preset_and_quiet_is_quiet(tmp_path):
    src = _reads_fasta(tmp_path / "reads.fa", n=1)
    out = tmp_path / "out.fa"
    result = _run("dna", src, "-o", out, "--preset", "none", "--p-sub", "0.2", "--seed", "4", "-q")
    assert result.exit_code == 0 and result.stderr == ""
    header, seq = _fasta(out)[0]
    assert header == (
        "r0 degraded preset=none-custom p_sub=0.2 p_n=0 p_indel=0 dropout=0 truncate=0 "
        "seed=4 index=0"
    )
    clean = next(iter(read_sequences(src))).sequence
    changed = sum(a != b for a, b in zip(clean, seq))
    assert len(seq) == len(clean) and 30 < changed < 90  # ~60 of 300 bases at p_sub = 0.2


def test_dna_is_reproducible_and_seed_dependent(tmp_path):
    src = _reads_fasta(tmp_path / "reads.fa")
    for name, seed in [("a.fa", 7), ("b.fa", 7), ("c.fa", 8)]:
        assert _run("dna", src, "-o", tmp_path / name, "--seed", seed, "-q").exit_code == 0
    a, b, c = ((tmp_path / n).read_bytes() for n in ("a.fa", "b.fa", "c.fa"))
    assert a == b and a != c


def test_dna_refuses_to_clobber_without_force(tmp_path):
    src = _reads_fasta(tmp_path / "reads.fa")
    out = tmp_path / "out.fa"
    out.write_text("keep me\n")
    result = _run("dna", src, "-o", out)
    assert result.exit_code == 2
    assert result.stderr == f"error: {out} already exists; pass --force to overwrite it\n"
    assert out.read_text() == "keep me\n"
    assert _run("dna", src, "-o", out, "--force", "-q").exit_code == 0
    assert out.read_text().startswith(">r0 degraded")


def test_dna_reports_and_skips_bad_records_with_exit_code_1(tmp_path):
    src = _reads_fasta(tmp_path / "reads.fa", n=2, bad=True)
    out = tmp_path / "out.fa"
    result = _run("dna", src, "-o", out)
    assert result.exit_code == 1
    skipped = [line for line in result.stderr.split("\n") if line.startswith("skipped: ")]
    assert len(skipped) == 1 and f"{src}: record 'bad'" in skipped[0]
    assert result.stderr.strip().endswith("; 1 skipped")
    assert [h.split()[0] for h, _ in _fasta(out)] == ["r0", "r1"]


def test_dna_unknown_preset_suggests_a_close_one(tmp_path):
    src = _reads_fasta(tmp_path / "reads.fa")
    result = _run("dna", src, "-o", tmp_path / "o.fa", "--preset", "sever")
    assert result.exit_code == 2
    assert "choose one of none, mild, paper, severe. Did you mean 'severe'?" in result.stderr
    assert not (tmp_path / "o.fa").exists()


def test_dna_gzip_output(tmp_path):
    src = _reads_fasta(tmp_path / "reads.fa", n=2)
    out = tmp_path / "out.fa.gz"
    assert _run("dna", src, "-o", out, "-q").exit_code == 0
    assert gzip.decompress(out.read_bytes()).decode().startswith(f">r0 degraded {PAPER_VALUES}")


@pytest.mark.realdata
def test_dna_reads_a_bold_table(tmp_path, bold_100sp):
    rows = bold_100sp.read_text().split("\n")[:21]  # header + 20 specimens
    src = tmp_path / "bold.tsv"
    src.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out.fa"
    result = _run("dna", src, "-o", out, "--preset", "severe")
    assert result.exit_code == 0, result.output
    records = _fasta(out)
    assert len(records) == 20
    first_id = rows[1].split("\t")[0]
    assert records[0][0].startswith(f"{first_id} degraded preset=severe p_sub=0.06")
    assert records[0][0].endswith("seed=0 index=0")


def test_help_shows_defaults():
    dna_help = _run("dna", "--help").output
    assert "[default: paper]" in dna_help and "[default: 0; x>=0]" in dna_help
    image_help = _run("image", "--help").output
    assert "[default: 5; x>=1]" in image_help
    assert "own resolution" in " ".join(image_help.split())


# ---------------------------------------------------------------- image


def _photo(path: Path, size=(64, 48), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def test_image_single_file(tmp_path):
    src = _photo(tmp_path / "bug.png")
    out = tmp_path / "bug_blur.png"
    result = _run("image", src, "-o", out, "--kernel", 9)
    assert result.exit_code == 0, result.output
    expected = np.asarray(blur_image(load_image(src), 9))
    np.testing.assert_array_equal(np.asarray(Image.open(out)), expected)
    assert f"1 image blurred (k=9) to {out}" in result.stderr
    again = _run("image", src, "-o", out)
    assert again.exit_code == 2
    assert again.stderr == f"error: {out} already exists; pass --force to overwrite it\n"


def test_image_folder_keeps_names_and_reports_bad_files(tmp_path):
    src = tmp_path / "photos"
    (src / "sub").mkdir(parents=True)
    _photo(src / "a.png")
    _photo(src / "sub" / "b.jpg", seed=1)
    (src / "broken.jpg").write_text("not a photo")
    (src / "notes.txt").write_text("ignored")
    out = tmp_path / "blurred"
    result = _run("image", src, "-o", out, "-k", 3)
    assert result.exit_code == 1
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.*")) == ["a.png", "sub/b.jpg"]
    assert Image.open(out / "sub" / "b.jpg").format == "JPEG"
    assert f"skipped: {src / 'broken.jpg'}: is not an image Pillow can read" in result.stderr
    assert "2 images blurred (k=3)" in result.stderr and "1 skipped" in result.stderr
    refused = _run("image", src, "-o", out)
    assert refused.exit_code == 2 and "already exists; pass --force" in refused.stderr
    as_png = _run("image", src, "-o", out, "--format", "png", "--force", "-q")
    assert as_png.exit_code == 1
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.*")) == ["a.png", "sub/b.png"]


def test_image_unknown_output_suffix(tmp_path):
    src = _photo(tmp_path / "bug.png")
    result = _run("image", src, "-o", tmp_path / "bug.out")
    assert result.exit_code == 2
    assert "cannot tell the image format from 'bug.out'" in result.stderr
