"""Models: presets, forward/backward, freezing, fusion, and the pretrained-loading code paths.

Real pretrained weights (BioCLIP, DNABERT-2, BarcodeBERT) cannot be fetched here, so each loading
path is exercised with a tiny model saved to a temporary folder in the published layout and
loaded back through the same function a real checkpoint goes through.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from hir_edge.errors import ConfigError
from hir_edge.losses import HirObjective, LossWeights
from hir_edge.models import GatedFusion, create_model, list_presets, load_model, save_model
from hir_edge.models.config import ModelConfig

SEQS = ["ACGT" * 150, "TTAGCA" * 80, "ACGTNNNNACGT" * 20, "GATTACA" * 70]
TEXTS = ["Diptera", "Diptera Chironomidae", "Hemiptera Miridae Lygus", "Araneae"]


def _batch(model, n=4):
    size = model.preprocess.image_size
    torch.manual_seed(0)
    images = torch.randn(n, 3, size, size)
    ids, mask = model.tokenize_dna(SEQS[:n])
    return images, ids, mask


def test_registry_lists_presets_with_roles():
    assert {"tiny", "edge-s", "edge-m", "paper-bioclip", "paper-openclip", "clibd"} <= set(
        list_presets()
    )
    assert set(list_presets(role="student")) == {"edge-s", "edge-m"}
    assert list_presets("paper-*") == ["paper-bioclip", "paper-openclip"]


def test_unknown_preset_suggests_close_match():
    with pytest.raises(ConfigError, match=r"unknown model preset 'tinny'.*Did you mean 'tiny'\?"):
        create_model("tinny")


def test_unknown_override_is_named():
    with pytest.raises(ConfigError, match=r"model override: unknown key 'fusion.gain'"):
        create_model("tiny", overrides={"fusion.gain": 2})


def test_paper_presets_parse_and_say_what_they_load():
    for name in ("paper-bioclip", "paper-openclip", "clibd"):
        cfg = ModelConfig.from_dict(json.loads((_preset_dir() / f"{name}.json").read_text()))
        assert cfg.role == "teacher"
    bioclip = ModelConfig.from_dict(json.loads((_preset_dir() / "paper-bioclip.json").read_text()))
    assert bioclip.clip.name == "hf-hub:imageomics/bioclip" and bioclip.clip.freeze_text
    assert bioclip.dna.pretrained == "zhihan1996/DNABERT-2-117M"


def _preset_dir():
    from hir_edge.models.factory import CONFIG_DIR

    return CONFIG_DIR


@pytest.fixture(scope="module")
def tiny():
    return create_model("tiny")


def test_tiny_forward_backward_algo1_and_algo2(tiny):
    images, ids, mask = _batch(tiny)
    tokens = tiny.tokenize_text(TEXTS)
    labels = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 1], [1, 1, 1, 2], [0, 0, 1, -1]])
    for weights, fuse in (
        (LossWeights(hir=1.0, fusion=0.0), False),
        (LossWeights(hir=1.0, fusion=1.0), True),
    ):
        tiny.zero_grad()
        out = tiny(images, ids, mask, tokens, fuse=fuse)
        parts = HirObjective(weights)(
            out["scale"], out["image"], out["dna"], out["text"], labels, fused=out.get("fused")
        )
        parts["loss"].backward()
        assert torch.isfinite(parts["loss"])
        assert ("fusion" in parts) == fuse
        grads = [p.grad for p in tiny.parameters() if p.requires_grad]
        assert all(g is None or torch.isfinite(g).all() for g in grads)
        assert tiny.fusion.gate[0].weight.grad is not None if fuse else True
    for key in ("image", "dna", "text", "fused"):
        assert torch.allclose(out[key].norm(dim=-1), torch.ones(4), atol=1e-5)
    assert out["scale"].item() == pytest.approx(1 / 0.07, rel=1e-5)


def test_logit_scale_is_clamped_at_100(tiny):
    with torch.no_grad():
        tiny.logit_scale.fill_(math.log(500.0))
    assert tiny.scale().item() == pytest.approx(100.0, rel=1e-5)
    with torch.no_grad():
        tiny.logit_scale.fill_(math.log(1 / 0.07))


@pytest.mark.parametrize("name", ["edge-s", "edge-m"])
def test_students_forward_without_text_and_without_nans(name):
    model = create_model(name, embed_dim=128).eval()
    images, ids, mask = _batch(model, 2)
    with torch.no_grad():
        out = model(images, ids, mask, fuse=True)
    assert not model.has_text
    assert out["image"].shape == (2, 128) and torch.isfinite(out["fused"]).all()
    with pytest.raises(RuntimeError, match=r"has no text tower"):
        model.encode_text(torch.zeros(1, 4, dtype=torch.long))


def test_save_and_load_rebuild_the_same_model(tiny, tmp_path):
    model = create_model("tiny", fusion__hidden_dim=64)
    save_model(model, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "model_config.json").read_text())
    assert config["preset"] == "tiny" and config["overrides"] == {"fusion.hidden_dim": 64}
    back = load_model(tmp_path / "m").eval()
    model.eval()
    images, ids, mask = _batch(model)
    tokens = model.tokenize_text(TEXTS)
    with torch.no_grad():
        a, b = (
            model(images, ids, mask, tokens, fuse=True),
            back(images, ids, mask, tokens, fuse=True),
        )
    for key in ("image", "dna", "text", "fused"):
        assert torch.equal(a[key], b[key])


def test_load_model_refuses_mismatched_weights(tmp_path):
    model = create_model("tiny")
    save_model(model, tmp_path / "m")
    data = json.loads((tmp_path / "m" / "model_config.json").read_text())
    data["fusion"]["hidden_dim"] = 32
    (tmp_path / "m" / "model_config.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"weights do not fit the config"):
        load_model(tmp_path / "m")
    with pytest.raises(ConfigError, match=r"not a saved model \(model_config.json is missing\)"):
        load_model(tmp_path)


def test_freezing_policy_and_param_groups():
    model = create_model("tiny", clip__freeze_text=True, dna__freeze=True)
    assert not any(p.requires_grad for p in model.text_model.parameters())
    assert not any(p.requires_grad for p in model.dna.backbone.parameters())
    assert all(p.requires_grad for p in model.dna.proj.parameters())
    model.train()
    assert not model.text_model.training and model.visual.training
    groups = model.param_groups(0.1)
    ids = {id(p) for g in groups for p in g["params"]}
    assert id(model.text_model.token_embedding.weight) not in ids
    no_decay = {id(p) for p in groups[1]["params"]}
    assert id(model.logit_scale) in no_decay
    assert all(p.ndim >= 2 for p in groups[0]["params"])


def test_gated_fusion_matches_equation_10():
    torch.manual_seed(0)
    fusion = GatedFusion(3, hidden_dim=4, dropout=0.5).eval()
    zi = torch.nn.functional.normalize(torch.randn(2, 3), dim=-1)
    zd = torch.nn.functional.normalize(torch.randn(2, 3), dim=-1)
    lin1, lin2 = fusion.gate[0], fusion.gate[3]
    h = torch.cat([zi, zd], dim=-1)
    g = torch.sigmoid(lin2(torch.relu(lin1(h))))
    expected = torch.nn.functional.normalize(g * zi + (1 - g) * zd, dim=-1)
    fused, gate = fusion(zi, zd)
    assert torch.allclose(gate, g) and torch.allclose(fused, expected)
    # Dropout acts only in training mode.
    fusion.train()
    torch.manual_seed(1)
    assert not torch.allclose(fusion(zi, zd)[1], g)


def test_model_without_fusion_averages():
    model = create_model("tiny", fusion__enabled=False)
    zi = torch.nn.functional.normalize(torch.randn(2, 128), dim=-1)
    zd = torch.nn.functional.normalize(torch.randn(2, 128), dim=-1)
    fused, gate = model.fuse(zi, zd)
    assert torch.allclose(fused, torch.nn.functional.normalize(zi + zd, dim=-1))
    assert torch.all(gate == 0.5)


# --------------------------------------------------------------------------- loading paths
def test_open_clip_local_dir_loads_through_open_clip(tmp_path):
    """The hub layout (open_clip_config.json + weights), read by open_clip's 'local-dir:' schema."""
    from open_clip.model import CLIP
    from safetensors.torch import save_file

    cfg = {
        "embed_dim": 32,
        "vision_cfg": {
            "layers": 1,
            "width": 32,
            "head_width": 16,
            "patch_size": 8,
            "image_size": 32,
        },
        "text_cfg": {
            "context_length": 16,
            "vocab_size": 49408,
            "width": 32,
            "heads": 2,
            "layers": 1,
        },
    }
    torch.manual_seed(3)
    clip = CLIP(**cfg)
    folder = tmp_path / "bioclip-like"
    folder.mkdir()
    pre = {
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25],
        "interpolation": "bicubic",
        "resize_mode": "shortest",
    }
    (folder / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": cfg, "preprocess_cfg": pre})
    )
    save_file(
        {k: v.contiguous() for k, v in clip.state_dict().items()},
        str(folder / "open_clip_model.safetensors"),
    )

    model = create_model(
        "tiny",
        overrides={"clip.name": f"local-dir:{folder}", "clip.config": None, "embed_dim": None},
    ).eval()
    assert model.embed_dim == 32
    assert model.preprocess.mean == (0.5, 0.5, 0.5) and model.preprocess.image_size == 32
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = torch.nn.functional.normalize(clip.eval().encode_image(x), dim=-1)
        assert torch.allclose(model.encode_image(x), expected, atol=1e-6)
    # The resolved architecture is recorded: the saved model rebuilds without the folder.
    save_model(model, tmp_path / "saved")
    folder.joinpath("open_clip_model.safetensors").unlink()
    with torch.no_grad():
        assert torch.allclose(
            load_model(tmp_path / "saved").eval().encode_image(x), expected, atol=1e-6
        )


