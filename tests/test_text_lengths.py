"""Text embeddings computed in length groups equal open_clip's on the full padded context."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from hir_edge.models import create_model  # noqa: E402
from hir_edge.models.text_lengths import ROWS_PER_GROUP, encode_text, trimmable  # noqa: E402

WORDS = ["Insecta", "Diptera", "Chironomidae", "Chironomus", "Lepidoptera", "Noctuidae"]


def prompts(n: int) -> list[str]:
    """n prompts of 1 to 6 words, in no particular length order."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        k = int(torch.randint(1, 7, (1,), generator=g))
        out.append(" ".join(WORDS[int(i)] for i in torch.randint(len(WORDS), (k,), generator=g)))
    return out


@pytest.fixture(scope="module")
def text_model():
    torch.manual_seed(0)
    return create_model("tiny").text_model


def test_grouped_embeddings_and_gradients_equal_open_clips(text_model):
    model = create_model("tiny")
    tokens = model.tokenize_text(prompts(2 * ROWS_PER_GROUP + 7))  # three groups
    ends = tokens.argmax(-1)
    assert ends.max() < tokens.shape[1] - 1 and ends.min() < ends.max()  # padding to trim
    assert trimmable(text_model)

    def run(encode):
        text_model.zero_grad()
        out = encode(tokens)
        (out.square().sum() + out[:, 0].sum()).backward()
        grads = {n: p.grad.clone() for n, p in text_model.named_parameters() if p.grad is not None}
        return out.detach(), grads

    grouped, grouped_grads = run(lambda t: encode_text(text_model, t))
    full, full_grads = run(text_model.encode_text)
    assert grouped.shape == full.shape
    assert (grouped - full).abs().max().item() < 1e-5  # row order kept
    assert grouped_grads.keys() == full_grads.keys() and "token_embedding.weight" in full_grads
    for name, grad in full_grads.items():
        # summed over 135 rows: float32 rounding relative to the gradient's size
        assert (grouped_grads[name] - grad).abs().max() <= 1e-5 * grad.abs().max(), name


def test_a_tower_not_pooled_at_the_end_of_text_runs_untrimmed(text_model, monkeypatch):
    """Pooling at the last position reads the padding: trimming would change the answer."""
    monkeypatch.setattr(text_model, "text_pool_type", "last")
    assert not trimmable(text_model)
    tokens = create_model("tiny").tokenize_text(prompts(5))
    with torch.no_grad():
        assert torch.equal(encode_text(text_model, tokens), text_model.encode_text(tokens))


def test_a_linear_projection_is_applied_after_the_groups():
    """open_clip's text_projection is a matrix or, with proj_bias, an nn.Linear."""
    torch.manual_seed(1)
    model = create_model("tiny")
    text_model = model.text_model
    del text_model.text_projection  # a registered parameter: removed before the module goes in
    text_model.text_projection = torch.nn.Linear(128, 64)
    tokens = model.tokenize_text(prompts(ROWS_PER_GROUP + 3))
    with torch.no_grad():
        grouped, full = encode_text(text_model, tokens), text_model.encode_text(tokens)
    assert grouped.shape == (ROWS_PER_GROUP + 3, 64)
    assert (grouped - full).abs().max().item() < 1e-5
