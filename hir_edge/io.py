"""Small file-safety helpers shared by every stage: atomic writes, no clobbering, checksums.

Nothing a user gave is overwritten or half-written: outputs go to a temporary file in the
target folder and are renamed into place, which is atomic on POSIX and Windows.
"""

from __future__ import annotations

import contextlib
import glob
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


def is_stream_target(path: str | Path) -> bool:
    """Is ``path`` a FIFO, a device or a socket (``/dev/null``, ``>(gzip > x)``)? Such a target
    is written into, never replaced, and holds nothing that writing could destroy."""
    import stat

    try:
        mode = Path(path).stat().st_mode  # follows a symlink to what it names
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def ensure_writable(path: str | Path, force: bool = False) -> Path:
    """Refuse to clobber an existing output unless ``force``; create the parent folder.

    A FIFO or device is fine without ``force`` (it is written into, not replaced); a symlink
    stands for the file it names."""
    path = Path(path)
    if is_stream_target(path):
        return path
    if path.exists() and not force:
        raise OutputExistsError(path)
    if path.is_dir():
        raise IsADirectoryError(21, "is a folder, not a file", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def ensure_writable_folder(path: str | Path, force: bool = False) -> Path:
    """Refuse to replace an existing output folder unless ``force``, and a file in its place
    always; create the parent folder. Checked before long work, so a run does not fail at its
    end (the folder itself is written by :func:`atomic_dir`)."""
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(20, "is a file, not a folder", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Delete the temporary siblings of ``path`` that a killed run left behind (their writer's
    process id is in the name and no longer runs); returns what was removed."""
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = tmp.name[len(path.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            with contextlib.suppress(OSError):
                if tmp.is_dir():
                    shutil.rmtree(tmp)
                else:
                    tmp.unlink()
                removed.append(tmp)
    return removed


def _temporary_prefix(path: Path) -> str:
    """``.<name>.<pid>.``: the writer's pid lets a later run tell a killed run's leftovers."""
    return f".{path.name}.{os.getpid()}."


@contextlib.contextmanager
def atomic_open(
    path: str | Path,
    mode: str = "w",
    encoding: str | None = "utf-8",
    interrupted_to: Path | None = None,
) -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; rename it over ``path`` on success.

    A symlink is kept: the file it names is replaced. A FIFO or device is written into. On an
    interrupt (Ctrl-C, or SIGTERM turned into one) what was written goes to ``interrupted_to``
    when given, else it is removed."""
    path = Path(path)
    if is_stream_target(path):
        with open(path, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
        return
    path = path.resolve() if path.is_symlink() else path
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    binary = "b" in mode
    fd, tmp = tempfile.mkstemp(prefix=_temporary_prefix(path), suffix=".tmp", dir=path.parent)
    Path(tmp).chmod(_FILE_MODE)
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except KeyboardInterrupt:
        # finished work is kept beside the output, never over it
        if interrupted_to is not None and Path(tmp).exists():
            Path(tmp).replace(interrupted_to)
        else:
            with contextlib.suppress(FileNotFoundError):
                Path(tmp).unlink()
        raise
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
    path = path.resolve() if path.is_symlink() else path
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=_temporary_prefix(path), suffix=".tmp", dir=path.parent)
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
    remove_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=_temporary_prefix(path), suffix=".tmp", dir=path.parent))
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


def cache_folder(setting: str | None = None) -> Path | None:
    """Where derived files (a library's k-mer index) are kept between runs: ``setting`` (a
    folder, or "off" for none), else $XDG_CACHE_HOME/hir-edge, else ~/.cache/hir-edge (an
    empty setting is no setting, as click reads an empty HIR_EDGE_CACHE)."""
    if setting is not None and setting.strip():
        return None if setting.strip().lower() == "off" else Path(setting).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hir-edge"


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
