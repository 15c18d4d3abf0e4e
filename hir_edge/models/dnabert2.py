"""DNABERT-2 as an export-clean encoder of our own that loads the published checkpoint.

Papers:
    Zhou et al., "DNABERT-2: Efficient Foundation Model and Benchmark for Multi-Species Genome",
    ICLR 2024, arXiv:2306.15006 (the paper's DNA encoder, ``zhihan1996/DNABERT-2-117M``).
    Portes et al., "MosaicBERT", NeurIPS 2023, arXiv:2312.17482 (the architecture DNABERT-2 uses).
    Press et al., "Train Short, Test Long" (ALiBi), ICLR 2022, arXiv:2108.12409.
    Shazeer, "GLU Variants Improve Transformer", 2020, arXiv:2002.05202 (GEGLU).

Code origin: written here from the published architecture (the hub's ``bert_layers.py``, a
MosaicBERT derivative, read for parameter names, layer order and the ALiBi slope rule); no code
was copied. Weights: the published checkpoint is loaded from a local folder and never shipped;
check the model card's licence before redistributing weights derived from it.

Why our own module: the hub code breaks on transformers 5, pre-builds a 512-token ALiBi table,
unpads with data-dependent shapes and may call Triton, so it exports only through the dynamo
exporter if at all. Here attention stays padded, the ALiBi bias is built in the graph from
``torch.arange(seq_len)`` (any length, no cap), and padding is a key mask. The maths is the
published model's: for every real (non-padding) token the output equals the hub model's, and
padding positions are zeroed as the hub model's re-padding does.

Layer (post-LN, as published)::

    qkv = Wqkv(x)                       # [q | k | v], each split into heads, head-major
    a   = softmax(q k^T / sqrt(d) - slope_h |i - j| ; padded keys excluded) v
    x   = LayerNorm(x + dropout(dense(a)))                           # attention.output
    g, u = split(gated_layers(x), [I, I])                            # no bias; g is gated
    x   = layernorm(x + wo(dropout(gelu_erf(g) * u)))                # mlp
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hir_edge.errors import InputError

#: Prefix of the encoder's tensors in the published checkpoint (``BertForMaskedLM.bert``).
PUBLISHED_PREFIX = "bert."
#: Published tensors that are not part of the encoder: the MLM head and a pooler (DNABERT-2's
#: checkpoint has no pooler; fine-tuned ``BertModel`` saves may). Dropped and reported on load.
DROPPED_PREFIXES = ("cls.", "pooler.")
#: Weight files looked for in a checkpoint folder, in order of preference.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")

_IGNORED_BY_REASON: dict[str, tuple[str, ...]] = {
    "hub loading metadata": ("architectures", "auto_map", "transformers_version"),
    "checked, not stored (must be 'bert' / 'gelu'; the hub's GEGLU is exact GELU whatever the "
    "MLM head's hidden_act)": ("model_type", "hidden_act"),
    "no position embeddings: ALiBi, built per input": ("position_embedding_type",),
    "hub buffer sizes, not length caps": ("alibi_starting_size", "max_position_embeddings"),
    "storage dtype; tensors are cast to float32 on load": ("torch_dtype", "dtype"),
    "training or decoding options": ("gradient_checkpointing", "use_cache"),
    "heads we do not build": (
        "classifier_dropout", "tie_word_embeddings", "num_labels", "id2label", "label2id",
        "problem_type", "finetuning_task",
    ),
    "tokenizer metadata": (
        "bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id", "mask_token_id",
    ),
}  # fmt: skip
#: config.json keys that do not change the encoder's forward, each with the reason.
IGNORED_HF_KEYS: dict[str, str] = {
    key: reason for reason, keys in _IGNORED_BY_REASON.items() for key in keys
}


@dataclass
class DNABert2Config:
    """Architecture of a DNABERT-2 encoder; the defaults are the published 117M model's.

    Attributes:
        vocab_size: BPE vocabulary size (4096 published).
        hidden_size: width H (768).
        num_hidden_layers: number of layers (12).
        num_attention_heads: heads per layer (12); ``hidden_size`` must divide by it.
        intermediate_size: GEGLU width I; ``gated_layers`` maps H to 2I (3072).
        hidden_dropout_prob: dropout after embeddings, attention output and GEGLU (0.1).
        attention_probs_dropout_prob: dropout on the attention probabilities (0.0).
        layer_norm_eps: LayerNorm epsilon (1e-12).
        type_vocab_size: token-type rows (2); only row 0 is ever used, as in the hub model.
        pad_token_id: embedding row kept at zero gradient during training (config value 0;
            note the DNABERT-2 tokenizer's [PAD] is a different id, as published).
        initializer_range: std of the normal init for a randomly initialised model (0.02).
        downsample: merge each run of this many token embeddings into one by a strided
            convolution before the layers (1: none, the published model). With overlapping
            k-mers (stride 1) an indel or a substitution changes only the k tokens that hold
            it, where non-overlapping k-mers shift the frame for the rest of the read; merging
            keeps the layers' sequence as short as the non-overlapping one. Masked tokens
            (padding, ``<UNK>``) enter the merge as zeros, and a merged token is masked when
            all its tokens are.
    """

    vocab_size: int = 4096
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.0
    layer_norm_eps: float = 1e-12
    type_vocab_size: int = 2
    pad_token_id: int = 0
    initializer_range: float = 0.02
    downsample: int = 1

    def __post_init__(self) -> None:
        sizes = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads")
        for name in (*sizes, "intermediate_size", "type_vocab_size", "downsample"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by "
                f"num_attention_heads {self.num_attention_heads}"
            )
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        if not self.layer_norm_eps > 0:
            raise ValueError(f"layer_norm_eps must be positive, got {self.layer_norm_eps!r}")
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(
                f"pad_token_id {self.pad_token_id} is outside the vocabulary [0, {self.vocab_size})"
            )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_hf_config(
        cls, data: dict[str, Any], source: str | Path | None = None
    ) -> DNABert2Config:
        """Read a published ``config.json`` (as a dict).

        Keys named in :data:`IGNORED_HF_KEYS` and transformers' private ``_…`` keys are ignored;
        any other key that is not a field of this class is an error, so an architecture option
        we do not implement is never dropped silently.

        Args:
            data: the parsed config.json.
            source: the file it came from, for error messages.

        Returns:
            The config, with defaults for fields the file does not set.
        """
        own = {f.name for f in fields(cls)}
        unknown = sorted(k for k in data if k not in own and k not in IGNORED_HF_KEYS)
        unknown = [k for k in unknown if not k.startswith("_")]
        if unknown:
            raise InputError(
                source,
                f"unknown DNABERT-2 config key(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(own))} (ignored: {', '.join(sorted(IGNORED_HF_KEYS))})",
            )
        if data.get("model_type", "bert") != "bert":
            raise InputError(source, f"model_type is {data['model_type']!r}; expected 'bert'")
        if data.get("hidden_act", "gelu") != "gelu":
            raise InputError(
                source,
                f"hidden_act is {data['hidden_act']!r}; DNABERT-2's GEGLU uses exact GELU "
                "('gelu') and no other activation is implemented",
            )
        try:
            return cls(**{k: v for k, v in data.items() if k in own})
        except (TypeError, ValueError) as err:
            raise InputError(source, str(err)) from None

    @classmethod
    def from_json_file(cls, path: str | Path) -> DNABert2Config:
        """Read ``config.json`` from disk (see :meth:`from_hf_config`)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(path, "no such file (a DNABERT-2 folder needs config.json)") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise InputError(path, f"not a readable JSON config: {err}") from None
        if not isinstance(data, dict):
            raise InputError(path, "config.json must hold a JSON object")
        return cls.from_hf_config(data, source=path)


def alibi_slopes(num_heads: int) -> list[float]:
    """ALiBi head slopes, with the published rule for head counts that are not powers of 2.

    For n = 2^a heads the slopes are 2^(-8/n), 2^(-16/n), ..., 2^(-8). Otherwise the slopes of
    the largest power of two p < n come first, followed by every other slope of 2p heads
    (the 1st, 3rd, ...) until n are listed.
    """
    if num_heads < 1:
        raise ValueError(f"num_heads must be positive, got {num_heads}")

    def power_of_two(n: int) -> list[float]:
        return [2.0 ** (-8.0 * (i + 1) / n) for i in range(n)]

    if num_heads & (num_heads - 1) == 0:
        return power_of_two(num_heads)
    p = 1 << (num_heads.bit_length() - 1)
    return power_of_two(p) + alibi_slopes(2 * p)[0::2][: num_heads - p]


def alibi_bias(slopes: torch.Tensor, seq_len: int | torch.SymInt) -> torch.Tensor:
    """Symmetric ALiBi bias ``-slope_h * |i - j|`` of shape [heads, T, T], built from arange.

    ``seq_len`` may be symbolic under export, so the graph has no length constant.
    """
    pos = torch.arange(seq_len, device=slopes.device)
    dist = (pos.unsqueeze(0) - pos.unsqueeze(1)).abs().to(slopes.dtype)
    return -slopes.view(-1, 1, 1) * dist.unsqueeze(0)


def attention_bias(slopes: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The additive attention bias [B, heads, T, T]: ALiBi plus the key-padding mask.

    Built once per input and shared by every layer, so each layer adds one tensor to its scores
    instead of scaling, adding ALiBi and masking them in turn (three passes over
    [B, heads, T, T], the field DNA encoder's largest tensors). A padded key gets the dtype's
    lowest value, so its softmax weight is exactly 0 (a row of padding only is uniform, as
    masking gave).
    """
    alibi = alibi_bias(slopes, keep.shape[1])
    pad = torch.zeros(keep.shape, dtype=slopes.dtype, device=slopes.device)
    pad = pad.masked_fill(~keep, torch.finfo(slopes.dtype).min)
    return alibi.unsqueeze(0) + pad[:, None, None, :]


def exporting() -> bool:
    """True while the model is traced for ONNX: the export keeps the graph that the field
    encoder was tuned and quantised on (explicit attention, a Conv1d merge), while training
    and PyTorch inference take the same maths in faster kernels."""
    return torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export()


def merge_tokens(merge: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """Each ``k`` consecutive token states merged into one ([B, T, H] -> [B, T/k, H]).

    The strided convolution (kernel = stride = k) is a linear map of each group of k tokens
    laid side by side, so outside export it runs as one matrix product on a reshaped view:
    no transposes of [B, H, T] and no convolution backward.
    """
    if exporting():
        return merge(x.transpose(1, 2)).transpose(1, 2)
    b, t, h = x.shape
    k = merge.kernel_size[0]
    weight = merge.weight.permute(0, 2, 1).reshape(merge.out_channels, k * h)
    return F.linear(x.reshape(b, t // k, k * h), weight, merge.bias)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of token states over non-padding positions ([B, T, H] -> [B, H]).

    This is DNABERT-2's sequence embedding as the paper uses it; an all-padding row gives zeros.
    """
    weights = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


class _Embeddings(nn.Module):
    """Token + token-type(0) embeddings, LayerNorm, dropout; no position embeddings (ALiBi)."""

    def __init__(self, config: DNABert2Config):
        super().__init__()
        self.word_embeddings = nn.Embedding(
            config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id
        )
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # The hub model always passes token type 0; adding row 0 avoids an index tensor.
        x = self.word_embeddings(input_ids) + self.token_type_embeddings.weight[0]
        return self.dropout(self.LayerNorm(x))


class _SelfAttention(nn.Module):
    """Padded multi-head attention with an additive ALiBi bias and a key-padding mask."""

    def __init__(self, config: DNABert2Config):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.Wqkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Attend.

        Args:
            x: hidden states [B, T, H].
            bias: [B, heads, T, T] from :func:`attention_bias` (ALiBi; padded keys excluded).

        Returns:
            Per-token context [B, T, H] (heads concatenated, before the output dense).
        """
        b, t, _ = x.shape
        qkv = self.Wqkv(x).reshape(b, t, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, heads, T, d]
        if exporting() or q.dtype != bias.dtype:
            # The graph the field encoder was quantised on: 1/sqrt(d) on q ([B, heads, T, d])
            # rather than on the scores ([B, heads, T, T]), then one bias add and a softmax.
            # Under autocast too (bf16 q, float32 bias): the fused kernel would round the
            # ALiBi bias to bf16 and a padded key's float32 minimum to -inf.
            scores = torch.matmul(q * (1.0 / math.sqrt(self.head_dim)), k.transpose(-1, -2))
            probs = self.dropout(torch.softmax(scores + bias, dim=-1))
            context = torch.matmul(probs, v)
        else:  # the same maths in PyTorch's fused kernel: less time and memory in training
            drop = self.dropout.p if self.training else 0.0
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=drop)
        return context.transpose(1, 2).reshape(b, t, self.num_heads * self.head_dim)


class _SelfOutput(nn.Module):
    """Output projection, dropout, residual and post-LN (published name ``attention.output``)."""

    def __init__(self, config: DNABert2Config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, context: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(context)) + residual)


class _Attention(nn.Module):
    def __init__(self, config: DNABert2Config):
        super().__init__()
        # Named ``self`` to match the published parameter names (attention.self.Wqkv).
        self.self = _SelfAttention(config)
        self.output = _SelfOutput(config)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(x, bias), x)


class _GegluMLP(nn.Module):
    """GEGLU feed-forward with residual and post-LN: first half of ``gated_layers`` is gated."""

    def __init__(self, config: DNABert2Config):
        super().__init__()
        self.intermediate_size = config.intermediate_size
        self.gated_layers = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        self.act = nn.GELU(approximate="none")
        self.wo = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.gated_layers(x)
        gated, linear = h[..., : self.intermediate_size], h[..., self.intermediate_size :]
        return self.layernorm(x + self.wo(self.dropout(self.act(gated) * linear)))


class _Layer(nn.Module):
    def __init__(self, config: DNABert2Config):
        super().__init__()
        self.attention = _Attention(config)
        self.mlp = _GegluMLP(config)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.attention(x, bias))


class _Encoder(nn.Module):
    """The layer stack; builds the attention bias once per input and shares it across layers."""

    def __init__(self, config: DNABert2Config):
        super().__init__()
        self.layer = nn.ModuleList(_Layer(config) for _ in range(config.num_hidden_layers))
        slopes = torch.tensor(alibi_slopes(config.num_attention_heads), dtype=torch.float32)
        # Not persistent: it is derived from the config, and the checkpoint has no such tensor.
        self.register_buffer("alibi_slopes", slopes, persistent=False)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        bias = attention_bias(self.alibi_slopes.to(x.dtype), keep)
        for layer in self.layer:
            x = layer(x, bias)
        return x


class DNABert2Model(nn.Module):
    """DNABERT-2 encoder: ``(input_ids, attention_mask) -> last_hidden_state`` [B, T, H].

    Parameter names are the published ones without the ``bert.`` prefix, so
    :func:`load_dnabert2` loads the hub checkpoint with ``strict=True``.

    Args:
        config: the architecture; :class:`DNABert2Config` defaults are the published 117M model.
    """

    def __init__(self, config: DNABert2Config):
        super().__init__()
        self.config = config
        self.embeddings = _Embeddings(config)
        self.merge = (
            nn.Conv1d(
                config.hidden_size,
                config.hidden_size,
                kernel_size=config.downsample,
                stride=config.downsample,
            )
            if config.downsample > 1
            else None
        )
        self.encoder = _Encoder(config)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """BERT's init (normal(0, initializer_range), zero biases, unit LayerNorm)."""
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Encode token ids.

        Args:
            input_ids: int64 [B, T] token ids.
            attention_mask: [B, T], 1 (or True) at real tokens and 0 at padding; all ones if
                omitted. Any padding layout works: masking is per key, not by trimming.

        Returns:
            last_hidden_state [B, T, H], zero at padding positions.
        """
        if input_ids.dim() != 2:
            raise ValueError(
                f"input_ids must be [batch, seq_len], got shape {tuple(input_ids.shape)}"
            )
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        keep = self.output_mask(attention_mask).to(torch.bool)  # checks the length first
        x = self.embeddings(input_ids)
        if self.merge is not None:
            x = merge_tokens(self.merge, x * attention_mask.unsqueeze(-1).to(x.dtype))
        hidden = self.encoder(x, keep)
        return hidden * keep.unsqueeze(-1).to(hidden.dtype)

    def output_mask(self, attention_mask: torch.Tensor) -> torch.Tensor:
        """The mask of the output positions: the input mask, merged when ``downsample`` > 1
        (a merged token is kept when any of its tokens is)."""
        k = self.config.downsample
        if k == 1:
            return attention_mask
        if attention_mask.shape[1] % k:
            raise ValueError(
                f"{attention_mask.shape[1]} tokens do not split into groups of {k} "
                "(downsample): make the tokenizer's max_length a multiple of it"
            )
        merged = attention_mask.reshape(attention_mask.shape[0], -1, k).amax(dim=2)
        return merged.to(attention_mask.dtype)
