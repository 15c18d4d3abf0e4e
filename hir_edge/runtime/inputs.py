"""From what a biologist hands over — a reads file, photos, a specimen sheet — to specimens.

Pairing rules (documented in the README):

* one read and one photo: they are the same specimen;
* otherwise a read and a photo pair when the read id equals the photo's file stem;
* ``--manifest``: a CSV/TSV sheet with ``specimen_id`` and any of ``sequence_id`` (a record of
  the reads file), ``sequence`` (the read itself) and ``image`` (a path, relative to the sheet);
* anything left unpaired is identified from what it has.

Reads stream from the file in batches; a bad record or an unreadable photo is reported (one
line naming the file and the record) and skipped, and the rest still run.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hir_edge.dna.io import ReadReport, read_sequences
from hir_edge.dna.qc import clean_read
from hir_edge.errors import InputError
from hir_edge.images import IMAGE_SUFFIXES, load_image
from hir_edge.runtime.schema import Photo, Specimen

MANIFEST_ID = ("specimen_id", "id", "processid", "sampleid")


@dataclass
class Problems:
    """Inputs that were skipped, each with its one-line reason."""

    errors: list[InputError] = field(default_factory=list)

    def add(self, error: InputError) -> None:
        self.errors.append(error)

    def __len__(self) -> int:
        return len(self.errors)


def expand_images(paths: Sequence[str | Path]) -> list[Path]:
    """Image files from files and folders (a folder is searched for image suffixes)."""
    out: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            out += sorted(
                p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            )
        elif path.exists():
            out.append(path)
        else:
            raise InputError(path, "no such file or folder")
    return out


def check_photo(path: Path) -> None:
    """Decode ``path`` small enough to be quick, only to know that it decodes."""
    load_image(path, min_size=16)


def _checked_image(
    path: Path, problems: Problems, decode: Callable[[Path], Photo | None]
) -> tuple[Path | None, Photo | None]:
    """(``path``, its decoded photo) when it decodes, else (None, None) with the problem
    recorded: a bad photo costs itself, never the run."""
    try:
        photo = decode(path)
    except InputError as err:
        problems.add(err)
        return None, None
    except Exception as err:  # a decoder bug must cost one photo, never the run
        problems.add(InputError(path, f"could not be decoded ({type(err).__name__}: {err})"))
        return None, None
    return path, photo


def specimens_from_files(
    reads: Path | None,
    images: Sequence[Path],
    problems: Problems,
    report: ReadReport,
    decode: Callable[[Path], Photo | None] = check_photo,
) -> Iterator[Specimen]:
    """Specimens from a reads file and photos, paired as the module docstring says.

    ``decode`` reads each photo once as it is reached (``Identifier.decode_photo``: the pixels
    travel with the specimen); the default only checks that it decodes."""
    by_stem: dict[str, Path] = {}
    for path in images:
        if path.stem in by_stem:
            problems.add(
                InputError(
                    path,
                    f"two photos share the name {path.stem!r} "
                    f"(also {by_stem[path.stem]}); this one is skipped",
                )
            )
            continue
        by_stem[path.stem] = path
    single_pair = reads is not None and len(images) == 1
    used: set[str] = set()
    if reads is not None:
        first: Specimen | None = None
        count = 0
        for read in read_sequences(reads, report=report):
            count += 1
            photo = by_stem.get(read.id)
            specimen = Specimen(read.id, read.sequence, read.qc, source=read.source)
            if photo is not None:
                used.add(read.id)
                specimen.image, specimen.photo = _checked_image(photo, problems, decode)
                specimen.image_name = photo.name
            if single_pair and count == 1:
                first = specimen  # held back until we know the file has one record
                continue
            if first is not None:
                yield first
                first = None
            yield specimen
        if first is not None:
            if first.image is None and images:
                photo = images[0]
                used.add(photo.stem)
                first.image, first.photo = _checked_image(photo, problems, decode)
                first.image_name = photo.name
            yield first
    for stem, path in by_stem.items():
        if stem in used:
            continue
        checked, photo = _checked_image(path, problems, decode)
        if checked is not None:
            yield Specimen(stem, image=checked, image_name=path.name, photo=photo)


def _sheet_rows(sheet: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, row) of a CSV/TSV sheet, streamed; whole-sheet problems raise InputError."""
    if not sheet.is_file():
        raise InputError(sheet, "no such file")
    try:
        with sheet.open(encoding="utf-8-sig", newline="") as handle:
            header = handle.readline()
            if not header.strip():
                raise InputError(sheet, "contains no rows")
            delimiter = "\t" if "\t" in header else ","
            handle.seek(0)
            reader = csv.DictReader(handle, delimiter=delimiter)
            columns = set(reader.fieldnames or ())
            if not columns & set(MANIFEST_ID):
                raise InputError(
                    sheet,
                    f"has no specimen id column (one of {', '.join(MANIFEST_ID)}); "
                    f"columns: {', '.join(sorted(columns))}",
                )
            if not columns & {"sequence_id", "sequence", "image"}:
                raise InputError(sheet, "needs a 'sequence_id', 'sequence' or 'image' column")
            yield from enumerate(reader, start=2)
    except UnicodeDecodeError as err:
        raise InputError(sheet, f"is not UTF-8 text ({err.reason} at byte {err.start})") from None


