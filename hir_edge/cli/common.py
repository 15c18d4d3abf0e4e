"""Options and helpers shared by the commands: --force, --quiet, --output, --bundle, the
output stream."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import click


def force_option(what: str = "Overwrite the output.") -> Callable:
    """``--force``: the one way to replace something that exists (never by default)."""
    return click.option("--force", is_flag=True, default=False, help=what)


def quiet_option(what: str = "No progress bar, no summary line.") -> Callable:
    """``--quiet/-q``: progress and summary off (problems are still reported on stderr)."""
    return click.option("--quiet", "-q", is_flag=True, default=False, help=what)


def output_option(
    what: str,
    required: bool = True,
    file_okay: bool = True,
    dir_okay: bool = True,
    as_path: bool = True,
) -> Callable:
    """``--output/-o``: where a command writes; what is there is replaced only with --force.
    ``as_path=False`` keeps the text, so ``-`` can mean standard output."""
    return click.option(
        "--output",
        "-o",
        required=required,
        default=None,
        type=click.Path(
            file_okay=file_okay, dir_okay=dir_okay, path_type=Path if as_path else None
        ),
        help=what,
    )


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
