"""DNABERT-2 reimplementation: published names load strictly, ALiBi attention, padding, ONNX."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from hir_edge.errors import InputError  # noqa: E402
from hir_edge.models.dnabert2 import (  # noqa: E402
    DNABert2Config,
    DNABert2Model,
    alibi_bias,
    alibi_slopes,
    attention_bias,
    mean_pool,
    merge_tokens,
)
from hir_edge.models.dnabert2_weights import (  # noqa: E402
    load_dnabert2,
    published_to_ours,
    state_dict_to_published,
)

# config.json of zhihan1996/DNABERT-2-117M as published (key for key).
PUBLISHED_CONFIG = {
    "_name_or_path": "zhihan1996/DNABERT-2-117M",
    "alibi_starting_size": 512,
    "architectures": ["BertForMaskedLM"],
    "attention_probs_dropout_prob": 0.0,
    "auto_map": {
        "AutoConfig": "configuration_bert.BertConfig",
        "AutoModel": "bert_layers.BertModel",
        "AutoModelForMaskedLM": "bert_layers.BertForMaskedLM",
        "AutoModelForSequenceClassification": "bert_layers.BertForSequenceClassification",
    },
    "classifier_dropout": None,
    "gradient_checkpointing": False,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 768,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 512,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "position_embedding_type": "absolute",
    "torch_dtype": "float32",
    "transformers_version": "4.29.0",
    "type_vocab_size": 2,
    "use_cache": True,
    "vocab_size": 4096,
}

TINY = {
    "vocab_size": 40,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 48,
}


def tiny_config(**overrides) -> DNABert2Config:
    return DNABert2Config(**{**TINY, **overrides})


def tiny_model(seed: int = 0, **overrides) -> DNABert2Model:
    torch.manual_seed(seed)
    model = DNABert2Model(tiny_config(**overrides)).eval()
    # BERT's 0.02 init makes every attention nearly uniform; larger weights exercise q.k.
    with torch.no_grad():
        for layer in model.encoder.layer:
            layer.attention.self.Wqkv.weight.normal_(0.0, 0.4)
            layer.attention.self.Wqkv.bias.normal_(0.0, 0.1)
            layer.mlp.gated_layers.weight.normal_(0.0, 0.3)
        model.embeddings.word_embeddings.weight.normal_(0.0, 1.0)
    return model


def fake_mlm_head(config: DNABert2Config, word_embeddings: torch.Tensor) -> dict:
    """The published checkpoint's MLM head (BertForMaskedLM.cls), decoder tied to embeddings."""
    h, v = config.hidden_size, config.vocab_size
    return {
        "cls.predictions.transform.dense.weight": torch.randn(h, h),
        "cls.predictions.transform.dense.bias": torch.randn(h),
        "cls.predictions.transform.LayerNorm.weight": torch.ones(h),
        "cls.predictions.transform.LayerNorm.bias": torch.zeros(h),
        "cls.predictions.decoder.weight": word_embeddings,
        "cls.predictions.decoder.bias": torch.randn(v),
    }