def _tiny_bpe(path):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(
        vocab_size=60, special_tokens=["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
    )
    tok.train_from_iterator(SEQS * 5, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 1), ("[SEP]", 2)]
    )
    tok.save(str(path))


def test_dnabert2_pretrained_folder_loads_published_layout(tmp_path):
    from safetensors.torch import save_file

    from hir_edge.models.dnabert2 import DNABert2Config, DNABert2Model
    from hir_edge.models.dnabert2_weights import state_dict_to_published

    folder = tmp_path / "DNABERT-2-tiny"
    folder.mkdir()
    _tiny_bpe(folder / "tokenizer.json")
    cfg = DNABert2Config(
        vocab_size=60,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
    )
    torch.manual_seed(4)
    ref = DNABert2Model(cfg).eval()
    (folder / "config.json").write_text(
        json.dumps(
            {
                "architectures": ["BertForMaskedLM"],
                "model_type": "bert",
                "vocab_size": 60,
                "hidden_size": 32,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "intermediate_size": 64,
            }
        )
    )
    save_file(state_dict_to_published(ref), str(folder / "model.safetensors"))

    model = create_model(
        "tiny",
        overrides={
            "dna.pretrained": str(folder),
            "dna.tokenizer": {"kind": "bpe", "max_length": 64},
        },
    ).eval()
    ids, mask = model.tokenize_dna(SEQS[:2])
    assert ids[0, 0].item() == 1  # [CLS] from the tokenizer's post-processor
    with torch.no_grad():
        hidden = ref(ids, mask)
        from hir_edge.models.dnabert2 import mean_pool

        expected = torch.nn.functional.normalize(model.dna.proj(mean_pool(hidden, mask)), dim=-1)
        assert torch.allclose(model.encode_dna(ids, mask), expected, atol=1e-6)


