"""One entry point for every model: ``create_model(preset, **overrides)``.

Presets are JSON files in ``model_configs/`` (open_clip's "architectures are data"). A trained
model is saved as a folder with ``model_config.json`` (the resolved preset plus overrides, so
it rebuilds itself offline) and ``model.safetensors``.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hir_edge.errors import ConfigError
from hir_edge.io import atomic_path, atomic_write_text
from hir_edge.models.config import ModelConfig

CONFIG_DIR = Path(__file__).parent / "model_configs"
CONFIG_FILE = "model_config.json"
WEIGHTS_FILE = "model.safetensors"


def _scan_presets() -> dict[str, Path]:
    return {p.stem: p for p in sorted(CONFIG_DIR.glob("*.json"))}


_PRESETS = _scan_presets()


def list_presets(pattern: str = "*", role: str | None = None) -> list[str]:
    """Preset names matching a shell-style ``pattern`` (and ``role``: teacher or student)."""
    names = [n for n in _PRESETS if fnmatch.fnmatch(n, pattern)]
    if role is not None:
        names = [n for n in names if get_preset_config(n).role == role]
    return names


def get_preset_config(preset: str | Path) -> ModelConfig:
    """The :class:`ModelConfig` of a preset name or of a JSON file path."""
    path = Path(preset)
    if path.suffix == ".json" and path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        data.setdefault("preset", path.stem)
        return ModelConfig.from_dict(data, where=str(path))
    name = str(preset)
    if name not in _PRESETS:
        close = difflib.get_close_matches(name, list(_PRESETS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown model preset {name!r}; available: {', '.join(_PRESETS)}.{hint}")
    data = json.loads(_PRESETS[name].read_text(encoding="utf-8"))
    data["preset"] = name
    return ModelConfig.from_dict(data, where=f"preset {name}")


def _merge_overrides(overrides: Mapping[str, Any] | None, kwargs: Mapping[str, Any]) -> dict:
    merged = dict(overrides or {})
    merged.update({k.replace("__", "."): v for k, v in kwargs.items()})
    return merged


def create_model(
    preset: str | Path | ModelConfig,
    *,
    load_pretrained: bool = True,
    overrides: Mapping[str, Any] | None = None,
    **kwargs: Any,
):
    """Build a :class:`~hir_edge.models.HirModel` on the CPU.

    Args:
        preset: a registry name (``list_presets()``), a JSON config file, or a ModelConfig.
        load_pretrained: fetch/load the preset's pretrained tower weights. Pass False when a
            checkpoint is loaded right after (no download, no wasted load).
        overrides: dotted keys, e.g.
            ``{"fusion.enabled": False, "dna.config.num_hidden_layers": 1}``.
        **kwargs: the same with ``__`` for dots (``fusion__enabled=False``).

    Returns:
        The model, in train mode, with frozen towers fixed as the preset says. Its
        ``config`` holds the resolved architecture, so :func:`save_model` output rebuilds
        without the network.
    """
    from hir_edge.models.clip_tower import build_clip_towers
    from hir_edge.models.dna_tower import backbone_config_dict, build_dna_tower
    from hir_edge.models.hir_model import HirModel

    config = preset if isinstance(preset, ModelConfig) else get_preset_config(preset)
    extra = _merge_overrides(overrides, kwargs)
    if extra:
        config = config.with_overrides(extra)
    towers = build_clip_towers(config.clip, load_pretrained=load_pretrained)
    # Record what was resolved, so a saved model rebuilds offline with no hub access.
    resolved = ModelConfig.from_dict(config.to_dict())
    if resolved.embed_dim is None:  # the shared space takes the image-text model's width
        resolved.embed_dim = towers.embed_dim
    dna, dna_tokenizer, tok_spec = build_dna_tower(config.dna, resolved.embed_dim, load_pretrained)
    resolved.clip.config = towers.model_cfg
    resolved.dna.config = backbone_config_dict(dna)
    resolved.dna.tokenizer = tok_spec
    return HirModel(resolved, towers, dna, dna_tokenizer)


def save_model(model, folder: str | Path) -> Path:
    """Write ``model_config.json`` and ``model.safetensors`` into ``folder`` (atomically each)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata={"format": "hir-edge-model/1"})
    atomic_write_text(folder / CONFIG_FILE, json.dumps(model.config.to_dict(), indent=1))
    return folder


def load_model(folder: str | Path):
    """Rebuild a model saved by :func:`save_model` (safetensors only: nothing is unpickled)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise ConfigError(f"{folder}: not a saved model ({path.name} is missing)")
    data = json.loads(config_path.read_text(encoding="utf-8"))
    config = ModelConfig.from_dict(data, where=str(config_path))
    model = create_model(config, load_pretrained=False)
    state = load_file(str(weights_path))
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        detail = " ".join(str(err).split("\n")[1:3]).strip()
        raise ConfigError(f"{weights_path}: weights do not fit the config ({detail})") from None
    if result.missing_keys or result.unexpected_keys:
        raise ConfigError(
            f"{weights_path}: weights do not fit the config (missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]})"
        )
    return model
