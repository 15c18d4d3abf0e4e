"""A run folder's bookkeeping: refusing to clobber one, and the summary of what a run did."""

from __future__ import annotations

import resource
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from hir_edge.errors import ConfigError
from hir_edge.io import OutputExistsError

RUN_MARKER = "config.yaml"


@dataclass
class TrainSummary:
    """What a run did, for the closing line and the tests."""

    run_dir: Path
    steps: int
    epochs_done: int
    samples: int
    seconds: float
    samples_per_second: float
    first_epoch_loss: float
    last_epoch_loss: float
    best_metric: float
    peak_rss_mb: float
    device: str = "cpu"
    world_size: int = 1
    peak_gpu_mb: float | None = None
    precision: str = "fp32"  # what train.precision meant here: "fp32" or "bf16 autocast"

    def to_dict(self) -> dict:
        out = dict(self.__dict__)
        out["run_dir"] = str(self.run_dir)
        return out

    def line(self) -> str:
        return (
            f"trained {self.steps} steps ({self.samples} samples, {self.epochs_done} epochs) in "
            f"{self.seconds:.1f}s at {self.samples_per_second:.1f} samples/s; loss "
            f"{self.first_epoch_loss:.3f} → {self.last_epoch_loss:.3f}; best val metric "
            f"{self.best_metric:.2f} → {self.run_dir / 'best'}; peak RSS {self.peak_rss_mb:.0f} MB"
            + (f", peak GPU {self.peak_gpu_mb:.0f} MB" if self.peak_gpu_mb is not None else "")
        )


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def prepare_run_dir(run_dir: Path, resume: bool, force: bool) -> None:
    """Refuse to clobber a run: continue it with ``resume``, replace it with ``force``."""
    if not run_dir.exists() or not any(run_dir.iterdir()):
        run_dir.mkdir(parents=True, exist_ok=True)
        return
    if resume:
        return
    if not force:
        raise OutputExistsError(run_dir)
    if not (run_dir / RUN_MARKER).is_file():
        raise ConfigError(
            f"{run_dir} is not a hir-edge run folder (no {RUN_MARKER}); refusing to empty it"
        )
    for name in (
        "checkpoints",
        "best",
        "metrics.jsonl",
        "summary.json",
        "taxonomy.json",
        RUN_MARKER,
        "tensorboard",
    ):
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def truncate_metrics(path: Path, step: int) -> None:
    """Drop the records logged after ``step`` (the checkpoint a run resumes from): those steps
    run again, and each step is in metrics.jsonl once."""
    import json

    from hir_edge.io import atomic_write_text

    if not path.is_file():
        return
    kept = [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and json.loads(line).get("step", 0) <= step
    ]
    atomic_write_text(path, "".join(f"{line}\n" for line in kept))
