"""The ``hir-edge`` command line. This module only parses: every command imports its heavy
dependencies inside its own function, so ``hir-edge identify`` never loads torch.
"""

from __future__ import annotations

import importlib
import signal
import sys

import click

from hir_edge import __version__
from hir_edge.errors import HirEdgeError
from hir_edge.io import OutputExistsError

# Exit status: 0 all done, 1 some inputs skipped, 2 bad usage/input/config, 3 bad bundle,
# 4 the system refused (permissions, disk), 130 interrupted, 143 terminated.
EXIT_SYSTEM = 4

# name -> "module:function"; loaded only when the command runs (or --help lists it).
_COMMANDS: dict[str, str] = {
    "identify": "hir_edge.cli.identify:identify",
    "info": "hir_edge.cli.info:info",
    "bench": "hir_edge.cli.bench:bench",
    "degrade": "hir_edge.cli.degrade:degrade",
    "data": "hir_edge.cli.data:data",
    "train": "hir_edge.cli.train:train",
    "eval": "hir_edge.cli.evaluate:evaluate",
    "export": "hir_edge.cli.export:export",
}


class _LazyGroup(click.Group):
    """A group whose subcommands are imported on use, and whose errors print as one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(_COMMANDS) | set(super().list_commands(ctx)))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            missing = err.name or "a dependency"
            raise click.ClickException(
                f"'hir-edge {cmd_name}' needs {missing}, which is not installed; "
                f"install the extra: pip install 'hir-edge[{_extra_for(cmd_name)}]'"
            ) from None
        return getattr(module, attr)

    def resolve_command(self, ctx, args):
        name = args[0] if args else None
        if name and name not in _COMMANDS and not name.startswith("-"):
            import difflib

            close = difflib.get_close_matches(name, list(_COMMANDS), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            ctx.fail(f"No such command '{name}'.{hint}")
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context):
        previous = _terminate_as_interrupt()
        try:
            return super().invoke(ctx)
        except (HirEdgeError, OutputExistsError) as err:
            click.echo(f"error: {err}", err=True)
            ctx.exit(getattr(err, "exit_code", 2))
        except Terminated:
            click.echo("terminated", err=True)
            ctx.exit(143)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except OSError as err:  # the system refused: a read-only folder, a full disk
            where = f"{err.filename}: " if err.filename else ""
            click.echo(f"error: {where}{err.strerror or err}", err=True)
            ctx.exit(EXIT_SYSTEM)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's stop, ``kill``): handled as Ctrl-C, so finished work is kept."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def _terminate_as_interrupt():
    """Turn SIGTERM into :class:`Terminated` for the command's duration (main thread only)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def _extra_for(command: str) -> str:
    if command in {"train", "eval", "data"}:
        return "train"
    if command == "export":
        return "export"
    return "dev"


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hir-edge")
def main() -> None:
    """Hierarchy-aware taxonomic identification of insects from a photo, a COI barcode, or both.

    \b
    In the field (offline, no GPU needed):
      hir-edge identify --fasta reads.fa --image bug.jpg
    On a GPU server:
      hir-edge train --config recipes/tiny-hir-fuse.yaml --output runs/demo
      hir-edge eval --checkpoint runs/demo/best --data data.h5 --split test
      hir-edge export --checkpoint runs/demo/best --int8 -o demo.bundle
    """


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
