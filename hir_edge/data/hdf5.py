"""Specimens in one HDF5 file, in CLIBD's layout, written as a stream and read lazily.

Layout (bioscan-ml/clibd ``DATA.md`` and ``scripts/data_processing/generate_hdf5_file_5m.py``):
one group per split, and in each group

- ``image``       uint8 [N, W]: encoded JPEG bytes, zero-padded to the longest image;
- ``image_mask``  int64 [N]: byte length of each image (0 = no image);
- ``barcode``, ``order``, ``family``, ``genus``, ``species``, ``processid``, ``sampleid``:
  one byte string per specimen; a missing rank is BIOSCAN's ``not_classified`` and an
  empty barcode means no DNA.

CLIBD writes its strings with ``np.array(values, dtype="S")`` (fixed-length bytes) and the mask
with ``dtype="int"`` (int64). We write variable-length UTF-8 strings instead, because a stream
cannot know the longest string in advance; h5py returns both kinds as ``bytes``, so CLIBD's own
reading code (``item.decode("utf-8")``) reads our files, and this reader reads theirs.

The writer stores each image row through whole-chunk writes of ``IMAGE_CHUNK`` bytes and never
writes the padding, so the file holds about the sum of the image sizes, not N times the largest
one, and the padded width can grow when a longer image arrives.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Mapping, Sized
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from hir_edge.errors import InputError
from hir_edge.io import atomic_path, ensure_writable
from hir_edge.progress import progress_bar
from hir_edge.taxonomy import RANKS, clean_name

NOT_CLASSIFIED = "not_classified"
STRING_COLUMNS: tuple[str, ...] = ("processid", "sampleid", "barcode", *RANKS)
REQUIRED_COLUMNS: tuple[str, ...] = ("image", "image_mask", "processid", "barcode", *RANKS)
IMAGE_CHUNK = 4096  # bytes per image chunk: one row is read as ceil(length / IMAGE_CHUNK) chunks
_BLOCK = 1024  # rows buffered before the string and mask columns are flushed
_STR = h5py.string_dtype("utf-8")


@dataclass
class Specimen:
    """One specimen: ids, lineage (order, family, genus, species; None = missing), DNA, photo."""

    processid: str
    lineage: tuple[str | None, ...]
    barcode: str
    image: bytes | None
    sampleid: str = ""


# ----------------------------------------------------------------------------- writing
class _SplitWriter:
    """Appends specimens to one split group, growing its datasets as rows arrive."""

    def __init__(self, group: h5py.Group):
        self.image = group.create_dataset(
            "image", shape=(0, 0), maxshape=(None, None), dtype=np.uint8, chunks=(1, IMAGE_CHUNK)
        )
        self.mask = group.create_dataset(
            "image_mask",
            shape=(0,),
            maxshape=(None,),
            dtype=np.int64,
            chunks=(_BLOCK,),
            compression="gzip",
        )
        self.strings = {
            name: group.create_dataset(
                name, shape=(0,), maxshape=(None,), dtype=_STR, chunks=(_BLOCK,)
            )
            for name in STRING_COLUMNS
        }
        self.count = 0
        self.width = 0
        self._rows = 0  # rows allocated in the image dataset
        self._pending: dict[str, list] = {name: [] for name in (*STRING_COLUMNS, "image_mask")}
        self._flushed = 0

    def add(self, specimen: Specimen) -> None:
        if len(specimen.lineage) != len(RANKS):
            raise ValueError(
                f"specimen {specimen.processid!r}: lineage needs {len(RANKS)} names "
                f"({', '.join(RANKS)}), got {len(specimen.lineage)}"
            )
        data = bytes(specimen.image) if specimen.image else b""
        if self.count >= self._rows or len(data) > self.width:
            # Rows grow in blocks; the width grows to the longest image so far (metadata only:
            # chunks that were never written take no space).
            self._rows = max(self._rows, self.count + 4 * _BLOCK)
            self.width = max(self.width, len(data))
            self.image.resize((self._rows, self.width))
        for start in range(0, len(data), IMAGE_CHUNK):
            piece = data[start : start + IMAGE_CHUNK]
            if len(piece) < IMAGE_CHUNK:
                piece += bytes(IMAGE_CHUNK - len(piece))
            self.image.id.write_direct_chunk((self.count, start), piece)
        pending = self._pending
        pending["image_mask"].append(len(data))
        pending["processid"].append(specimen.processid)
        pending["sampleid"].append(specimen.sampleid or "")
        pending["barcode"].append(specimen.barcode or "")
        for rank, name in zip(RANKS, specimen.lineage):
            pending[rank].append(clean_name(name) or NOT_CLASSIFIED)
        self.count += 1
        if len(pending["image_mask"]) >= _BLOCK:
            self.flush()

    def flush(self) -> None:
        n = len(self._pending["image_mask"])
        if n == 0:
            return
        start, stop = self._flushed, self._flushed + n
        self.mask.resize((stop,))
        self.mask[start:stop] = np.asarray(self._pending["image_mask"], dtype=np.int64)
        for name, ds in self.strings.items():
            ds.resize((stop,))
            ds[start:stop] = np.asarray(self._pending[name], dtype=object)
        self._flushed = stop
        self._pending = {name: [] for name in self._pending}

    def close(self) -> None:
        self.flush()
        self.image.resize((self.count, self.width))


def write_hdf5(
    path: str | Path,
    splits: Mapping[str, Iterable[Specimen]],
    *,
    force: bool = False,
    quiet: bool = False,
    attrs: Mapping | None = None,
) -> dict[str, int]:
    """Write specimens to a CLIBD-layout HDF5 file, one group per split, as a stream.

    The iterables may be generators of millions of specimens: nothing is held in memory but a
    block of rows. The file appears under ``path`` only when complete.

    Args:
        path: output file; refused if it exists, unless ``force``.
        splits: split name -> specimens (consumed in order, one split after the other).
        force: overwrite an existing file.
        quiet: no progress bar.
        attrs: root attributes, each stored as JSON text (read back by :func:`read_attrs`).

    Returns:
        Number of specimens written per split.
    """
    path = ensure_writable(path, force=force)
    for name in splits:
        if not name or "/" in name or name in {".", ".."}:
            raise ValueError(f"invalid split name {name!r}: it must be non-empty and hold no '/'")
    counts: dict[str, int] = {}
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        for key, value in (attrs or {}).items():
            handle.attrs[str(key)] = json.dumps(value, ensure_ascii=False)
        for name, specimens in splits.items():
            writer = _SplitWriter(handle.create_group(name))
            total = len(specimens) if isinstance(specimens, Sized) else None
            with progress_bar(total, desc=f"writing {name}", unit="specimen", quiet=quiet) as bar:
                for specimen in specimens:
                    writer.add(specimen)
                    bar.update(1)
            writer.close()
            counts[name] = writer.count
    return counts


# ----------------------------------------------------------------------------- reading
def _text(value: object) -> str:
    """A string cell as text, whether h5py gives bytes (fixed or variable length) or str."""
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _open(path: str | Path) -> h5py.File:
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file")
    if path.is_dir():
        raise InputError(path, "is a folder, not an HDF5 file")
    if not h5py.is_hdf5(path):
        raise InputError(path, "not an HDF5 file")
    return h5py.File(path, "r")


def list_splits(path: str | Path) -> list[str]:
    """Names of the split groups in a file (every top-level group that holds an ``image_mask``)."""
    with _open(path) as handle:
        return [
            name
            for name, item in handle.items()
            if isinstance(item, h5py.Group) and "image_mask" in item
        ]


def read_attrs(path: str | Path) -> dict:
    """Root attributes, JSON-decoded where they were written as JSON."""
    out: dict = {}
    with _open(path) as handle:
        for key, value in handle.attrs.items():
            if isinstance(value, bytes | np.bytes_):
                value = _text(value)
            if isinstance(value, str):
                with contextlib.suppress(json.JSONDecodeError):  # not ours: keep the text
                    value = json.loads(value)
            elif isinstance(value, np.generic | np.ndarray):
                value = value.tolist()
            out[key] = value
    return out


class SpecimenStore:
    """Lazy reader of one split of a CLIBD-layout file.

    The h5py handle is opened on first use and re-opened in every process (DataLoader workers
    fork or spawn; an HDF5 handle must not cross a fork), so a store pickles as its path.

    Args:
        path: the HDF5 file.
        split: the group to read (``train``, ``test_seen``, ``all_keys`` …).
    """

    def __init__(self, path: str | Path, split: str):
        self.path = Path(path)
        self.split = split
        self._handle: h5py.File | None = None
        self._pid: int | None = None
        self._datasets: dict[str, h5py.Dataset] = {}
        with _open(self.path) as handle:
            group = handle.get(split)
            if not isinstance(group, h5py.Group):
                names = [n for n, item in handle.items() if isinstance(item, h5py.Group)]
                have = ", ".join(names) if names else "none"
                raise InputError(self.path, f"no split {split!r}; the file has: {have}")
            for name in REQUIRED_COLUMNS:
                if name not in group:
                    raise InputError(
                        self.path,
                        f"split {split!r} has no dataset {name!r}; it has: "
                        f"{', '.join(sorted(group.keys()))}",
                    )
            self._len = int(group["image_mask"].shape[0])
            for name in REQUIRED_COLUMNS:
                if group[name].shape[0] != self._len:
                    raise InputError(
                        self.path,
                        f"split {split!r}: dataset {name!r} has {group[name].shape[0]} rows but "
                        f"'image_mask' has {self._len}",
                    )
            self._has_sampleid = "sampleid" in group

    # -- handle management
    @property
    def datasets(self) -> dict[str, h5py.Dataset]:
        """This process's open datasets by name (opened on first use, again after a fork)."""
        if self._handle is None or self._pid != os.getpid():
            self._handle = h5py.File(self.path, "r")
            self._pid = os.getpid()
            group = self._handle[self.split]
            # Looking a dataset up by name costs about as much as reading one cell: do it once.
            self._datasets = {
                name: group[name] for name in (*REQUIRED_COLUMNS, "sampleid") if name in group
            }
        return self._datasets

    def close(self) -> None:
        if self._handle is not None and self._pid == os.getpid():
            self._handle.close()
        self._handle = None
        self._datasets = {}

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.update(_handle=None, _pid=None, _datasets={})
        return state

    def __enter__(self) -> SpecimenStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SpecimenStore({str(self.path)!r}, {self.split!r}, n={self._len})"

    # -- rows
    def __len__(self) -> int:
        return self._len

    def _index(self, i: int) -> int:
        i = int(i)
        if i < 0:
            i += self._len
        if not 0 <= i < self._len:
            raise IndexError(f"index {i} is out of range for split {self.split!r} ({self._len})")
        return i

    def _cell(self, name: str, i: int) -> str:
        return _text(self.datasets[name][i : i + 1][0])  # a slice reads faster than ds[i]

    def __getitem__(self, i: int) -> Specimen:
        i = self._index(i)
        return Specimen(
            processid=self._cell("processid", i),
            lineage=tuple(clean_name(self._cell(rank, i)) for rank in RANKS),
            barcode=self._cell("barcode", i).strip(),
            image=self.image_bytes(i),
            sampleid=self._cell("sampleid", i) if self._has_sampleid else "",
        )

    def image_bytes(self, i: int) -> bytes | None:
        """The encoded image of row ``i`` (None when the specimen has no image)."""
        i = self._index(i)
        datasets = self.datasets
        length = int(datasets["image_mask"][i])
        if length <= 0:
            return None
        return datasets["image"][i, :length].tobytes()

    # -- whole columns
    def column(self, name: str) -> list[str]:
        """A string column decoded to text."""
        return [_text(v) for v in self.datasets[name][:]]

    def lineages(self) -> list[tuple[str | None, ...]]:
        """Every row's lineage (order, family, genus, species), ``not_classified`` as None."""
        columns = [[clean_name(v) for v in self.column(rank)] for rank in RANKS]
        return list(zip(*columns))

    def barcodes(self) -> list[str]:
        return [b.strip() for b in self.column("barcode")]

    def processids(self) -> list[str]:
        return self.column("processid")

    def image_lengths(self) -> np.ndarray:
        """Byte length of every row's image (0 = no image)."""
        return np.asarray(self.datasets["image_mask"][:], dtype=np.int64)