def specimens_from_manifest(
    sheet: Path,
    reads: Path | None,
    problems: Problems,
    report: ReadReport,
    decode: Callable[[Path], Photo | None] = check_photo,
) -> Iterator[Specimen]:
    """Specimens described row by row in a CSV/TSV sheet (photos read by ``decode``, as
    :func:`specimens_from_files` does).

    Only the reads the sheet names are kept in memory (a first pass over the sheet collects
    their ids while the reads file streams by); reads of the file the sheet does not name are
    identified afterwards from the read alone.
    """
    wanted: set[str] = set()
    rows = 0
    for _, row in _sheet_rows(sheet):
        rows += 1
        if (row.get("sequence_id") or "").strip():
            wanted.add(row["sequence_id"].strip())
    if rows == 0:
        raise InputError(sheet, "contains no rows")
    if wanted and reads is None:
        raise InputError(sheet, "has a sequence_id column: give the reads file with --fasta")
    records = {}
    if reads is not None:
        for read in read_sequences(reads, report=report):
            if read.id in wanted:
                records[read.id] = read
    seen: set[str] = set()
    used: set[str] = set()
    for line, row in _sheet_rows(sheet):
        id_col = next(c for c in MANIFEST_ID if c in row)
        sid = (row.get(id_col) or "").strip()
        if not sid:
            problems.add(InputError(sheet, "empty specimen id", line=line))
            continue
        if sid in seen:
            problems.add(
                InputError(
                    sheet, "duplicate specimen id; this row is skipped", record=sid, line=line
                )
            )
            continue
        seen.add(sid)
        specimen = Specimen(sid)
        seq_id = (row.get("sequence_id") or "").strip()
        raw = (row.get("sequence") or "").strip()
        if seq_id:
            read = records.get(seq_id)
            if read is None:
                problems.add(
                    InputError(
                        sheet, f"sequence_id {seq_id!r} is not in {reads}", record=sid, line=line
                    )
                )
            else:
                specimen.sequence, specimen.qc = read.sequence, read.qc
                specimen.source = read.source
                used.add(seq_id)
        elif raw:
            try:
                specimen.sequence, specimen.qc = clean_read(raw, orient=True)
                specimen.source, specimen.line = str(sheet), line
            except ValueError as err:
                problems.add(InputError(sheet, str(err), record=sid, line=line))
        image = (row.get("image") or "").strip()
        if image:
            path = Path(image) if Path(image).is_absolute() else sheet.parent / image
            if not path.exists():
                problems.add(InputError(sheet, f"image {image} not found", record=sid, line=line))
            else:
                specimen.image, specimen.photo = _checked_image(path, problems, decode)
                specimen.image_name = path.name
        if specimen.sequence or specimen.image is not None:
            yield specimen
    if reads is not None:  # reads no accepted row uses: identified alone (the file streams again)
        for read in read_sequences(reads, report=ReadReport()):
            if read.id not in used:
                yield Specimen(read.id, read.sequence, read.qc, source=read.source)


def batched(items: Iterator[Specimen], size: int) -> Iterator[list[Specimen]]:
    batch: list[Specimen] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
