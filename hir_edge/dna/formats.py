"""What a reads file is: opened once (a pipe or standard input too), gzip by content, its
format settled from its name or its first line, every whole-file problem raised here."""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import io
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from hir_edge.dna.qc import _DROP_VALID
from hir_edge.errors import InputError

FORMATS = ("auto", "fasta", "fastq", "tsv", "csv")
# "nuc" and "marker_code": BOLD v5 data packages (the Barcode Core Data Model); "nucleotides"
# and "markercode": BOLD's older public exports.
SEQUENCE_COLUMNS = ("nucleotides", "nuc", "dna_barcode", "barcode", "sequence", "seq")
ID_COLUMNS = ("processid", "sampleid", "id", "specimen_id")
MARKER_COLUMNS = ("marker_code", "markercode")
BARCODE_MARKER = "COI-5P"  # the animal barcode region every bundle's library holds

_FASTA_SUFFIXES = {".fa", ".fasta", ".fas", ".fna", ".ffn"}
_FASTQ_SUFFIXES = {".fq", ".fastq"}
_TABLE_SUFFIXES = {".tsv": "tsv", ".csv": "csv"}
_HEAD_BYTES = 1 << 16
STDIN = "-"  # the path that means standard input


@dataclass(frozen=True)
class Layout:
    format: str  # fasta, fastq, tsv or csv
    sequence_column: str | None = None
    id_column: str | None = None
    marker_column: str | None = None


def other_marker(value: str) -> str | None:
    """The marker of a record that is not the COI barcode (None for COI-5P or no marker): a BOLD
    export mixes markers (ITS, 28S, rbcL …), and only COI-5P compares with a COI library."""
    value = value.strip()
    return value if value and value.upper() != BARCODE_MARKER else None


class _Prefixed(io.RawIOBase):
    """The bytes already read to detect the format, then the rest of the stream: a pipe or
    standard input can be read only once, so the file is opened once and never rewound."""

    def __init__(self, head: bytes, rest: IO[bytes]):
        self._head, self._rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._rest.close()
        super().close()


@contextlib.contextmanager
def gzip_errors(path: Path) -> Iterator[None]:
    try:
        yield
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise InputError(path, f"is a corrupt or truncated gzip file ({exc})") from exc


def _open_binary(path: Path) -> IO[bytes]:
    """The file (``-``: standard input) opened once, decompressed when gzip (by content)."""
    if str(path) == STDIN:
        raw: IO[bytes] = sys.stdin.buffer
    else:
        raw = open(path, "rb")  # noqa: SIM115 - the caller's iterator owns and closes it
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)
    gz = buffered.peek(2)[:2] == b"\x1f\x8b"
    return gzip.GzipFile(fileobj=buffered, mode="rb") if gz else buffered


def _head(stream: IO[bytes], path: Path) -> tuple[bytes, str]:
    """The start of the stream (raw and decoded, up to the first non-blank line), or a fatal
    error. Undecodable bytes are tolerated here (a non-UTF-8 header costs its record, later);
    NUL bytes or mostly undecodable text mean a binary file."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
    raw, text = b"", ""
    with gzip_errors(path):
        while True:
            chunk = stream.read(_HEAD_BYTES)
            raw += chunk
            if b"\x00" in chunk:
                raise InputError(path, "is a binary file, not FASTA/FASTQ/TSV")
            text += decoder.decode(chunk, final=not chunk)
            if text.count("\ufffd") > 0.05 * max(len(text), 1):
                raise InputError(path, "is a binary file, not FASTA/FASTQ/TSV")
            if not chunk or len(text) > 16 * _HEAD_BYTES or "\n" in text.lstrip():
                return raw, text


def _split_header(line: str, delimiter: str) -> list[str]:
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    return [c.strip() for c in next(csv.reader([line], delimiter=delimiter, quoting=quoting))]


def _table_layout(path: Path, fmt: str, header_line: str, line: int) -> Layout:
    columns = _split_header(header_line, "\t" if fmt == "tsv" else ",")
    lower = {c.lower(): c for c in columns}
    seq_col = next((lower[c] for c in SEQUENCE_COLUMNS if c in lower), None)
    if seq_col is None:
        shown = ", ".join(columns[:20]) + (", …" if len(columns) > 20 else "")
        raise InputError(
            path,
            f"has no sequence column (accepted names: {', '.join(SEQUENCE_COLUMNS)}; "
            f"its columns: {shown})",
            line=line,
        )
    id_col = next((lower[c] for c in ID_COLUMNS if c in lower), None)
    marker_col = next((lower[c] for c in MARKER_COLUMNS if c in lower), None)
    return Layout(fmt, seq_col, id_col, marker_col)


def detect_format(path: Path, fmt: str) -> tuple[Layout, IO[str]]:
    """Check the file and settle its format; every whole-file problem raises here. Returns the
    layout and the text stream to read the records from (the file is opened once)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown sequence format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if str(path) != STDIN:
        if not path.exists():
            raise InputError(path, "does not exist")
        if path.is_dir():
            raise InputError(path, "is a directory, not a sequence file")
    try:
        stream = _open_binary(path)
    except PermissionError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror})") from exc
    try:
        raw, head = _head(stream, path)
    except BaseException:
        stream.close()
        raise
    handle = io.TextIOWrapper(
        io.BufferedReader(_Prefixed(raw, stream)),
        encoding="utf-8-sig",
        errors="surrogateescape",  # a bad byte is kept visible, so its record can be named
        newline="",
    )
    try:
        return _settle_format(path, fmt, head), handle
    except BaseException:
        handle.close()
        raise


def _settle_format(path: Path, fmt: str, head: str) -> Layout:
    text = head.lstrip()
    if not text:
        raise InputError(path, "contains no records")
    first_line = text.splitlines()[0].strip()
    if fmt == "auto":
        suffixes = [s.lower() for s in path.suffixes]  # none for "-" (standard input)
        suffix = suffixes[-2] if suffixes[-1:] == [".gz"] and len(suffixes) > 1 else path.suffix
        suffix = suffix.lower()
        if suffix in _FASTA_SUFFIXES:
            fmt = "fasta"
        elif suffix in _FASTQ_SUFFIXES:
            fmt = "fastq"
        elif suffix in _TABLE_SUFFIXES:
            fmt = _TABLE_SUFFIXES[suffix]
        elif text[0] == ">":
            fmt = "fasta"
        elif text[0] == "@":
            fmt = "fastq"
        elif "\t" in first_line or "," in first_line or first_line.lower() in SEQUENCE_COLUMNS:
            fmt = "tsv" if "\t" in first_line or "," not in first_line else "csv"
        else:
            hint = ""
            if not first_line.translate(_DROP_VALID):
                hint = "; it looks like bare sequences: put a '>id' line before each"
            raise InputError(
                path, f"does not look like FASTA, FASTQ or a table with a sequence column{hint}"
            )
    expected = {"fasta": ">", "fastq": "@"}.get(fmt)
    if expected and text[0] != expected:
        raise InputError(
            path,
            f"does not look like {fmt.upper()}: its first line should start with "
            f"{expected!r} but reads {first_line[:40]!r}",
        )
    if fmt in ("tsv", "csv"):
        header_line = head[: len(head) - len(text)].count("\n") + 1
        return _table_layout(path, fmt, first_line, header_line)
    return Layout(fmt)