def describe(path: str | Path) -> dict:
    """Counts for ``hir-edge data inspect``: per split, specimens, images, barcodes, taxa per rank.

    Taxa are counted by their path from the order down (homonyms under two parents are two
    taxa). "incertae sedis" placeholders (``data pack --fill-gaps``) are counted apart, in
    ``placeholders`` and ``filled``: they hold a rank's place but name no taxon.
    """
    from hir_edge.taxonomy import is_placeholder, truncate_at_gap

    attrs = read_attrs(path)  # also checks that the file exists and is HDF5
    out: dict = {"file": str(path), "size_bytes": Path(path).stat().st_size, "attrs": attrs}
    splits: dict[str, dict] = {}
    for split in list_splits(path):
        with SpecimenStore(path, split) as store:
            n = len(store)
            lineages = store.lineages()
            taxa: list[set[tuple[str, ...]]] = [set() for _ in RANKS]
            holders: list[set[tuple[str, ...]]] = [set() for _ in RANKS]
            labelled = [0] * len(RANKS)
            filled = [0] * len(RANKS)
            for lineage in lineages:
                lin = truncate_at_gap(lineage)
                for level, name in enumerate(lin):
                    if name is None:
                        break
                    taxon = tuple(lin[: level + 1])
                    if is_placeholder(name):
                        holders[level].add(taxon)  # type: ignore[arg-type]
                        filled[level] += 1
                    else:
                        taxa[level].add(taxon)  # type: ignore[arg-type]
                        labelled[level] += 1
            splits[split] = {
                "specimens": n,
                "with_image": int((store.image_lengths() > 0).sum()),
                "with_barcode": sum(1 for b in store.barcodes() if b),
                "taxa": {rank: len(t) for rank, t in zip(RANKS, taxa)},
                "labelled": dict(zip(RANKS, labelled)),
                "placeholders": {rank: len(h) for rank, h in zip(RANKS, holders)},
                "filled": dict(zip(RANKS, filled)),
            }
    out["splits"] = splits
    return out
