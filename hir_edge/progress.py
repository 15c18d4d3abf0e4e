"""Progress bars on stderr that stay quiet in pipelines, and the one-line run summary."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def show_progress(quiet: bool = False) -> bool:
    """A bar is drawn only on an interactive stderr and when the user did not ask for quiet."""
    return not quiet and sys.stderr.isatty()


def progress(
    iterable: Iterable[T],
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    quiet: bool = False,
) -> Iterator[T]:
    """Wrap an iterable in a tqdm bar on stderr (or pass it through untouched)."""
    if not show_progress(quiet):
        yield from iterable
        return
    from tqdm import tqdm

    yield from tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, leave=False)


def progress_bar(total: int | None, desc: str = "", unit: str = "it", quiet: bool = False):
    """A manually updated bar (``bar.update(n)``, ``bar.set_postfix(...)``) or a no-op stand-in."""
    if not show_progress(quiet):
        return _NullBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False)


class _NullBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args, **kwargs) -> None:
        pass

    def set_postfix_str(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _NullBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Stopwatch:
    """Elapsed wall time, formatted for summary lines."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def __str__(self) -> str:
        s = self.seconds
        if s < 60:
            return f"{s:.1f}s"
        m, s = divmod(s, 60)
        if m < 60:
            return f"{int(m)}m{int(s):02d}s"
        h, m = divmod(m, 60)
        return f"{int(h)}h{int(m):02d}m"


def summary(message: str, quiet: bool = False) -> None:
    """The closing line of a long command: what was written, where, how long it took."""
    if not quiet:
        print(message, file=sys.stderr)
