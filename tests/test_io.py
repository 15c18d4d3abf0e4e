"""File safety: atomic writes, no clobbering, safe archive extraction, checksums."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from hir_edge.io import (
    OutputExistsError,
    atomic_dir,
    atomic_open,
    atomic_write_text,
    ensure_writable,
    ensure_writable_folder,
    human_size,
    remove_stale_temporaries,
    safe_extract_tar,
    sha256_file,
)


def test_atomic_write_leaves_old_file_when_writer_fails(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(target) as handle:
        handle.write("half of the new")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # no temp file left behind


def test_atomic_outputs_follow_the_umask(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "x")
    with atomic_dir(tmp_path / "d") as folder:
        (folder / "f").write_text("y")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~mask
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o777 & ~mask


def test_no_clobber_without_force(tmp_path):
    target = tmp_path / "result.tsv"
    target.write_text("keep me")
    with pytest.raises(
        OutputExistsError, match=r"result.tsv already exists; pass --force to overwrite it"
    ):
        ensure_writable(target)
    assert ensure_writable(target, force=True) == target


def test_atomic_dir_replaces_only_when_complete(tmp_path):
    out = tmp_path / "bundle"
    with atomic_dir(out) as folder:
        (folder / "a").write_text("1")
    with pytest.raises(OutputExistsError), atomic_dir(out):
        pass
    with pytest.raises(ValueError), atomic_dir(out, force=True) as folder:
        (folder / "a").write_text("2")
        raise ValueError("interrupted")
    assert (out / "a").read_text() == "1"
    with atomic_dir(out, force=True) as folder:
        (folder / "b").write_text("3")
    assert sorted(p.name for p in out.iterdir()) == ["b"]


def _tar_with(tmp_path, name: str, data: bytes = b"x", kind=tarfile.REGTYPE, linkname=""):
    path = tmp_path / "a.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = linkname
        info.size = len(data) if kind == tarfile.REGTYPE else 0
        tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return path


def test_safe_extract_refuses_paths_outside_target(tmp_path):
    evil = _tar_with(tmp_path, "../escape.txt")
    with pytest.raises(ValueError, match=r"member '../escape.txt' would extract outside"):
        safe_extract_tar(evil, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()
    link = _tar_with(tmp_path, "link", kind=tarfile.SYMTYPE, linkname="/etc/passwd")
    with pytest.raises(ValueError, match=r"member 'link' is a link or special file"):
        safe_extract_tar(link, tmp_path / "out2")


def test_safe_extract_and_checksum(tmp_path):
    good = _tar_with(tmp_path, "dir/file.txt", b"hello")
    out = safe_extract_tar(good, tmp_path / "out")
    extracted = out / "dir" / "file.txt"
    assert extracted.read_bytes() == b"hello"
    assert sha256_file(extracted) == hashlib.sha256(b"hello").hexdigest()


def test_human_size():
    assert human_size(512) == "512 B"
    assert human_size(1536) == "1.5 KB"
    assert human_size(25 * 1024 * 1024) == "25.0 MB"


def test_special_files_are_written_into_never_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert ensure_writable(fifo) == fifo  # no --force needed: nothing there can be clobbered
    assert ensure_writable("/dev/null") == Path("/dev/null")
    with atomic_open("/dev/null") as handle:
        handle.write("rows\n")
    assert Path("/dev/null").is_char_device()
    target = tmp_path / "target.tsv"
    target.write_text("old")
    link = tmp_path / "link.tsv"
    link.symlink_to(target)
    atomic_write_text(link, "new")
    assert link.is_symlink() and target.read_text() == "new"


def test_interrupted_writer_keeps_its_rows_beside_the_output(tmp_path):
    out = tmp_path / "out.tsv"
    out.write_text("the user's file")
    partial = tmp_path / "out.tsv.partial"
    with pytest.raises(KeyboardInterrupt), atomic_open(out, interrupted_to=partial) as handle:
        handle.write("row 1\n")
        handle.flush()
        raise KeyboardInterrupt
    assert out.read_text() == "the user's file"
    assert partial.read_text() == "row 1\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_killed_runs_temporaries_are_removed_by_the_next_run(tmp_path):
    out = tmp_path / "out.tsv"
    dead = 2**22 + 12345  # above Linux's default pid_max: no such process
    stale = tmp_path / f".out.tsv.{dead}.abc123.tmp"
    stale.write_text("half")
    mine = tmp_path / f".out.tsv.{os.getpid()}.def456.tmp"
    mine.write_text("being written")
    other = tmp_path / f".other.tsv.{dead}.x.tmp"
    other.write_text("not ours")
    assert remove_stale_temporaries(out) == [stale]
    assert not stale.exists() and mine.exists() and other.exists()


def test_an_output_folder_is_checked_before_the_work(tmp_path):
    """An existing report folder needs --force; a file where the folder should go is refused
    even with it (the file is the user's)."""
    out = tmp_path / "new" / "report"
    assert ensure_writable_folder(out) == out and out.parent.is_dir() and not out.exists()
    out.mkdir()
    with pytest.raises(OutputExistsError, match="report already exists; pass --force"):
        ensure_writable_folder(out)
    assert ensure_writable_folder(out, force=True) == out
    mine = tmp_path / "notes.txt"
    mine.write_text("mine")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        ensure_writable_folder(mine, force=True)
    assert mine.read_text() == "mine"


def test_the_fasta_reader_splits_records_as_biopython_does():
    """hir-edge reads FASTA without importing Bio.SeqIO (start-up time); the records are
    Biopython's SimpleFastaParser's, whitespace, carriage returns and stray text included."""
    from Bio.SeqIO.FastaIO import SimpleFastaParser

    from hir_edge.dna.io import _fasta_pairs

    texts = [
        "",
        "no header at all\nACGT\n",
        "comment line\n\n>r1 first read\nACGT\nAC GT\r\n>r2\n>r3  \nTT\n\n",
        ">only\nACGTN\nNNNN",
        ">a\r\nAC\r\nGT\r\n>b\t desc\n  A C  \n",
    ]
    for text in texts:
        lines = io.StringIO(text).readlines()
        assert list(_fasta_pairs(lines)) == list(SimpleFastaParser(iter(lines))), text
