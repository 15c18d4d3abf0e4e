"""DNA reads in, clean oriented reads out: FASTA/FASTQ/BOLD-style tables.

Reads arrive as FASTA from a sequencer or pipeline, FASTQ from basecallers, or TSV/CSV exports
from BOLD and BIOSCAN. Every reader streams (a run can hold millions of reads), every record is
cleaned to the A/C/G/T/N alphabet the tokenizers expect, and COI barcodes are put on the coding
strand, because the encoders were trained on coding-strand barcodes and a reverse-complemented
read embeds as a different sequence.

A bad record never stops a run: it is skipped and reported (``ReadReport``) as a one-line
``InputError`` naming the file, the record and its line. Only whole-file problems raise.

Cleaning, QC and orientation live in :mod:`hir_edge.dna.qc` and are re-exported here.
Edge path: standard library, numpy and Biopython only.
"""

from __future__ import annotations

import collections
import csv
import gzip
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from hir_edge.dna.formats import (
    BARCODE_MARKER,
    FORMATS,
    ID_COLUMNS,
    SEQUENCE_COLUMNS,
    Layout,
    detect_format,
    gzip_errors,
    other_marker,
)
from hir_edge.dna.qc import (
    COI_MARKOV,
    DEFAULT_MAX_N_FRACTION,
    DEFAULT_MIN_LENGTH,
    UNCERTAIN_STRAND_MARGIN,
    ReadQC,
    clean_read,
    orient_coi,
    reverse_complement,
    stop_codon_counts,
)
from hir_edge.errors import InputError
from hir_edge.io import atomic_open, ensure_writable

# Longer than any COI amplicon read (a barcode is ~658 bp; a long-read amplicon a few kb): a
# longer "read" is a contig or a genome, and aligning it would take minutes and gigabytes.
MAX_READ_LENGTH = 10_000

# ----------------------------------------------------------------------------- records and QC


@dataclass
class RawRecord:
    """One record as stored in the file, before any cleaning."""

    id: str
    sequence: str
    description: str
    index: int  # 0-based record number in the file
    line: int | None  # 1-based line where the record starts
    fields: dict[str, str] = field(default_factory=dict)  # other table columns


@dataclass
class Read:
    """A clean read, on the coding strand when orientation was asked for."""

    id: str
    sequence: str
    qc: ReadQC
    source: str
    index: int
    fields: dict[str, str] = field(default_factory=dict)


@dataclass
class ReadReport:
    """Counts of one reading pass, filled while ``read_sequences`` is consumed."""

    n_read: int = 0
    n_ok: int = 0
    n_skipped: int = 0
    errors: list[InputError] = field(default_factory=list)
    flag_counts: dict[str, int] = field(default_factory=dict)

    def skip(self, error: InputError) -> None:
        self.n_skipped += 1
        self.errors.append(error)

    def summary(self) -> str:
        flags = ", ".join(f"{n} {name}" for name, n in sorted(self.flag_counts.items()))
        text = f"{self.n_read} records: {self.n_ok} read, {self.n_skipped} skipped"
        return f"{text} (flagged: {flags})" if flags else text


# ----------------------------------------------------------------------------- record readers


def _numbered(handle: IO[str]) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(handle, 1):
        yield number, line.rstrip("\r\n")