def write_checkpoint(folder: Path, model: DNABert2Model, fmt: str) -> Path:
    """Lay out a checkpoint folder like the published one: config.json + bert.* + cls.*."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {**PUBLISHED_CONFIG, **{k: getattr(model.config, k) for k in TINY}}
    (folder / "config.json").write_text(json.dumps(config))
    state = state_dict_to_published(model)
    state.update(fake_mlm_head(model.config, state["bert.embeddings.word_embeddings.weight"]))
    if fmt == "safetensors":
        from safetensors.torch import save_file

        # safetensors refuses shared storage, so the tied decoder weight is stored as a copy.
        state = {k: v.detach().clone().contiguous() for k, v in state.items()}
        save_file(state, str(folder / "model.safetensors"))
    else:
        torch.save(state, folder / "pytorch_model.bin")
    return folder


def published_names(num_layers: int) -> list[str]:
    """Every tensor name of the published checkpoint, hand-listed (bert_layers.py naming)."""
    names = [
        "bert.embeddings.word_embeddings.weight",
        "bert.embeddings.token_type_embeddings.weight",
        "bert.embeddings.LayerNorm.weight",
        "bert.embeddings.LayerNorm.bias",
    ]
    for i in range(num_layers):
        p = f"bert.encoder.layer.{i}."
        names += [
            p + "attention.self.Wqkv.weight",
            p + "attention.self.Wqkv.bias",
            p + "attention.output.dense.weight",
            p + "attention.output.dense.bias",
            p + "attention.output.LayerNorm.weight",
            p + "attention.output.LayerNorm.bias",
            p + "mlp.gated_layers.weight",
            p + "mlp.wo.weight",
            p + "mlp.wo.bias",
            p + "mlp.layernorm.weight",
            p + "mlp.layernorm.bias",
        ]
    return names


# --- config ---------------------------------------------------------------------------------------


def test_published_config_is_the_default_and_has_116_5m_encoder_parameters():
    config = DNABert2Config.from_hf_config(PUBLISHED_CONFIG)
    assert config == DNABert2Config()
    assert config.vocab_size == 4096 and config.intermediate_size == 3072
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (
        768,
        12,
        12,
    )
    assert (config.layer_norm_eps, config.hidden_dropout_prob) == (1e-12, 0.1)
    with torch.device("meta"):
        model = DNABert2Model(config)
    # 4096*768 + 2*768 + 2*768 (embeddings) + 12 * (768*2304 + 2304 + 768*768 + 768 + 2*768
    # + 768*6144 + 3072*768 + 768 + 2*768) = 3,148,800 + 12 * 9,444,096. The MLM head the
    # checkpoint also holds (596,224 more) brings it to the "117M" of the name.
    assert sum(p.numel() for p in model.parameters()) == 116_477_952


def test_config_unknown_key_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**PUBLISHED_CONFIG, "rotary_dim": 64}))
    with pytest.raises(InputError) as err:
        DNABert2Config.from_json_file(path)
    assert str(err.value).startswith(f"{path}: unknown DNABERT-2 config key(s) rotary_dim; known: ")


def test_config_rejects_an_activation_we_do_not_implement():
    with pytest.raises(
        InputError, match=r"hidden_act is 'silu'; DNABERT-2's GEGLU uses exact GELU"
    ):
        DNABert2Config.from_hf_config({**PUBLISHED_CONFIG, "hidden_act": "silu"})


def test_config_rejects_heads_that_do_not_divide_the_width():
    with pytest.raises(
        InputError, match="hidden_size 32 is not divisible by num_attention_heads 6"
    ):
        DNABert2Config.from_hf_config({**TINY, "num_attention_heads": 6})


# --- ALiBi ----------------------------------------------------------------------------------------


def test_slopes_for_8_heads_are_powers_of_one_half():
    assert alibi_slopes(8) == [2.0**-k for k in range(1, 9)]


def test_slopes_for_12_heads_follow_the_published_non_power_of_two_rule():
    # 8-head slopes, then slopes 1, 3, 5, 7 of the 16-head list 2^-0.5, 2^-1, 2^-1.5, ...
    expected = [
        0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 0.00390625,
        0.7071067811865476, 0.3535533905932738, 0.1767766952966369, 0.08838834764831845,
    ]  # fmt: skip
    assert alibi_slopes(12) == pytest.approx(expected, rel=1e-15, abs=0)


def test_slopes_for_6_heads():
    assert alibi_slopes(6) == [0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125]


def test_alibi_bias_is_minus_slope_times_distance_for_any_length():
    bias = alibi_bias(torch.tensor([0.5, 0.25]), 4)
    assert bias.shape == (2, 4, 4)
    assert bias[0].tolist() == [
        [0.0, -0.5, -1.0, -1.5],
        [-0.5, 0.0, -0.5, -1.0],
        [-1.0, -0.5, 0.0, -0.5],
        [-1.5, -1.0, -0.5, 0.0],
    ]
    assert bias[1, 0, 3].item() == -0.75
    assert alibi_bias(torch.tensor([0.5]), 1000)[0, 999, 0].item() == -499.5  # no 512 cap


def test_attention_bias_is_alibi_with_padded_keys_at_the_lowest_value():
    keep = torch.tensor([[True, True, False], [True, True, True]])
    bias = attention_bias(torch.tensor([0.5, 0.25]), keep)
    assert bias.shape == (2, 2, 3, 3)
    low = torch.finfo(torch.float32).min
    # row 0 (query 0), head 0: keys at distance 0, 1 and a padded key
    assert bias[0, 0, 0].tolist() == [0.0, -0.5, low]
    assert bias[0, 1, 2].tolist() == [-0.5, -0.25, low]  # query 2 of head 1 sees keys 0, 1
    assert bias[1, 1, 2].tolist() == [-0.5, -0.25, 0.0]  # nothing padded in the second read
    weights = torch.softmax(torch.zeros(2, 2, 3, 3) + bias, dim=-1)
    assert (weights[0, :, :, 2] == 0).all()  # a padded key gets no weight, exactly


# --- attention by hand ----------------------------------------------------------------------------


def test_attention_equals_hand_computed_alibi_attention_with_a_padded_key():
    model = tiny_model(seed=1)
    attn = model.encoder.layer[0].attention.self
    heads, d, hidden = 4, 8, 32
    torch.manual_seed(2)
    x = torch.randn(1, 5, hidden)
    keep = torch.tensor([[True, True, True, True, False]])
    slopes = alibi_slopes(heads)
    with torch.no_grad():
        got32 = attn(x, attention_bias(torch.tensor(slopes), keep))[0].double()
        attn.double()
        got = attn(x.double(), attention_bias(torch.tensor(slopes, dtype=torch.float64), keep))[0]

    w = attn.Wqkv.weight.detach().double()
    b = attn.Wqkv.bias.detach().double()
    xs = x[0].double()
    expected = torch.zeros(5, hidden, dtype=torch.float64)
    for h in range(heads):
        q_rows, k_rows, v_rows = (
            slice(s * hidden + h * d, s * hidden + (h + 1) * d) for s in range(3)
        )
        q = xs @ w[q_rows].T + b[q_rows]
        k = xs @ w[k_rows].T + b[k_rows]
        v = xs @ w[v_rows].T + b[v_rows]
        for i in range(5):
            logits = {
                j: float(q[i] @ k[j]) / math.sqrt(d) - slopes[h] * abs(i - j)
                for j in range(5)
                if keep[0, j]
            }
            top = max(logits.values())
            z = sum(math.exp(s - top) for s in logits.values())
            for j, s in logits.items():
                expected[i, h * d : (h + 1) * d] += math.exp(s - top) / z * v[j]
    assert (got - expected).abs().max().item() < 1e-12
    assert (got32 - expected).abs().max().item() < 1e-5  # float32, outputs up to about 4


# --- whole model against a plain reference read from the published names --------------------------


def reference_forward(published: dict, config: DNABert2Config, ids: list[int]) -> torch.Tensor:
    """DNABERT-2 on one unpadded sequence, straight from the published tensor names.

    With no padding the hub's unpadding is the identity, so this is its forward.
    """
    f = torch.nn.functional
    t = {k: v.double() for k, v in published.items()}
    hid, heads, inter, eps = (
        config.hidden_size,
        config.num_attention_heads,
        config.intermediate_size,
        config.layer_norm_eps,
    )
    d, n = hid // heads, len(ids)

    def ln(x, prefix):
        return f.layer_norm(x, (hid,), t[prefix + ".weight"], t[prefix + ".bias"], eps)

    x = t["bert.embeddings.word_embeddings.weight"][ids]
    x = ln(x + t["bert.embeddings.token_type_embeddings.weight"][0], "bert.embeddings.LayerNorm")
    dist = torch.tensor([[abs(i - j) for j in range(n)] for i in range(n)], dtype=torch.float64)
    slopes = torch.tensor(alibi_slopes(heads), dtype=torch.float64)[:, None, None]
    for layer in range(config.num_hidden_layers):
        p = f"bert.encoder.layer.{layer}."
        qkv = x @ t[p + "attention.self.Wqkv.weight"].T + t[p + "attention.self.Wqkv.bias"]
        q, k, v = (qkv[:, s * hid : (s + 1) * hid].reshape(n, heads, d) for s in range(3))
        scores = torch.einsum("ihd,jhd->hij", q, k) / math.sqrt(d)
        scores = scores - slopes * dist
        ctx = torch.einsum("hij,jhd->ihd", scores.softmax(-1), v).reshape(n, hid)
        out = ctx @ t[p + "attention.output.dense.weight"].T + t[p + "attention.output.dense.bias"]
        x = ln(out + x, p + "attention.output.LayerNorm")
        gl = x @ t[p + "mlp.gated_layers.weight"].T
        y = f.gelu(gl[:, :inter]) * gl[:, inter:]
        x = ln(x + y @ t[p + "mlp.wo.weight"].T + t[p + "mlp.wo.bias"], p + "mlp.layernorm")
    return x


@pytest.mark.parametrize("heads,hidden", [(4, 32), (6, 48)])
def test_model_matches_plain_reference_and_padding_changes_nothing(heads, hidden):
    model = tiny_model(seed=3, num_attention_heads=heads, hidden_size=hidden).double()
    published = state_dict_to_published(model)
    seqs = [[7, 3, 22, 9, 31, 5, 17], [11, 2, 30], [8, 8, 14, 25, 1]]

    def batch(width):
        ids = torch.zeros(len(seqs), width, dtype=torch.int64)
        mask = torch.zeros(len(seqs), width, dtype=torch.int64)
        for r, s in enumerate(seqs):
            ids[r, : len(s)], mask[r, : len(s)] = torch.tensor(s), 1
        return ids, mask

    with torch.no_grad():
        out7 = model(*batch(7))
        out19 = model(*batch(19))
    for r, s in enumerate(seqs):
        ref = reference_forward(published, model.config, s)
        assert (out7[r, : len(s)] - ref).abs().max().item() < 1e-12
        # More padding leaves the real tokens' states unchanged (float64: rounding only).
        assert (out19[r, : len(s)] - out7[r, : len(s)]).abs().max().item() < 1e-12
        assert out19[r, len(s) :].abs().max().item() == 0.0  # padding rows are zeroed


def test_mean_pool_averages_real_tokens_only():
    hidden = torch.tensor(
        [[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]], [[5.0, 6.0], [0.0, 0.0], [0.0, 0.0]]]
    )
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]])
    assert mean_pool(hidden, mask).tolist() == [[2.0, 3.0], [0.0, 0.0]]


# --- published checkpoint layout ------------------------------------------------------------------


def test_state_dict_uses_exactly_the_published_names():
    model = tiny_model()
    assert sorted(state_dict_to_published(model)) == sorted(published_names(2))


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
@pytest.mark.parametrize("heads,hidden", [(4, 32), (6, 48)])
def test_published_layout_loads_strictly_with_identical_outputs(
    tmp_path, caplog, fmt, heads, hidden
):
    model = tiny_model(seed=4, num_attention_heads=heads, hidden_size=hidden)
    folder = write_checkpoint(tmp_path / "DNABERT-2-tiny", model, fmt)
    with caplog.at_level(logging.INFO, logger="hir_edge.models.dnabert2_weights"):
        loaded = load_dnabert2(folder)
    assert not loaded.training
    assert loaded.config == model.config
    dropped = "dropped 6 tensor(s) that are not part of the encoder: cls.predictions.decoder.bias"
    assert dropped in caplog.text
    ids = torch.tensor([[5, 9, 13, 2, 0, 0], [1, 2, 3, 4, 5, 6]])
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    with torch.no_grad():
        assert torch.equal(loaded(ids, mask), model(ids, mask))
    weights = next(p for p in folder.iterdir() if p.name != "config.json")
    from_file = load_dnabert2(weights)  # a weights file, config.json beside it
    assert torch.equal(from_file.embeddings.LayerNorm.bias, model.embeddings.LayerNorm.bias)


def test_published_to_ours_strips_prefix_and_drops_the_mlm_head():
    state = {
        "bert.embeddings.LayerNorm.bias": torch.zeros(2),
        "cls.predictions.decoder.bias": torch.zeros(3),
    }
    ours, dropped = published_to_ours(state)
    assert list(ours) == ["embeddings.LayerNorm.bias"]
    assert dropped == ["cls.predictions.decoder.bias"]


def test_missing_and_unexpected_keys_are_listed(tmp_path):
    folder = write_checkpoint(tmp_path / "ckpt", tiny_model(), "bin")
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    del state["bert.encoder.layer.1.mlp.wo.bias"]
    state["bert.encoder.layer.1.mlp.gated_layers.bias"] = torch.zeros(96)
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(InputError) as err:
        load_dnabert2(folder)
    assert str(err.value) == (
        f"{folder / 'pytorch_model.bin'}: does not fit the DNABERT-2 config in config.json "
        "(names are ours, i.e. without 'bert.'): missing 1: encoder.layer.1.mlp.wo.bias; "
        "unexpected 1: encoder.layer.1.mlp.gated_layers.bias"
    )


def test_shape_mismatch_is_reported(tmp_path):
    folder = write_checkpoint(tmp_path / "ckpt", tiny_model(), "safetensors")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "intermediate_size": 64}))
    with pytest.raises(
        InputError,
        match=r"shape mismatch \(checkpoint vs config\) "
        r"encoder\.layer\.0\.mlp\.gated_layers\.weight \(96, 32\) vs \(128, 32\)",
    ):
        load_dnabert2(folder)


def test_bin_is_read_with_weights_only(tmp_path):
    folder = write_checkpoint(tmp_path / "ckpt", tiny_model(), "bin")
    # A pickle that would build an arbitrary object: refused by weights_only=True.
    torch.save({"bert.embeddings.LayerNorm.bias": Path("x")}, folder / "pytorch_model.bin")
    with pytest.raises(InputError, match="cannot read weights: UnpicklingError"):
        load_dnabert2(folder)


def test_folder_without_weights_or_config(tmp_path):
    expected = r"no weights found; expected one of model\.safetensors, pytorch_model\.bin"
    with pytest.raises(InputError, match=expected):
        load_dnabert2(tmp_path)
    folder = write_checkpoint(tmp_path / "ckpt", tiny_model(), "bin")
    (folder / "config.json").unlink()
    with pytest.raises(InputError, match=r"config\.json: no such file"):
        load_dnabert2(folder)


# --- ONNX -----------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:# The axis name")
def test_onnx_export_round_trip_with_dynamic_batch_and_length(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    model = tiny_model(seed=5, num_attention_heads=6, hidden_size=48)
    ids = torch.randint(5, 40, (2, 7))
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
    program = torch.onnx.export(
        model,
        (ids, mask),
        dynamo=True,
        input_names=["input_ids", "attention_mask"],
        output_names=["last_hidden_state"],
        dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
    )
    path = tmp_path / "dnabert2.onnx"
    program.save(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(6)
    # Shapes other than the export example, including a length past the hub's 512 ALiBi table.
    for b, t in [(2, 7), (3, 13), (1, 600)]:
        ids = torch.randint(5, 40, (b, t), generator=gen)
        mask = torch.ones(b, t, dtype=torch.int64)
        mask[0, t // 2 :] = 0
        with torch.no_grad():
            expected = model(ids, mask).numpy()
        (got,) = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
        assert got.shape == (b, t, 48)
        # Measured max abs diff: 9.5e-7, 1.4e-6, 1.9e-6 (float32; outputs up to about 3.7).
        assert abs(got - expected).max() < 1e-5


def test_downsample_merges_token_groups_and_their_mask():
    """downsample=4: a strided convolution merges 4 tokens into one; masked tokens enter it
    as zeros (an all-masked group stays masked, changing a masked id changes nothing)."""
    torch.manual_seed(0)
    config = DNABert2Config(
        vocab_size=20,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        hidden_dropout_prob=0.0,
        downsample=4,
    )
    model = DNABert2Model(config).eval()
    ids = torch.randint(3, 20, (2, 12))
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[0, 4:8] = 0  # the middle group of the first read is unread
    mask[1, 10:] = 0
    assert model.output_mask(mask).tolist() == [[1, 0, 1], [1, 1, 1]]
    out = model(ids, mask)
    assert out.shape == (2, 3, 8)
    assert torch.all(out[0, 1] == 0)
    other = ids.clone()
    other[0, 4:8] = 5
    other[1, 10:] = 7
    assert torch.allclose(model(other, mask), out, atol=1e-6)
    # by hand: merged token = conv over the group's masked embeddings
    emb = model.embeddings(ids) * mask.unsqueeze(-1)
    merged = model.merge(emb.transpose(1, 2)).transpose(1, 2)
    assert torch.allclose(
        merged[0, 0],
        (model.merge.weight * emb[0, 0:4].T.unsqueeze(0)).sum(dim=(1, 2)) + model.merge.bias,
        atol=1e-6,
    )
    # outside export the convolution runs as one matrix product on grouped tokens: same values
    assert torch.allclose(merge_tokens(model.merge, emb), merged, atol=1e-6)
    with pytest.raises(ValueError, match=r"13 tokens do not split into groups of 4"):
        model.output_mask(torch.ones(1, 13, dtype=torch.long))
    with pytest.raises(ValueError, match=r"13 tokens do not split into groups of 4"):
        model(torch.randint(3, 20, (1, 13)))


def test_training_kernels_match_the_exported_graph_in_values_and_gradients(monkeypatch):
    """Training and PyTorch inference use the fused attention kernel and a matrix-product
    merge; the ONNX export traces the explicit graph. Same maths: outputs and every
    parameter's gradient agree, with padded keys and an unread group."""
    import hir_edge.models.dnabert2 as dnabert2

    model = tiny_model(
        seed=4, downsample=4, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    ).train()
    ids = torch.randint(3, 40, (3, 16))
    mask = torch.ones(3, 16, dtype=torch.long)
    mask[0, 12:] = 0
    mask[1, 4:8] = 0

    def run():
        model.zero_grad()
        out = model(ids, mask)
        (out.square().sum() + out[:, 0].sum()).backward()
        return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    fused_calls = []
    kernel = dnabert2.F.scaled_dot_product_attention
    monkeypatch.setattr(
        dnabert2.F,
        "scaled_dot_product_attention",
        lambda *a, **k: fused_calls.append(1) or kernel(*a, **k),
    )
    fused, fused_grads = run()
    assert len(fused_calls) == 2  # one per layer
    monkeypatch.setattr(dnabert2, "exporting", lambda: True)
    graph, graph_grads = run()
    assert len(fused_calls) == 2  # the export graph never calls it
    assert (fused - graph).abs().max().item() < 1e-5
    assert fused_grads.keys() == graph_grads.keys()
    for name, grad in fused_grads.items():
        assert (grad - graph_grads[name]).abs().max().item() < 1e-4, name


def test_autocast_keeps_the_explicit_attention_with_a_float32_bias(monkeypatch):
    """Under bf16 autocast q is bf16 and the bias float32: the fused kernel would round the
    bias to bf16 (a padded key's float32 minimum becomes -inf), so the explicit path adds it
    to the scores in float32, as before, and a row of padding only stays finite."""
    import hir_edge.models.dnabert2 as dnabert2

    calls = []
    monkeypatch.setattr(dnabert2.F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1))
    model = tiny_model(seed=5)
    ids = torch.randint(3, 40, (2, 6))
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0]])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(ids, mask)
    assert calls == [] and torch.isfinite(out.float()).all()
    assert out[1].abs().max().item() == 0.0  # padding rows are zeroed
