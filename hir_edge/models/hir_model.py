"""The three-tower model of CLIBD-HiR(-Fuse): image, DNA and text into one space of dimension d.

Every ``encode_*`` returns L2-normalised embeddings. The contrastive scale ``s = exp(logit_scale)``
is ours (METHOD.md §1: initialised to log(1/0.07), clamped to log(100)); the one inside an
open_clip checkpoint is not used. Frozen towers stay in eval mode while the rest trains, so a
frozen BioCLIP text tower never sees dropout. A pretrained convolutional image tower keeps its
BatchNorm statistics: the taxonomy-aware sampler fills batches with same-species groups, whose
batch statistics would leak labels between specimens (the reason MoCo shuffles BN), and a CPU
batch is too small to estimate them anyway. Such a tower runs channels-last (the layout CPU
convolution kernels prefer).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hir_edge.errors import ConfigError
from hir_edge.images import PreprocessConfig
from hir_edge.models import text_lengths
from hir_edge.models.clip_tower import ClipTowers
from hir_edge.models.config import ModelConfig
from hir_edge.models.dna_tower import DnaEncoder
from hir_edge.models.fusion import GatedFusion


class HirModel(nn.Module):
    """Image, DNA and (optionally) text encoders with an optional GatedFusion head.

    Build it with :func:`hir_edge.models.create_model`, not directly.
    """

    def __init__(
        self,
        config: ModelConfig,
        towers: ClipTowers,
        dna: DnaEncoder,
        dna_tokenizer,
    ):
        super().__init__()
        self.config = config
        d = config.embed_dim
        self.visual = towers.visual
        self.image_proj = _projection(towers.embed_dim, d)
        self.text_model = towers.text
        self.text_proj = _projection(towers.embed_dim, d) if towers.text is not None else None
        self.dna = dna
        self.fusion = (
            GatedFusion(d, config.fusion.hidden_dim, config.fusion.dropout)
            if config.fusion.enabled
            else None
        )
        self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init)))
        self.text_tokenizer = towers.tokenizer
        self.dna_tokenizer = dna_tokenizer
        self.preprocess: PreprocessConfig = towers.preprocess
        if self.text_model is not None and hasattr(self.text_model, "logit_scale"):
            self.text_model.logit_scale.requires_grad_(False)
        self.pretrained_convnet = config.clip.image_weights is not None
        if self.pretrained_convnet:
            self.visual.to(memory_format=torch.channels_last)
        self._apply_freezing()

    # ------------------------------------------------------------------ freezing
    def frozen_modules(self) -> list[nn.Module]:
        """Towers the preset keeps fixed (their parameters get no gradient, no optimiser slot)."""
        frozen: list[nn.Module] = []
        if self.config.clip.freeze_image:
            frozen += [self.visual, self.image_proj]
        elif self.config.clip.freeze_image_stages:
            frozen += self._early_image_stages(self.config.clip.freeze_image_stages)
        if self.config.clip.freeze_text and self.text_model is not None:
            # text_proj is not frozen: when it exists it is new (the tower's width is not d).
            frozen.append(self.text_model)
        if self.config.dna.freeze:
            frozen.append(self.dna.backbone)
        return frozen

    def _early_image_stages(self, count: int) -> list[nn.Module]:
        """The stem and the first ``count`` stages of a timm convolutional image tower."""
        trunk = getattr(self.visual, "trunk", None)
        blocks = getattr(trunk, "blocks", None)
        if blocks is None or not isinstance(blocks, nn.Sequential):
            raise ConfigError(
                "clip.freeze_image_stages needs a convolutional timm image tower "
                "(vision_cfg.timm_model_name, e.g. tf_efficientnet_lite0)"
            )
        if not 0 <= count <= len(blocks):
            raise ConfigError(
                f"clip.freeze_image_stages: {count}; the tower has {len(blocks)} stages"
            )
        return [trunk.conv_stem, trunk.bn1, *blocks[:count]]

    def _apply_freezing(self) -> None:
        for module in self.frozen_modules():
            module.requires_grad_(False)
            module.eval()

    def train(self, mode: bool = True) -> HirModel:
        super().train(mode)
        for module in self.frozen_modules():
            module.eval()
        if self.pretrained_convnet:
            for module in self.visual.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def param_groups(self, weight_decay: float, image_lr_scale: float = 1.0) -> list[dict]:
        """AdamW groups: no decay on biases, norms, embeddings, gains and the logit scale.

        Each group carries ``lr_scale``: ``image_lr_scale`` for the image tower's backbone (a
        pretrained one wants smaller steps than the towers learning from scratch), 1 for the
        rest. Empty groups are left out.
        """
        groups: dict[tuple[bool, bool], list] = {}
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            plain = (
                param.ndim < 2
                or "embedding" in name
                or name.endswith(("cls_token", "logit_scale", "positional_embedding"))
            )
            backbone = name.startswith("visual.trunk.")
            groups.setdefault((plain, backbone), []).append(param)
        return [
            {
                "params": params,
                "weight_decay": 0.0 if plain else weight_decay,
                "lr_scale": image_lr_scale if backbone else 1.0,
            }
            for (plain, backbone), params in sorted(groups.items())
        ]

    # ------------------------------------------------------------------ encoders
    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    @property
    def has_text(self) -> bool:
        return self.text_model is not None

    def scale(self) -> torch.Tensor:
        """s = exp(clamp(logit_scale, max=log 100))."""
        return self.logit_scale.clamp(max=self.config.logit_scale_max).exp()

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        if self.pretrained_convnet:
            images = images.contiguous(memory_format=torch.channels_last)
        return F.normalize(self.image_proj(self.visual(images)), dim=-1)

    def encode_dna(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.dna(input_ids, attention_mask), dim=-1)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.text_model is None:
            raise RuntimeError(
                f"model preset {self.config.preset!r} has no text tower (students use the "
                "prompt bank of their teacher)"
            )
        return F.normalize(
            self.text_proj(text_lengths.encode_text(self.text_model, tokens)), dim=-1
        )

    def fuse(self, z_image: torch.Tensor, z_dna: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """GatedFusion, or the normalised mean when the model has no fusion head (I+DT Avg)."""
        if self.fusion is None:
            return F.normalize(z_image + z_dna, dim=-1), torch.full_like(z_image, 0.5)
        return self.fusion(z_image, z_dna)

    def forward(
        self,
        images: torch.Tensor | None = None,
        dna_ids: torch.Tensor | None = None,
        dna_mask: torch.Tensor | None = None,
        text_tokens: torch.Tensor | None = None,
        fuse: bool = False,
        prompt_tokens: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Every embedding a training step needs, in one call (DDP syncs through ``forward``).

        Returns a dict with ``image``, ``dna``, ``text`` (those given), ``fused`` and ``gate``
        (when ``fuse`` and both image and DNA are given), ``prompts`` (the embeddings of
        ``prompt_tokens``: every taxon's prompt) and ``scale`` (s).
        """
        out: dict[str, torch.Tensor] = {"scale": self.scale()}
        if images is not None:
            out["image"] = self.encode_image(images)
        if dna_ids is not None:
            out["dna"] = self.encode_dna(dna_ids, dna_mask)
        if text_tokens is not None:
            out["text"] = self.encode_text(text_tokens)
        if fuse and images is not None and dna_ids is not None:
            out["fused"], out["gate"] = self.fuse(out["image"], out["dna"])
        if prompt_tokens is not None:
            out["prompts"] = self.encode_text(prompt_tokens)
        return out

    # ------------------------------------------------------------------ tokenisation
    def tokenize_text(self, texts: Sequence[str]) -> torch.Tensor:
        if self.text_tokenizer is None:
            raise RuntimeError(f"model preset {self.config.preset!r} has no text tower")
        return self.text_tokenizer(list(texts))

    def tokenize_dna(self, sequences: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = self.dna_tokenizer.encode_batch(list(sequences))
        return torch.from_numpy(np.asarray(ids)), torch.from_numpy(np.asarray(mask))

    @torch.no_grad()
    def embed_prompts(self, prompts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """Text embeddings of taxon prompts [N, d] (eval mode, no gradient)."""
        was_training = self.training
        self.eval()
        device = self.logit_scale.device
        out = [
            self.encode_text(self.tokenize_text(prompts[i : i + batch_size]).to(device))
            for i in range(0, len(prompts), batch_size)
        ]
        self.train(was_training)
        return torch.cat(out) if out else torch.zeros(0, self.embed_dim, device=device)

    def num_parameters(self) -> dict[str, int]:
        """Parameter counts per tower (for model cards and the closing notes)."""
        counts = {
            "image": _count(self.visual) + _count(self.image_proj),
            "dna": _count(self.dna),
            "text": _count(self.text_model) + _count(self.text_proj)
            if self.text_model is not None
            else 0,
            "fusion": _count(self.fusion) if self.fusion is not None else 0,
        }
        counts["total"] = sum(counts.values()) + 1
        return counts


def _projection(width: int, dim: int) -> nn.Module:
    """Identity when a tower already outputs d, else a learnable linear map to d."""
    return nn.Identity() if width == dim else nn.Linear(width, dim, bias=False)


def _count(module: nn.Module | None) -> int:
    if module is None:
        return 0
    return sum(p.numel() for p in module.parameters() if p is not None)