def test_barcodebert_style_bert_folder_loads(tmp_path):
    from transformers import BertConfig, BertForMaskedLM

    from hir_edge.dna.tokens import KmerTokenizer

    tok = KmerTokenizer(k=5, max_length=40)
    torch.manual_seed(5)
    mlm = BertForMaskedLM(
        BertConfig(
            vocab_size=tok.vocab_size,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
        )
    )
    mlm.save_pretrained(tmp_path / "barcodebert-tiny")
    model = create_model(
        "tiny",
        overrides={
            "dna.kind": "bert",
            "dna.pretrained": str(tmp_path / "barcodebert-tiny"),
            "dna.tokenizer": {"kind": "kmer", "k": 5, "max_length": 40},
            "dna.config": {},
        },
    ).eval()
    ids, mask = model.tokenize_dna(SEQS[:2])
    with torch.no_grad():
        hidden = mlm.eval().bert(input_ids=ids, attention_mask=mask).last_hidden_state
        pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        expected = torch.nn.functional.normalize(model.dna.proj(pooled), dim=-1)
        assert torch.allclose(model.encode_dna(ids, mask), expected, atol=1e-5)


def test_missing_hub_id_offline_says_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        ConfigError, match=r"could not fetch 'no-such-org/no-such-model'.*give the local folder"
    ):
        create_model("tiny", overrides={"dna.pretrained": "no-such-org/no-such-model"})


def test_prompt_embeddings_are_normalised_and_deterministic(tiny):
    a = tiny.embed_prompts(TEXTS)
    b = tiny.embed_prompts(TEXTS)
    assert a.shape == (4, 128) and torch.equal(a, b)
    assert np.allclose(a.norm(dim=-1).numpy(), 1.0, atol=1e-5)
    assert tiny.training  # restored
