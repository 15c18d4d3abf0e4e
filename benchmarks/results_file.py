"""Writing a benchmark's results pair: ``NAME.md`` (the printed table) and ``NAME.json``."""

from __future__ import annotations

import json
from pathlib import Path

from hir_edge.io import atomic_write_text


def write_results(out: Path, text: str, data) -> None:
    """``out``.md and ``out``.json, each written atomically (an interrupted run leaves the
    previous results whole), then the table printed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(f"{out}.md"), text)
    atomic_write_text(Path(f"{out}.json"), json.dumps(data, indent=1, default=str))
    print(text)
