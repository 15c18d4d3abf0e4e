"""Run folders and checkpoints: atomic, safe to load, enough state to resume exactly.

    RUN/config.yaml            the resolved recipe
    RUN/taxonomy.json          the training taxonomy (label ids)
    RUN/metrics.jsonl          one JSON object per logged step / validation
    RUN/checkpoints/step-N/    model_config.json, model.safetensors, taxonomy.json, train_state.pt
    RUN/checkpoints/latest.json  which step folder is the newest complete one
    RUN/best/                  the model folder with the best validation metric

Each checkpoint folder is written under a temporary name and renamed when complete, so an
interrupted write never leaves a half checkpoint. Weights are safetensors; the optimiser,
scheduler, sampler and RNG state is a tensors-and-numbers dict loaded with
``torch.load(weights_only=True)``: nothing is unpickled.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from hir_edge.io import atomic_dir, atomic_write_text
from hir_edge.models import save_model
from hir_edge.taxonomy import Taxonomy

STATE_FILE = "train_state.pt"
LATEST = "latest.json"


@dataclass
class TrainState:
    """Counters that say where training stands."""

    step: int = 0  # optimiser steps done
    epoch: int = 0  # current epoch (0-based)
    epoch_step: int = 0  # optimiser steps done within the current epoch
    best_metric: float = float("-inf")
    best_step: int = -1
    samples: int = 0  # specimens seen by the whole run, resumed parts included
    seconds: float = 0.0  # training time of the whole run
    first_epoch_loss: float = float("nan")
    last_epoch_loss: float = float("nan")
    epoch_loss_sum: float = 0.0  # the current epoch's losses so far (its mean survives a resume)
    epoch_loss_steps: int = 0


def save_model_folder(model, taxonomy: Taxonomy, folder: Path, extra: dict | None = None) -> None:
    """A self-contained model folder: what ``hir-edge eval`` and ``hir-edge export`` read."""
    save_model(model, folder)
    taxonomy.save(folder / "taxonomy.json")
    if extra is not None:
        atomic_write_text(folder / "metrics.json", json.dumps(extra, indent=1))


def save_checkpoint(
    run_dir: Path,
    model,
    taxonomy: Taxonomy,
    state: TrainState,
    optimizer: torch.optim.Optimizer,
    scheduler,
    sampler_state: dict,
    keep: int = 2,
) -> Path:
    """Write ``checkpoints/step-N`` atomically, point ``latest.json`` at it, prune old ones."""
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{state.step:08d}"
    with atomic_dir(final, force=True) as tmp:
        save_model_folder(model, taxonomy, tmp)
        payload = {
            "state": dict(state.__dict__),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "sampler": dict(sampler_state),
            "rng_cpu": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            payload["rng_cuda"] = torch.cuda.get_rng_state_all()
        torch.save(payload, tmp / STATE_FILE)
    atomic_write_text(root / LATEST, json.dumps({"path": final.name, "step": state.step}))
    steps = sorted(root.glob("step-*"))
    for old in steps[: max(0, len(steps) - keep)]:
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    pointer = run_dir / "checkpoints" / LATEST
    if not pointer.is_file():
        return None
    folder = run_dir / "checkpoints" / json.loads(pointer.read_text())["path"]
    return folder if (folder / STATE_FILE).is_file() else None


def load_train_state(folder: Path) -> dict:
    """The optimiser/scheduler/sampler/RNG payload of a checkpoint (weights_only load)."""
    return torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)


def restore_rng(payload: dict) -> None:
    torch.set_rng_state(payload["rng_cpu"])
    if "rng_cuda" in payload and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["rng_cuda"])
