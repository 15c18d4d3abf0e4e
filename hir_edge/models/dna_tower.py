"""The DNA tower: a barcode encoder, mean pooling, and a learnable projection to d.

Two backbones (METHOD.md §4):

* ``dnabert2`` — our export-clean DNABERT-2 module (``hir_edge.models.dnabert2``): the
  paper's encoder when loaded from the published ``zhihan1996/DNABERT-2-117M`` weights, and,
  randomly initialised at small sizes, the tiny and edge-student DNA encoders.
* ``bert`` — a transformers ``BertModel``: BarcodeBERT's architecture (CLIBD's choice),
  loadable from a local folder or the hub.

Pooling is the mean over non-padding tokens. CLIBD averaged a softmax over the MLM logits
instead; that quirk is not reproduced.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from hir_edge.dna.tokens import tokenizer_from_dict
from hir_edge.errors import ConfigError
from hir_edge.models.config import DnaTowerConfig
from hir_edge.models.dnabert2 import mean_pool

DNA_KINDS = ("dnabert2", "bert")


def resolve_pretrained(ref: str) -> Path:
    """A local folder as is; anything else is a Hugging Face hub id, downloaded (or cached)."""
    path = Path(ref).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise ConfigError(f"dna.pretrained: {ref} is a file; give the folder holding config.json")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(ref))
    except Exception as err:  # network or unknown repo: say what to do offline
        reason = (str(err).splitlines() or [type(err).__name__])[0]
        raise ConfigError(
            f"dna.pretrained: could not fetch {ref!r} from the Hugging Face hub ({reason}); "
            "offline, download it elsewhere and give the local folder instead"
        ) from None


class DnaEncoder(nn.Module):
    """Backbone + mean pooling + linear projection to the shared dimension.

    Args:
        backbone: module mapping (input_ids, attention_mask) to hidden states [B, T, H].
        hidden_size: H.
        embed_dim: d.
        kind: backbone kind (for the record).
    """

    def __init__(self, backbone: nn.Module, hidden_size: int, embed_dim: int, kind: str):
        super().__init__()
        self.kind = kind
        self.backbone = backbone
        self.proj = nn.Linear(hidden_size, embed_dim, bias=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.kind == "bert":
            hidden = self.backbone(
                input_ids=input_ids, attention_mask=attention_mask
            ).last_hidden_state
        else:
            hidden = self.backbone(input_ids, attention_mask)
            attention_mask = self.backbone.output_mask(attention_mask)
        return self.proj(mean_pool(hidden, attention_mask))


def build_dna_tower(cfg: DnaTowerConfig, embed_dim: int, load_pretrained: bool = True):
    """Build the DNA encoder and its tokenizer.

    Returns:
        (encoder, tokenizer, tokenizer_dict): the tokenizer dict is what a bundle stores.
    """
    if cfg.kind not in DNA_KINDS:
        raise ConfigError(
            f"dna.kind: unknown kind {cfg.kind!r}; choose one of {', '.join(DNA_KINDS)}"
        )
    tok_spec = dict(cfg.tokenizer)
    folder = resolve_pretrained(cfg.pretrained) if cfg.pretrained and load_pretrained else None
    if folder is not None and tok_spec.get("kind") == "bpe" and not tok_spec.get("path"):
        tok_spec["path"] = str(folder / "tokenizer.json")
    tokenizer = tokenizer_from_dict(tok_spec)

    if cfg.kind == "dnabert2":
        from hir_edge.models.dnabert2 import DNABert2Config, DNABert2Model
        from hir_edge.models.dnabert2_weights import load_dnabert2

        if folder is not None:
            backbone = load_dnabert2(folder)
        else:
            arch = {"vocab_size": tokenizer.vocab_size, **cfg.config}
            backbone = DNABert2Model(DNABert2Config(**arch))
        if tokenizer.max_length % backbone.config.downsample:
            raise ConfigError(
                f"dna.tokenizer.max_length {tokenizer.max_length} is not a multiple of "
                f"dna.config.downsample {backbone.config.downsample}"
            )
        hidden = backbone.config.hidden_size
    else:
        from transformers import BertConfig, BertModel

        if folder is not None:
            backbone = BertModel.from_pretrained(
                folder, add_pooling_layer=False, attn_implementation="eager"
            )
        else:
            arch = {"vocab_size": tokenizer.vocab_size, **cfg.config}
            backbone = BertModel(
                BertConfig(**arch, attn_implementation="eager"), add_pooling_layer=False
            )
        hidden = backbone.config.hidden_size
    encoder = DnaEncoder(backbone, hidden, embed_dim, cfg.kind)
    return encoder, tokenizer, tok_spec


def backbone_config_dict(encoder: DnaEncoder) -> dict:
    """The backbone's architecture as a plain dict (recorded so checkpoints rebuild offline)."""
    config = encoder.backbone.config
    if encoder.kind == "bert":
        data = config.to_dict()
        keep = (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "hidden_act",
            "hidden_dropout_prob",
            "attention_probs_dropout_prob",
            "max_position_embeddings",
            "type_vocab_size",
            "layer_norm_eps",
            "pad_token_id",
        )
        return {k: data[k] for k in keep if k in data}
    from dataclasses import asdict

    return json.loads(json.dumps(asdict(config)))
