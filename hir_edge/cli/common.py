"""Options and helpers shared by the field commands (identify, info, bench)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import click


def default_bundle() -> Path:
    """The demo bundle shipped inside the package (a generated world: demo taxa only)."""
    from importlib.resources import files

    return Path(str(files("hir_edge") / "bundles" / "demo"))


bundle_option = click.option(
    "--bundle",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Bundle folder or .tar (or a training model folder, run with torch) "
    "[default: the demo bundle shipped with the package].",
)


@contextlib.contextmanager
def open_output(path: str | None, force: bool) -> Iterator[tuple[IO[str], bool]]:
    """stdout (and whether it is a terminal) for no path or ``-``; else a file written
    atomically and never clobbered. Interrupted, the rows written so far are kept in
    ``PATH.partial`` (a FIFO or device is written into directly)."""
    if path is None or str(path) == "-":
        yield sys.stdout, sys.stdout.isatty()
        return
    from hir_edge.io import atomic_open, ensure_writable

    ensure_writable(path, force)
    partial = Path(f"{path}.partial")
    try:
        with atomic_open(path, "w", interrupted_to=partial) as handle:
            yield handle, False
    except KeyboardInterrupt:
        if partial.exists():
            click.echo(f"the rows finished before the interrupt are in {partial}", err=True)
        raise