def _fasta_pairs(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(title, sequence) of each record: Biopython's ``SimpleFastaParser``, rule for rule (text
    before the first '>' skipped, trailing whitespace, internal spaces and carriage returns
    dropped), without importing Bio.SeqIO, whose start-up (every format it reads) a one-read
    run would pay for."""
    lines = iter(lines)
    for line in lines:
        if line[0] == ">":
            title = line[1:].rstrip()
            break
    else:
        return
    parts: list[str] = []
    for line in lines:
        if line[0] == ">":
            yield title, "".join(parts).replace(" ", "").replace("\r", "")
            parts, title = [], line[1:].rstrip()
            continue
        parts.append(line.rstrip())
    yield title, "".join(parts).replace(" ", "").replace("\r", "")


def _fasta_records(handle: IO[str], path: Path) -> Iterator[RawRecord | InputError]:
    starts: collections.deque[int] = collections.deque()

    def lines() -> Iterator[str]:
        for number, line in enumerate(handle, 1):
            if line.startswith(">"):
                starts.append(number)
            yield line

    for index, (title, seq) in enumerate(_fasta_pairs(lines())):
        line = starts.popleft()
        words = title.split(None, 1)
        if not words:
            yield InputError(path, "has an empty header (no id)", record=f"#{index + 1}", line=line)
            continue
        yield RawRecord(words[0], seq, title, index, line)


def _fastq_records(handle: IO[str], path: Path) -> Iterator[RawRecord | InputError]:
    """4-line (or wrapped) FASTQ, one record at a time.

    Biopython's FastqGeneralIterator applies the same rules but stops at the first malformed
    record; a field run must not lose every read after one bad quality line, so this reader
    reports that record and carries on.
    """
    lines = _numbered(handle)
    pending = next(lines, None)
    index = 0
    while pending is not None:
        number, header = pending
        if not header.strip():
            pending = next(lines, None)
            continue
        if not header.startswith("@"):
            yield InputError(
                path,
                f"expected a FASTQ header starting with '@', found {header[:40]!r}",
                line=number,
            )
            pending = next(lines, None)
            while pending is not None and not pending[1].startswith("@"):
                pending = next(lines, None)
            continue
        title = header[1:].strip()
        rid = title.split(None, 1)[0] if title else ""
        name = rid or f"#{index + 1}"
        seq_parts = []
        pending = next(lines, None)
        while pending is not None and not pending[1].startswith(("+", "@")):
            seq_parts.append(pending[1].strip())
            pending = next(lines, None)
        if pending is None or pending[1].startswith("@"):
            yield InputError(path, "has no '+' quality line", record=name, line=number)
            index += 1
            continue
        seq = "".join(seq_parts)
        quality: list[str] = []
        n_quality = 0
        pending = next(lines, None)
        while pending is not None:
            text = pending[1].strip()
            # After some quality, a line starting with '@' is the next record unless it
            # completes the quality exactly ('@' is also a quality character). This recovers
            # from a short quality line; 4-line FASTQ, which current tools write, is never
            # ambiguous.
            header_next = text.startswith("@") and n_quality + len(text) != len(seq)
            if quality and (n_quality >= len(seq) or header_next):
                break
            quality.append(text)
            n_quality += len(text)
            pending = next(lines, None)
        if not rid:
            yield InputError(path, "has an empty header (no id)", record=name, line=number)
        elif n_quality != len(seq):
            yield InputError(
                path,
                f"quality has {n_quality} characters but the sequence has {len(seq)}",
                record=rid,
                line=number,
            )
        else:
            yield RawRecord(rid, seq, title, index, number)
        index += 1


def _table_records(handle: IO[str], path: Path, layout: Layout) -> Iterator[RawRecord | InputError]:
    delimiter = "\t" if layout.format == "tsv" else ","
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(handle, delimiter=delimiter, quoting=quoting)
    header: list[str] | None = None
    seq_at = id_at = marker_at = -1
    index = previous = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            yield InputError(path, f"cannot be read as a table row ({exc})", line=reader.line_num)
            previous = reader.line_num
            continue
        line, previous = previous + 1, reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [c.strip() for c in row]
            seq_at = header.index(layout.sequence_column)
            id_at = header.index(layout.id_column) if layout.id_column else -1
            marker_at = header.index(layout.marker_column) if layout.marker_column else -1
            continue
        name = f"#{index + 1}"
        if len(row) > len(header):
            yield InputError(
                path,
                f"has {len(row)} columns but the header has {len(header)}",
                record=name,
                line=line,
            )
            index += 1
            continue
        row = row + [""] * (len(header) - len(row))
        rid = row[id_at].strip() if id_at >= 0 else str(index + 1)
        marker = other_marker(row[marker_at]) if marker_at >= 0 else None
        if not rid:
            message = f"has an empty {layout.id_column!r} column (no id)"
            yield InputError(path, message, record=name, line=line)
        elif marker is not None:
            message = f"is of marker {marker}, not the {BARCODE_MARKER} barcode"
            yield InputError(path, message, record=rid, line=line)
        else:
            fields = {col: row[i] for i, col in enumerate(header) if i != seq_at}
            yield RawRecord(rid, row[seq_at], "", index, line, fields)
        index += 1
    if header is not None and index == 0:
        raise InputError(path, "contains no records (only a header line)")


def iter_records(path: str | Path, format: str = "auto") -> Iterator[RawRecord | InputError]:
    """Stream the raw records of a FASTA, FASTQ (plain or gzipped) or TSV/CSV file.

    Whole-file problems (missing, empty, binary, unknown format, a table without a sequence
    column) raise ``InputError`` at the call; a bad record is yielded as an ``InputError`` and
    the next one is read.

    Args:
        path: the file, or ``-`` for standard input; it is opened once, so a pipe works.
            ``.gz`` is recognised by content, not only by name.
        format: ``auto`` (by extension, else by the first character: '>' FASTA, '@' FASTQ,
            otherwise a table with a header), ``fasta``, ``fastq``, ``tsv`` or ``csv``.
    """
    path = Path(path)
    layout, handle = detect_format(path, format)
    return _iterate(path, layout, handle)


def _iterate(path: Path, layout: Layout, handle: IO[str]) -> Iterator[RawRecord | InputError]:
    with gzip_errors(path), handle:
        if layout.format == "fasta":
            records = _fasta_records(handle, path)
        elif layout.format == "fastq":
            records = _fastq_records(handle, path)
        else:
            records = _table_records(handle, path, layout)
        for record in records:
            yield _checked_text(record, path) if isinstance(record, RawRecord) else record


def _checked_text(record: RawRecord, path: Path) -> RawRecord | InputError:
    """A record whose header holds bytes that are not UTF-8 is reported, never renamed."""
    for text in (record.id, record.description, *record.fields.values()):
        if text.isascii():  # the common case, checked in C
            continue
        bad = next((c for c in text if "\udc80" <= c <= "\udcff"), None)
        if bad is not None:
            return InputError(
                path,
                f"its header is not UTF-8 text (byte 0x{ord(bad) - 0xDC00:02x}); "
                "save the file as UTF-8",
                record=f"#{record.index + 1}",
                line=record.line,
            )
    return record


# ----------------------------------------------------------------------------- public reading


def read_sequences(
    path: str | Path,
    *,
    format: str = "auto",
    orient: bool = True,
    min_length: int = DEFAULT_MIN_LENGTH,
    max_n_fraction: float = DEFAULT_MAX_N_FRACTION,
    report: ReadReport | None = None,
) -> Iterator[Read]:
    """Stream the clean reads of a file, skipping (and reporting) the records that are bad.

    Args:
        path: FASTA, FASTQ (plain or .gz) or a BOLD/BIOSCAN TSV/CSV export.
        format: see ``iter_records``.
        orient: put each read on the COI coding strand (``orient_coi``).
        min_length: reads shorter than this are flagged ``short`` (still yielded).
        max_n_fraction: reads with more N than this are flagged ``many_n`` (still yielded).
        report: filled as the iterator is consumed: counts, skipped records, flag counts.

    Raises:
        InputError: at the call, for problems with the whole file.
    """
    records = iter_records(path, format)
    return _reads(records, str(path), orient, min_length, max_n_fraction, report or ReadReport())


def _reads(
    records: Iterator[RawRecord | InputError],
    source: str,
    orient: bool,
    min_length: int,
    max_n_fraction: float,
    report: ReadReport,
) -> Iterator[Read]:
    first_seen: dict[str, int] = {}
    for record in records:
        report.n_read += 1
        if isinstance(record, InputError):
            report.skip(record)
            continue
        if record.id in first_seen:
            message = f"duplicate id (first seen at record {first_seen[record.id] + 1})"
            report.skip(InputError(source, message, record=record.id, line=record.line))
            continue
        first_seen[record.id] = record.index
        if len(record.sequence) > MAX_READ_LENGTH:
            message = (
                f"is {len(record.sequence):,} bases long; a barcode read is at most "
                f"{MAX_READ_LENGTH:,} (a contig or genome is not a barcode read)"
            )
            report.skip(InputError(source, message, record=record.id, line=record.line))
            continue
        try:
            seq, qc = clean_read(
                record.sequence,
                orient=orient,
                min_length=min_length,
                max_n_fraction=max_n_fraction,
            )
        except ValueError as exc:
            report.skip(InputError(source, str(exc), record=record.id, line=record.line))
            continue
        report.n_ok += 1
        for flag in qc.flags:
            report.flag_counts[flag] = report.flag_counts.get(flag, 0) + 1
        yield Read(record.id, seq, qc, source, record.index, record.fields)


# ----------------------------------------------------------------------------- writing


def write_fasta(
    records: Iterable[tuple[str, str] | tuple[str, str, str] | Read],
    path: str | Path,
    *,
    force: bool = False,
    line_width: int = 0,
) -> int:
    """Write reads as FASTA (gzipped when the name ends in .gz), atomically.

    Args:
        records: ``Read`` objects, ``(id, sequence)`` pairs or ``(id, sequence, description)``
            triples (the description follows the id on the header line).
        path: the output; an existing file is kept unless ``force``.
        line_width: wrap sequences at this width (60 is conventional); 0 writes one line.

    Returns:
        The number of records written.

    Raises:
        OutputExistsError: ``path`` exists and ``force`` is False.
        ValueError: an id that is empty or holds whitespace (it would not read back).
    """
    if line_width < 0:
        raise ValueError(f"line_width must be 0 (no wrapping) or positive, got {line_width}")
    path = ensure_writable(path, force)
    count = 0
    with atomic_open(path, "wb") as raw:
        gz = path.suffix.lower() == ".gz"
        stream = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if gz else raw
        for item in records:
            if isinstance(item, Read):
                rid, seq, note = item.id, item.sequence, ""
            else:
                rid, seq, note = (*item, "") if len(item) == 2 else item
            if not rid or rid.split() != [rid]:
                raise ValueError(
                    f"record {count + 1}: FASTA ids must be non-empty and hold no "
                    f"whitespace, got {rid!r}"
                )
            step = line_width or max(len(seq), 1)
            lines = [seq[start : start + step] for start in range(0, len(seq), step)]
            header = f">{rid} {note}" if note else f">{rid}"
            stream.write("\n".join([header, *lines, ""]).encode("utf-8"))
            count += 1
        if gz:
            stream.close()  # writes the gzip trailer; the file itself stays open
    return count


__all__ = [
    "COI_MARKOV",
    "DEFAULT_MAX_N_FRACTION",
    "DEFAULT_MIN_LENGTH",
    "FORMATS",
    "ID_COLUMNS",
    "SEQUENCE_COLUMNS",
    "UNCERTAIN_STRAND_MARGIN",
    "RawRecord",
    "Read",
    "ReadQC",
    "ReadReport",
    "clean_read",
    "iter_records",
    "orient_coi",
    "read_sequences",
    "reverse_complement",
    "stop_codon_counts",
    "write_fasta",
]
