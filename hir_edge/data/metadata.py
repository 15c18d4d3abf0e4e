"""Specimen tables: BIOSCAN-1M / BIOSCAN-5M metadata, BOLD exports, simple image tables.

One streaming reader for the tables the project meets, with column names resolved once:

- BIOSCAN-1M ``BIOSCAN_Insect_Dataset_metadata.tsv`` (tab): ``sampleid processid … order family
  … genus species … nucraw image_file chunk_number …``; images live in ``part<chunk_number>/``.
- BIOSCAN-5M ``BIOSCAN_5M_Insect_Dataset_metadata.csv`` (comma): ``processid sampleid … order
  family subfamily genus species dna_bin dna_barcode … split … chunk``; images live in
  ``<split>/<chunk>/<processid>.jpg`` (no chunk folder for the small splits).
- BOLD exports (tab): ``processid sampleid … order_name family_name genus_name species_name
  nucleotides markercode …``, or BOLD v5 data packages (the Barcode Core Data Model):
  ``processid sampleid … order family … genus species … nuc … marker_code …``. A record of
  another marker than COI-5P keeps its taxonomy and photo but has no barcode.
- Simple tables such as EU-Moths' ``image order genus species split`` (no family column).

Missing names (``not_classified``, ``NA``, empty …) become None via
:func:`hir_edge.taxonomy.clean_name`.
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from hir_edge.dna.formats import MARKER_COLUMNS, other_marker
from hir_edge.errors import InputError
from hir_edge.taxonomy import RANKS, clean_name
from hir_edge.taxonomy import fill_gaps as fill_lineage_gaps

# Accepted header names per field, first match wins (compared case-insensitively).
ALIASES: dict[str, tuple[str, ...]] = {
    "processid": ("processid", "process_id"),
    "sampleid": ("sampleid", "sample_id"),
    "order": ("order", "order_name"),
    "family": ("family", "family_name"),
    "genus": ("genus", "genus_name"),
    "species": ("species", "species_name"),
    "barcode": ("nucleotides", "nuc", "nucraw", "dna_barcode", "barcode", "dna", "sequence"),
    "marker": MARKER_COLUMNS,  # BOLD: a record of another marker has no COI barcode
    "image": ("image", "image_file", "image_path", "file_name", "filename", "file"),
    "chunk_number": ("chunk_number",),  # BIOSCAN-1M: images in part<chunk_number>/
    "chunk": ("chunk",),  # BIOSCAN-5M: images in <split>/<chunk>/<processid>.jpg
}


@dataclass(frozen=True)
class MetadataRow:
    """One specimen record of a metadata table.

    ``image`` is the image path relative to the image folder (None when the table names none);
    ``line`` is the 1-based line of the record, for messages.
    """

    processid: str
    sampleid: str
    lineage: tuple[str | None, ...]
    barcode: str
    image: str | None
    split: str
    line: int


@dataclass(frozen=True)
class _Columns:
    """Positions of the fields in one table's header (None = absent)."""

    index: dict[str, int | None]
    split: int | None


def _open_text(path: Path):
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


def _delimiter(path: Path, header: str) -> str:
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    if suffixes and suffixes[-1] == ".csv":
        return ","
    if suffixes and suffixes[-1] in {".tsv", ".tab"}:
        return "\t"
    return "\t" if "\t" in header else ","


def _resolve(path: Path, header: list[str], split_column: str | None) -> _Columns:
    lower = [h.strip().lower() for h in header]
    index: dict[str, int | None] = {}
    for field, names in ALIASES.items():
        index[field] = next((lower.index(n) for n in names if n in lower), None)
    present = ", ".join(h.strip() for h in header)
    if all(index[rank] is None for rank in RANKS):
        raise InputError(
            path,
            f"missing column 'order' (or any rank column: {', '.join(RANKS)}, or BOLD's "
            f"order_name …); columns present: {present}",
        )
    has_image = index["image"] is not None or (
        index["chunk"] is not None and index["processid"] is not None
    )
    if index["barcode"] is None and not has_image:
        raise InputError(
            path,
            "missing column 'nucleotides' or 'image': a table needs a DNA column "
            f"({', '.join(ALIASES['barcode'])}) or an image column "
            f"({', '.join(ALIASES['image'])}); columns present: {present}",
        )
    if index["processid"] is None and index["sampleid"] is None and index["image"] is None:
        raise InputError(
            path,
            f"missing column 'processid': no record id (processid, sampleid or image); "
            f"columns present: {present}",
        )
    if split_column is None:
        split = lower.index("split") if "split" in lower else None
    elif split_column.lower() in lower:
        split = lower.index(split_column.lower())
    else:
        raise InputError(path, f"missing column {split_column!r}; columns present: {present}")
    return _Columns(index, split)


