"""Image and text towers through open_clip (BioCLIP, OpenCLIP, or a small random-init config).

open_clip does the loading: a model name with a pretrained tag or checkpoint file,
``hf-hub:imageomics/bioclip`` (network needed the first time), or ``local-dir:/path`` holding
``open_clip_config.json`` + weights — the same layout as the hub, which is how the loading
path is tested offline. After building, the resolved architecture and preprocessing are
recorded so a checkpoint rebuilds without the network.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from hir_edge.errors import ConfigError
from hir_edge.images import PreprocessConfig
from hir_edge.models.config import ClipTowerConfig

log = logging.getLogger(__name__)

_PREPROCESS_KEYS = ("image_size", "mean", "std", "interpolation", "resize_mode")


@dataclass
class ClipTowers:
    """What the model keeps from an open_clip model.

    Attributes:
        visual: the image tower (outputs ``embed_dim`` features before normalisation).
        text: the open_clip model with its visual tower removed (``encode_text``), or None.
        tokenizer: text tokenizer (list of strings → LongTensor), or None without text.
        embed_dim: output width of both towers.
        preprocess: eval preprocessing of the image tower (size, mean, std, …).
        model_cfg: the resolved open_clip architecture (recorded for offline rebuilds).
    """

    visual: nn.Module
    text: nn.Module | None
    tokenizer: Callable | None
    embed_dim: int
    preprocess: PreprocessConfig
    model_cfg: dict


def build_clip_towers(cfg: ClipTowerConfig, load_pretrained: bool = True) -> ClipTowers:
    """Build the towers described by ``cfg``.

    Args:
        cfg: tower configuration (``name`` or inline ``config``).
        load_pretrained: load the named weights; False when a checkpoint will overwrite them
            anyway (rebuilding a trained model needs no download).
    """
    import open_clip
    from open_clip.model import CLIP, CustomTextCLIP, _build_vision_tower

    if cfg.config is None and cfg.name is None:
        raise ConfigError("clip: give an open_clip model 'name' or an inline 'config'")
    if cfg.image_weights is not None and cfg.config is None:
        raise ConfigError(
            "clip.image_weights needs an inline clip.config whose vision_cfg names the timm model"
        )
    if cfg.config is not None and (not load_pretrained or cfg.name is None):
        model_cfg = copy.deepcopy(cfg.config)
        if cfg.image_weights is not None:
            _declare_image_weights(model_cfg, cfg.image_weights)
        if cfg.pretrained and load_pretrained:
            log.warning("clip.pretrained=%r is ignored for an inline config", cfg.pretrained)
        if not load_pretrained:  # a checkpoint follows: do not fetch tower weights
            model_cfg["vision_cfg"].pop("timm_model_pretrained", None)
            model_cfg.get("text_cfg", {}).update(
                {"hf_model_pretrained": False}
                if "hf_model_name" in model_cfg.get("text_cfg", {})
                else {}
            )
        if not cfg.text:
            visual = _build_vision_tower(model_cfg["embed_dim"], model_cfg["vision_cfg"])
            _load_image_weights(visual, cfg, load_pretrained)
            return ClipTowers(
                visual, None, None, model_cfg["embed_dim"], _preprocess_of(model_cfg), model_cfg
            )
        klass = CustomTextCLIP if "hf_model_name" in model_cfg.get("text_cfg", {}) else CLIP
        model = klass(**{k: v for k, v in model_cfg.items() if k != "preprocess_cfg"})
        _load_image_weights(model.visual, cfg, load_pretrained)
    else:
        pretrained = None
        if load_pretrained and not cfg.name.startswith(("hf-hub:", "local-dir:")):
            pretrained = cfg.pretrained
        model = open_clip.create_model(
            cfg.name, pretrained=pretrained, load_weights=load_pretrained, device="cpu"
        )
        model_cfg = open_clip.get_model_config(cfg.name)
        if model_cfg is None:
            raise ConfigError(f"clip: open_clip has no model named {cfg.name!r}")
        model_cfg = copy.deepcopy(model_cfg)
        model_cfg["preprocess_cfg"] = dict(open_clip.get_model_preprocess_cfg(model))

    visual = model.visual
    model.visual = nn.Identity()  # the image tower lives beside the text model, not inside it
    tokenizer = None
    if cfg.text:
        tokenizer = _tokenizer_for(cfg, model_cfg)
    else:
        model = None
    return ClipTowers(
        visual, model, tokenizer, model_cfg["embed_dim"], _preprocess_of(model_cfg), model_cfg
    )


def _declare_image_weights(model_cfg: dict, name: str) -> None:
    """Check that the inline tower is the network the weights belong to, and record the
    weights' own preprocessing (their normalisation, not CLIP's) unless the preset gives one."""
    from hir_edge.models.pretrained import get_image_weights

    spec = get_image_weights(name)
    vision = model_cfg.get("vision_cfg", {})
    if vision.get("timm_model_name") != spec.timm_model:
        raise ConfigError(
            f"clip.image_weights {name!r} are for timm's {spec.timm_model}; the tower's "
            f"vision_cfg.timm_model_name is {vision.get('timm_model_name')!r}"
        )
    if vision.get("timm_model_pretrained"):
        raise ConfigError(
            "clip.image_weights and vision_cfg.timm_model_pretrained both give weights; keep one"
        )
    pre = {**spec.preprocess_cfg(), **(model_cfg.get("preprocess_cfg") or {})}
    pre["size"] = vision.get("image_size", spec.image_size)
    model_cfg["preprocess_cfg"] = pre


def _load_image_weights(visual: nn.Module, cfg: ClipTowerConfig, load_pretrained: bool) -> None:
    """The declared weights into the tower's timm trunk (skipped when a checkpoint follows)."""
    if cfg.image_weights is None or not load_pretrained:
        return
    from hir_edge.models.pretrained import load_image_weights

    load_image_weights(visual.trunk, cfg.image_weights)


def _preprocess_of(model_cfg: dict) -> PreprocessConfig:
    """Eval preprocessing from a resolved open_clip config (OpenAI mean/std by default)."""
    size = model_cfg["vision_cfg"].get("image_size", 224)
    pre = dict(model_cfg.get("preprocess_cfg") or {})
    pre.setdefault("size", size)
    values = {
        "image_size": pre["size"] if isinstance(pre["size"], int) else pre["size"][0],
    }
    for key in ("mean", "std"):
        if key in pre:
            values[key] = tuple(float(v) for v in pre[key])
    for key in ("interpolation", "resize_mode"):
        if key in pre:
            values[key] = pre[key]
    return PreprocessConfig(**values)


def _tokenizer_for(cfg: ClipTowerConfig, model_cfg: dict) -> Callable:
    """open_clip's tokenizer for the text tower (the CLIP BPE ships inside open_clip)."""
    import open_clip
    from open_clip.tokenizer import SimpleTokenizer

    text_cfg = model_cfg.get("text_cfg", {})
    if text_cfg.get("hf_tokenizer_name"):
        return open_clip.get_tokenizer(
            cfg.name or "", context_length=text_cfg.get("context_length")
        )
    return SimpleTokenizer(context_length=text_cfg.get("context_length", 77))


def image_size_of(towers: ClipTowers) -> int:
    return towers.preprocess.image_size
