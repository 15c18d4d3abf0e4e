"""``hir-edge data pack``: a metadata table plus an image folder -> one CLIBD-layout HDF5 file.

Passes over the table keep memory flat at BIOSCAN-5M scale: the first counts the records per
split (and reports bad ones); then one pass per split streams its records into the writer, with
images read and, when larger than ``max_image_side``, shrunk and re-encoded on a few threads
(Pillow releases the GIL while it decodes and encodes). A missing or unreadable image is
reported and the specimen kept without its image (or skipped with ``require_images``).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from PIL import Image

from hir_edge import __version__
from hir_edge.data.hdf5 import Specimen, write_hdf5
from hir_edge.data.metadata import MetadataRow, iter_metadata
from hir_edge.errors import InputError
from hir_edge.images import load_image
from hir_edge.io import ensure_writable, human_size
from hir_edge.progress import Stopwatch

_JPEG_MAGIC = b"\xff\xd8\xff"
_CHUNK = 64  # records handed to the thread pool at a time


@dataclass(frozen=True)
class PackSettings:
    """What ``hir-edge data pack`` does; every field is a command-line option.

    Args:
        metadata: the table (CSV/TSV, BIOSCAN-1M/5M, BOLD, EU-Moths style).
        output: the HDF5 file to write.
        images: folder the table's image paths are relative to (default: the table's folder).
        split_column: column naming each record's split (None: ``split`` when present).
        default_split: split of records without one.
        fill_gaps: "incertae sedis" placeholders for missing ranks above a known one.
        max_image_side: images whose longer side exceeds this are shrunk to it and re-encoded
            as JPEG; smaller JPEGs are stored byte for byte. 0 keeps every size.
        jpeg_quality: quality of re-encoded images.
        require_images: skip a specimen whose image is missing or unreadable.
        val_fraction: move this share of each taxon's ``val_from`` records into a ``val``
            split (chosen by a hash of the record id, so the same records every time; each
            taxon keeps at least one record where it was). A table with only train and test
            splits then has held-out specimens to choose checkpoints and calibrate thresholds
            on, and its test split stays untouched.
        val_from: the split the validation records come from.
        workers: threads reading and re-encoding images.
        force: overwrite ``output``.
        quiet: no progress bar.
    """

    metadata: Path
    output: Path
    images: Path | None = None
    split_column: str | None = None
    default_split: str = "train"
    fill_gaps: bool = False
    max_image_side: int = 512
    jpeg_quality: int = 90
    require_images: bool = False
    val_fraction: float = 0.0
    val_from: str = "train"
    workers: int = 4
    force: bool = False
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.max_image_side < 0:
            raise ValueError(f"max_image_side must be >= 0 (0 = keep), got {self.max_image_side}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")


@dataclass
class PackReport:
    """What was written, and every problem met on the way."""

    output: Path
    counts: dict[str, int]
    with_image: int = 0
    with_barcode: int = 0
    problems: list[InputError] = field(default_factory=list)
    seconds: float = 0.0
    size_bytes: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        n_splits = len(self.counts)
        return (
            f"{self.total} specimens in {n_splits} split{'s' if n_splits != 1 else ''} "
            f"written to {self.output} ({human_size(self.size_bytes)}) in {self.seconds:.1f}s; "
            f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"
        )


class _Split:
    """One split's specimens as a sized stream, so the writer can show a bar with a total."""

    def __init__(self, packer: _Packer, split: str, n_rows: int):
        self.packer, self.split, self.n_rows = packer, split, n_rows

    def __len__(self) -> int:
        return self.n_rows

    def __iter__(self) -> Iterator[Specimen]:
        return self.packer.specimens(self.split)


