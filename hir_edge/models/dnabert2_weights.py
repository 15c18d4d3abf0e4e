"""The published DNABERT-2 checkpoint into :class:`~hir_edge.models.dnabert2.DNABert2Model`:
name mapping, safe reading (safetensors, or ``weights_only=True``), and a load that names every
tensor that does not fit."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from hir_edge.errors import InputError
from hir_edge.models.dnabert2 import (
    DROPPED_PREFIXES,
    PUBLISHED_PREFIX,
    WEIGHT_FILES,
    DNABert2Config,
    DNABert2Model,
)

log = logging.getLogger(__name__)


def state_dict_to_published(model: DNABert2Model) -> dict[str, torch.Tensor]:
    """Our state dict under the published names (``bert.`` + our name), encoder only."""
    return {PUBLISHED_PREFIX + name: t for name, t in model.state_dict().items()}


def published_to_ours(
    state_dict: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map published tensor names to ours: strip ``bert.``, drop the MLM head and pooler.

    Returns:
        (encoder state dict under our names, sorted published names that were dropped).
    """
    ours: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    for name, tensor in state_dict.items():
        short = name[len(PUBLISHED_PREFIX) :] if name.startswith(PUBLISHED_PREFIX) else name
        if short.startswith(DROPPED_PREFIXES):
            dropped.append(name)
        else:
            ours[short] = tensor
    return ours, sorted(dropped)


def _weights_and_config(path: Path) -> tuple[Path, Path]:
    """Locate (weights file, config.json) from a checkpoint folder or a weights file."""
    if path.is_dir():
        for name in WEIGHT_FILES:
            if (path / name).is_file():
                return path / name, path / "config.json"
        if (path / "model.safetensors.index.json").exists():
            raise InputError(path, "sharded checkpoints are not supported; DNABERT-2 is one file")
        raise InputError(path, f"no weights found; expected one of {', '.join(WEIGHT_FILES)}")
    if path.is_file():
        if path.suffix not in (".safetensors", ".bin"):
            raise InputError(path, "weights must be a .safetensors or .bin file")
        return path, path.parent / "config.json"
    raise InputError(path, "no such file or folder")


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a weights file: safetensors, or a torch pickle with ``weights_only=True``."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt, truncated or not a checkpoint at all
        raise InputError(path, f"cannot read weights: {type(err).__name__}: {err}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(path, "weights file does not hold a flat name -> tensor state dict")
    return state


def _names(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def load_dnabert2(path_or_dir: str | Path) -> DNABert2Model:
    """Build a DNABert2Model from a local DNABERT-2 checkpoint (e.g. ``DNABERT-2-117M/``).

    The folder holds ``config.json`` and ``model.safetensors`` or ``pytorch_model.bin``; a
    weights file may also be given, with config.json beside it. The MLM head (``cls.*``) and
    any pooler are dropped and logged; every other tensor must match by name and shape.

    Args:
        path_or_dir: checkpoint folder or weights file.

    Returns:
        The model in eval mode, float32, on CPU.

    Raises:
        InputError: missing files, unreadable weights, an unknown config key, or tensors that
            do not fit (the message lists missing, unexpected and mis-shaped names).
    """
    weights_path, config_path = _weights_and_config(Path(path_or_dir))
    config = DNABert2Config.from_json_file(config_path)
    ours, dropped = published_to_ours(read_checkpoint(weights_path))
    model = DNABert2Model(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(ours))
    unexpected = sorted(set(ours) - set(expected))
    misshaped = sorted(
        f"{n} {tuple(ours[n].shape)} vs {tuple(expected[n].shape)}"
        for n in set(ours) & set(expected)
        if ours[n].shape != expected[n].shape
    )
    if missing or unexpected or misshaped:
        problems = []
        if missing:
            problems.append(f"missing {len(missing)}: {_names(missing)}")
        if unexpected:
            problems.append(f"unexpected {len(unexpected)}: {_names(unexpected)}")
        if misshaped:
            problems.append(f"shape mismatch (checkpoint vs config) {_names(misshaped)}")
        raise InputError(
            weights_path,
            "does not fit the DNABERT-2 config in config.json (names are ours, i.e. without "
            f"'{PUBLISHED_PREFIX}'): " + "; ".join(problems),
        )
    model.load_state_dict({n: t.to(torch.float32) for n, t in ours.items()}, strict=True)
    if dropped:
        log.info(
            "%s: dropped %d tensor(s) that are not part of the encoder: %s",
            weights_path,
            len(dropped),
            _names(dropped),
        )
    return model.eval()
