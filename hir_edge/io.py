"""Small file-safety helpers shared by every stage: atomic writes, no clobbering, checksums.

Nothing a user gave is overwritten or half-written: outputs go to a temporary file in the
target folder and are renamed into place, which is atomic on POSIX and Windows.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp/mkdtemp create private (0600/0700) entries; outputs get the usual umask-based mode.
_FILE_MODE = 0o666 & ~_read_umask()
_DIR_MODE = 0o777 & ~_read_umask()


class OutputExistsError(FileExistsError):
    """Raised when an output exists and the user did not pass ``--force``."""

    def __init__(self, path: str | Path):
        super().__init__(f"{path} already exists; pass --force to overwrite it")
        self.path = Path(path)


def ensure_writable(path: str | Path, force: bool = False) -> Path:
    """Refuse to clobber an existing output unless ``force``; create the parent folder."""
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; rename it over ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    binary = "b" in mode
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    Path(tmp).chmod(_FILE_MODE)
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp).unlink()
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path for a writer that needs a file name (h5py, onnx, safetensors)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    Path(tmp).chmod(_FILE_MODE)
    try:
        yield Path(tmp)
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp).unlink()
        raise


@contextlib.contextmanager
def atomic_dir(path: str | Path, force: bool = False) -> Iterator[Path]:
    """Build a folder under a temporary name and move it into place when complete.

    With ``force`` an existing folder is replaced only after the new one is complete, so an
    interrupted run never leaves a half-written output (nor destroys the old one).
    """
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp.chmod(_DIR_MODE)
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            if old.exists():
                shutil.rmtree(old)
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old)
        else:
            tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def safe_extract_tar(archive: str | Path, target: str | Path) -> Path:
    """Extract a tar archive, refusing members that would land outside ``target``.

    Links, devices and absolute or ``..`` paths are rejected with the offending member named.
    """
    target = Path(target).resolve()
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for member in members:
            dest = (target / member.name).resolve()
            if not dest.is_relative_to(target):
                raise ValueError(
                    f"{archive}: member {member.name!r} would extract outside {target}"
                )
            if not (member.isfile() or member.isdir()):
                raise ValueError(
                    f"{archive}: member {member.name!r} is a link or special file; refusing it"
                )
        try:
            tar.extractall(target, members=members, filter="data")
        except TypeError:  # Python < 3.10.12 has no extraction filters; members were checked
            tar.extractall(target, members=members)
    return target


def human_size(n_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1024 or unit == "GB":
            return f"{n_bytes:.1f} {unit}" if unit != "B" else f"{int(n_bytes)} B"
        n_bytes /= 1024
    return f"{n_bytes:.1f} GB"  # pragma: no cover
