"""User-facing errors: each prints as one line naming the file, the record and what is wrong."""

from __future__ import annotations

from pathlib import Path


class HirEdgeError(Exception):
    """An error the user can act on. The CLI prints it as ``error: <message>``, no traceback."""

    exit_code = 2


class InputError(HirEdgeError):
    """A bad input file or record.

    Args:
        path: the file (or None for in-memory input).
        message: what is wrong and, where it helps, what is allowed.
        record: the record id or number, when the problem is one record.
        line: the 1-based line where the record starts, when known.
    """

    def __init__(
        self,
        path: str | Path | None,
        message: str,
        record: str | None = None,
        line: int | None = None,
    ):
        self.path = None if path is None else str(path)
        self.record = record
        self.line = line
        self.message = message
        super().__init__(self.format())

    def format(self) -> str:
        where = []
        if self.path is not None:
            where.append(self.path)
        if self.record is not None:
            where.append(f"record {self.record!r}")
        if self.line is not None:
            where.append(f"line {self.line}")
        prefix = ": ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message


class BundleError(HirEdgeError):
    """A bundle that is missing, corrupted, tampered with or of an unsupported format."""

    exit_code = 3


class ConfigError(HirEdgeError):
    """A configuration file or override that does not fit the typed config."""