class _Packer:
    def __init__(self, settings: PackSettings, report: PackReport, pool: ThreadPoolExecutor):
        self.settings = settings
        self.report = report
        self.pool = pool
        self.image_root = settings.images or settings.metadata.parent

        self.val_cutoffs: dict[tuple, int] | None = None

    def _table(self, problems: list[InputError] | None = None) -> Iterator[MetadataRow]:
        s = self.settings
        return iter_metadata(
            s.metadata,
            split_column=s.split_column,
            default_split=s.default_split,
            fill_gaps=s.fill_gaps,
            problems=[] if problems is None else problems,
        )

    def rows(self, problems: list[InputError] | None = None) -> Iterator[MetadataRow]:
        """The table's records, with the validation share moved to ``val``."""
        s = self.settings
        if s.val_fraction <= 0:
            yield from self._table(problems)
            return
        if self.val_cutoffs is None:
            self.val_cutoffs = _val_cutoffs(self._table(), s.val_from, s.val_fraction)
        for row in self._table(problems):
            cutoff = self.val_cutoffs.get(row.lineage)
            if row.split == s.val_from and cutoff is not None and _row_hash(row) <= cutoff:
                row = replace(row, split="val")
            yield row

    def specimens(self, split: str) -> Iterator[Specimen]:
        chunk: list[MetadataRow] = []
        for row in self.rows():
            if row.split != split:
                continue
            chunk.append(row)
            if len(chunk) >= _CHUNK:
                yield from self._finish(chunk)
                chunk = []
        yield from self._finish(chunk)

    def _finish(self, rows: list[MetadataRow]) -> Iterator[Specimen]:
        for row, (image, problem) in zip(rows, self.pool.map(self.load, rows)):
            if problem is not None:
                self.report.problems.append(problem)
                if self.settings.require_images:
                    continue
            elif image is None and self.settings.require_images:
                self.report.problems.append(
                    InputError(
                        self.settings.metadata,
                        "names no image",
                        record=row.processid,
                        line=row.line,
                    )
                )
                continue
            self.report.with_image += image is not None
            self.report.with_barcode += bool(row.barcode)
            yield Specimen(row.processid, row.lineage, row.barcode, image, row.sampleid)

    def image_path(self, row: MetadataRow) -> Path:
        """The row's image under the image folder; a flat folder (file name only) also works."""
        path = self.image_root / row.image  # type: ignore[operator]
        if not path.exists():
            flat = self.image_root / Path(row.image).name  # type: ignore[arg-type]
            if flat.exists():
                return flat
        return path

    def load(self, row: MetadataRow) -> tuple[bytes | None, InputError | None]:
        """Bytes to store for the row's image, or the problem that kept it out."""
        if row.image is None:
            return None, None
        path = self.image_path(row)
        where = f"line {row.line}"
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None, InputError(path, f"image not found ({where} of the table)", row.processid)
        except OSError as err:
            msg = f"image cannot be read: {err.strerror or err} ({where} of the table)"
            return None, InputError(path, msg, row.processid)
        try:
            return self.encode(raw), None
        except InputError as err:
            return None, InputError(path, f"{err.message} ({where} of the table)", row.processid)

    def encode(self, raw: bytes) -> bytes:
        """Keep a small JPEG as it is; shrink a large image, or convert another format, to JPEG."""
        max_side = self.settings.max_image_side
        try:
            with Image.open(io.BytesIO(raw)) as probe:
                original = max(probe.size)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            # unreadable: load_image below raises and says why, in its own words
            original = 0
        image = load_image(raw, min_size=max_side if max_side and original > max_side else None)
        too_large = bool(max_side) and original > max_side
        if not too_large and raw.startswith(_JPEG_MAGIC):
            return raw
        if too_large:
            image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=self.settings.jpeg_quality)
        return buffer.getvalue()


def _row_hash(row: MetadataRow) -> int:
    key = f"{row.processid}\t{row.image or ''}\t{row.line}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


def _val_cutoffs(rows: Iterator[MetadataRow], split: str, fraction: float) -> dict[tuple, int]:
    """Per taxon (full lineage), the largest record hash that goes to ``val``: the
    round(fraction × n) smallest hashes of its n records, leaving at least one behind."""
    hashes: dict[tuple, list[int]] = {}
    for row in rows:
        if row.split == split:
            hashes.setdefault(row.lineage, []).append(_row_hash(row))
    cutoffs = {}
    for lineage, values in hashes.items():
        take = min(round(fraction * len(values)), len(values) - 1)
        if take > 0:
            cutoffs[lineage] = sorted(values)[take - 1]
    return cutoffs


def pack(settings: PackSettings) -> PackReport:
    """Write ``settings.metadata`` (+ images) to ``settings.output``; see :class:`PackSettings`.

    Returns:
        The report: counts per split, images and barcodes stored, problems, size and time.

    Raises:
        InputError: the table is missing or lacks a needed column, or the image folder is absent.
        OutputExistsError: ``output`` exists and ``force`` is off.
    """
    clock = Stopwatch()
    ensure_writable(settings.output, force=settings.force)
    if settings.images is not None and not settings.images.is_dir():
        raise InputError(settings.images, "image folder not found")
    if settings.val_fraction > 0 and settings.val_from == "val":
        raise InputError(settings.metadata, "--val-from cannot be 'val' itself")
    report = PackReport(output=settings.output, counts={})
    with ThreadPoolExecutor(max_workers=settings.workers) as pool:
        packer = _Packer(settings, report, pool)
        per_split: dict[str, int] = {}
        for row in packer.rows(report.problems):
            per_split[row.split] = per_split.get(row.split, 0) + 1
        if not per_split:
            raise InputError(settings.metadata, "no usable records")
        attrs = {
            "created_by": f"hir-edge {__version__}",
            "source": settings.metadata.name,
            "fill_gaps": settings.fill_gaps,
            "max_image_side": settings.max_image_side,
            "val_fraction": settings.val_fraction,
            "val_from": settings.val_from if settings.val_fraction > 0 else None,
        }
        splits = {name: _Split(packer, name, n) for name, n in per_split.items()}
        report.counts = write_hdf5(
            settings.output, splits, force=settings.force, quiet=settings.quiet, attrs=attrs
        )
    report.seconds = clock.seconds
    report.size_bytes = settings.output.stat().st_size
    return report
