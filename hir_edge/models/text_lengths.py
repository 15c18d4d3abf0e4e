"""Text embeddings without the padding: open_clip's ``CLIP.encode_text`` on trimmed tokens.

A CLIP text tower attends causally and pools at the end-of-text token (the highest id, hence
``argmax``), so a prompt's embedding depends only on the tokens up to its end-of-text. The
context is 32 or 77 tokens, and a taxon prompt ("Diptera Chironomidae") fills a fraction of
it. Rows are grouped by length and each group runs trimmed to its longest row: the same
embeddings, for the cost of the tokens that are there. The training step embeds every taxon's
prompt (L_P), so this is most of the text tower's time.
"""

from __future__ import annotations

import torch
from torch import nn

ROWS_PER_GROUP = 64  # a batch of up to this many rows runs as one group, trimmed to its longest


def trimmable(model: nn.Module) -> bool:
    """Whether ``model`` is open_clip's built-in causal text transformer pooled at ``argmax``
    (CLIP, BioCLIP, the tiny preset); a Hugging Face text tower is left to itself."""
    from open_clip.model import CLIP

    return (
        isinstance(model, CLIP)
        and getattr(model, "text_pool_type", None) == "argmax"
        and getattr(model, "attn_mask", None) is not None
    )


def encode_text(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """``model.encode_text(tokens)`` (unnormalised), computed in length groups.

    Args:
        model: an open_clip text model.
        tokens: [N, context] token ids as open_clip's tokenizer writes them.

    Returns:
        [N, embed_dim], row i the embedding of ``tokens[i]``.
    """
    if not trimmable(model) or tokens.shape[0] == 0:
        return model.encode_text(tokens)
    ends = tokens.argmax(dim=-1)  # the end-of-text token, where the pooling reads
    order = torch.argsort(ends, stable=True)
    # One lookup for every row: each lookup's backward fills a gradient as large as the
    # vocabulary's table, so the groups share one.
    embedded = model.token_embedding(tokens).to(model.transformer.get_cast_dtype())
    parts = []
    for rows in torch.split(order, ROWS_PER_GROUP):
        length = int(ends[rows].max()) + 1
        parts.append(_encode_trimmed(model, embedded[rows, :length], tokens[rows, :length]))
    return torch.cat(parts)[torch.argsort(order)]


def _encode_trimmed(model: nn.Module, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """open_clip 3's ``CLIP.encode_text`` after the token lookup, on the first ``length``
    tokens: positions and the causal mask sliced to match."""
    from open_clip.transformer import text_global_pool

    length = tokens.shape[1]
    x = x + model.positional_embedding[:length].to(x.dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = text_global_pool(x, tokens, "argmax")
    if model.text_projection is None:
        return x
    if isinstance(model.text_projection, nn.Linear):
        return model.text_projection(x)
    return x @ model.text_projection