def _image_path(cells: list[str], cols: _Columns, processid: str, raw_split: str) -> str | None:
    """The image path relative to the image folder, following each dataset's folder scheme."""
    idx = cols.index
    image = cells[idx["image"]].strip() if idx["image"] is not None else ""
    if image:
        chunk = cells[idx["chunk_number"]].strip() if idx["chunk_number"] is not None else ""
        if chunk and "/" not in image and "\\" not in image:
            return str(PurePosixPath(f"part{chunk}") / image)
        return image.replace("\\", "/")
    if idx["chunk"] is not None and processid:
        chunk = cells[idx["chunk"]].strip()
        parts = [p for p in (raw_split, chunk) if p]
        return str(PurePosixPath(*parts, f"{processid}.jpg"))
    return None


def _read_header(path: Path, handle) -> tuple[str, list[str]]:
    """The delimiter and the header cells of an open table (its first line is consumed)."""
    first = handle.readline()
    if not first.strip():
        raise InputError(path, "empty table: no header line")
    delimiter = _delimiter(path, first)
    return delimiter, next(csv.reader([first], delimiter=delimiter))


def table_header(path: str | Path) -> list[str]:
    """The column names of a table (CSV or TSV, optionally gzipped), as written."""
    path = Path(path)
    with _open_text(path) as handle:
        _, header = _read_header(path, handle)
    return [h.strip() for h in header]


def iter_metadata(
    path: str | Path,
    *,
    split_column: str | None = None,
    default_split: str = "train",
    fill_gaps: bool = False,
    problems: list[InputError] | None = None,
) -> Iterator[MetadataRow]:
    """Stream the records of a metadata table.

    Args:
        path: CSV, TSV (optionally gzipped); the delimiter follows the suffix, else the header.
        split_column: column holding each record's split; None uses ``split`` when present.
            A named column that is absent is an error.
        default_split: split of records with no split value (or of every record when the
            table has no split column).
        fill_gaps: fill a missing rank above a known one with an "incertae sedis" placeholder
            (EU-Moths gives genus and species but no family).
        problems: when given, a bad record (wrong number of cells, no id) is appended here
            and skipped; when None, it raises.

    Yields:
        One :class:`MetadataRow` per good record.

    Raises:
        InputError: missing file, empty table, a required column absent (the message names the
            missing column and lists the columns present), or a bad record without ``problems``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with _open_text(path) as handle:
        delimiter, header = _read_header(path, handle)
        cols = _resolve(path, header, split_column)
        reader = csv.reader(handle, delimiter=delimiter)
        line = 1
        for cells in reader:
            line = reader.line_num + 1
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue
            try:
                row = _row(path, cells, len(header), cols, default_split, line, fill_gaps)
            except InputError as err:
                if problems is None:
                    raise
                problems.append(err)
                continue
            yield row


def _row(
    path: Path,
    cells: list[str],
    n_columns: int,
    cols: _Columns,
    default_split: str,
    line: int,
    fill_gaps: bool,
) -> MetadataRow:
    idx = cols.index

    def cell(field: str) -> str:
        position = idx[field]
        return cells[position].strip() if position is not None else ""

    if len(cells) != n_columns:
        record = cells[0].strip() if cells else None
        raise InputError(
            path, f"has {len(cells)} cells, the header has {n_columns}", record=record, line=line
        )
    processid, sampleid = cell("processid"), cell("sampleid")
    raw_split = cells[cols.split].strip() if cols.split is not None else ""
    image = _image_path(cells, cols, processid, raw_split)
    record_id = processid or sampleid or (PurePosixPath(image).stem if image else "")
    if not record_id:
        raise InputError(path, "record has no processid, sampleid or image", line=line)
    lineage = tuple(clean_name(cell(rank)) if idx[rank] is not None else None for rank in RANKS)
    if fill_gaps:
        lineage = fill_lineage_gaps(lineage)
    barcode = "".join((clean_name(cell("barcode")) or "").split())
    if other_marker(cell("marker")):
        barcode = ""
    return MetadataRow(
        processid=record_id,
        sampleid=sampleid,
        lineage=lineage,
        barcode=barcode,
        image=image,
        split=raw_split or default_split,
        line=line,
    )


def read_metadata(path: str | Path, **kwargs) -> list[MetadataRow]:
    """All records of a table in a list (for small tables; see :func:`iter_metadata`)."""
    return list(iter_metadata(path, **kwargs))
