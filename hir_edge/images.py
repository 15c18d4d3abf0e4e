"""Image loading and model preprocessing with Pillow and numpy only (the edge path).

``preprocess`` reimplements open_clip's eval transform (``image_transform(S, is_train=False)``:
torchvision ``Resize`` → ``CenterCrop`` → ``ToTensor`` → ``Normalize``) without torch, with the
same Pillow resampling and the same rounding of sizes and crop offsets, so an exported model sees
the tensors it was trained on (tests/test_images.py measures the difference: 0 on real photos).

``load_image`` turns any file Pillow reads into an upright RGB image. Given ``min_size`` it
decodes large JPEGs at a reduced DCT scale (``Image.draft``), which is several times faster on
2880×2160 camera frames and changes the final 224 px tensor only slightly
(benchmarks/results/image_decode.md has the figures).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from hir_edge.errors import ConfigError, InputError

# open_clip's OPENAI_DATASET_MEAN / OPENAI_DATASET_STD (copied so the edge path needs no torch).
OPENAI_CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

INTERPOLATIONS: Mapping[str, Image.Resampling] = MappingProxyType(
    {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}
)
RESIZE_MODES = ("shortest", "longest", "squash")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif", ".ppm")

_ALPHA_MODES = {"LA", "La", "PA", "RGBA", "RGBa"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}


# Written into the JPEG comment of every photo drawn by ``hir-edge data synth``: lets ``identify``
# warn when a bundle whose image branch only saw drawings is given a real photograph.
SYNTHETIC_PHOTO_COMMENT = b"hir-edge synthetic photo"


def is_drawn_photo(source: str | Path | bytes) -> bool:
    """A photo written by ``hir-edge data synth``: its JPEG comment says so (in the first few
    kilobytes, where JPEG keeps its markers)."""
    if isinstance(source, bytes | bytearray):
        return SYNTHETIC_PHOTO_COMMENT in source[:4096]
    try:
        with Path(source).open("rb") as handle:
            return SYNTHETIC_PHOTO_COMMENT in handle.read(4096)
    except (OSError, TypeError):
        return False


@dataclass(frozen=True)
class PreprocessConfig:
    """How a model wants its input image; stored in checkpoints and bundles.

    Attributes:
        image_size: side S of the square model input.
        mean, std: per-channel normalisation of the [0, 1] image.
        interpolation: "bicubic" or "bilinear" (Pillow resampling filters, as torchvision uses).
        resize_mode: "shortest" (resize the shorter side to S, centre crop: open_clip's default),
            "longest" (fit the longer side, pad with black) or "squash" (resize to S×S).
    """

    image_size: int = 224
    mean: tuple[float, float, float] = OPENAI_CLIP_MEAN
    std: tuple[float, float, float] = OPENAI_CLIP_STD
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"

    def __post_init__(self) -> None:
        # JSON gives lists; keep tuples so the config stays hashable and compares equal.
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if isinstance(self.image_size, bool) or not isinstance(self.image_size, int):
            raise ConfigError(f"image_size must be an integer, got {self.image_size!r}")
        if self.image_size < 1:
            raise ConfigError(f"image_size must be at least 1, got {self.image_size}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ConfigError(f"mean and std need 3 values (R, G, B), got {self.mean}, {self.std}")
        if min(self.std) <= 0:
            raise ConfigError(f"std values must be positive, got {self.std}")
        if self.interpolation not in INTERPOLATIONS:
            raise ConfigError(
                f"interpolation {self.interpolation!r} is not supported; "
                f"use one of {', '.join(INTERPOLATIONS)}"
            )
        if self.resize_mode not in RESIZE_MODES:
            raise ConfigError(
                f"resize_mode {self.resize_mode!r} is not supported; "
                f"use one of {', '.join(RESIZE_MODES)}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (tuples become lists)."""
        out = asdict(self)
        out["mean"] = list(self.mean)
        out["std"] = list(self.std)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PreprocessConfig:
        """Build from ``to_dict`` output; an unknown key is an error, never silently dropped."""
        from hir_edge.config_loader import from_mapping

        return from_mapping(cls, data, "preprocessing")


def load_image(source: str | Path | bytes, *, min_size: int | None = None) -> Image.Image:
    """Read an image file (or its bytes) as an upright 8-bit RGB image.

    EXIF orientation is applied; alpha is composited on white; 16-bit and float images are scaled
    to 8 bits (see ``to_rgb``).

    Args:
        source: a path, or the encoded bytes of an image.
        min_size: when given, the image may be decoded smaller to save time, but its shorter side
            stays >= ``min_size``: JPEGs are decoded at 1/2, 1/4 or 1/8 scale (``draft``),
            other formats are shrunk by an integer factor with ``Image.reduce`` (box filter).

    Returns:
        A loaded RGB ``PIL.Image.Image``.

    Raises:
        InputError: the file is missing, empty, not an image, truncated, or of zero size.
    """
    if min_size is not None and min_size < 1:
        raise ValueError(f"min_size must be at least 1, got {min_size}")
    name, handle = _open_source(source)
    try:
        try:
            img = Image.open(handle)
        except UnidentifiedImageError as err:
            raise InputError(name, f"is not an image Pillow can read ({_reason(err)})") from None
        except Image.DecompressionBombError as err:
            raise InputError(name, f"is too large to decode safely ({err})") from None
        except (OSError, SyntaxError, ValueError, EOFError) as err:  # cut inside its headers
            raise InputError(name, f"is truncated or corrupt ({_reason(err)})") from None
        if img.width == 0 or img.height == 0:
            raise InputError(name, f"has zero size ({img.width}×{img.height} pixels)")
        is_jpeg = img.format == "JPEG"
        if min_size is not None and is_jpeg:
            # A square request keeps *both* sides >= min_size, so the shorter side is large
            # enough whichever way the EXIF orientation (applied after decoding) turns the image.
            img.draft("RGB", (min_size, min_size))
        try:
            img.load()
            ImageOps.exif_transpose(img, in_place=True)  # no copy when already upright
        except (OSError, SyntaxError, ValueError, EOFError) as err:
            raise InputError(name, f"is truncated or corrupt ({_reason(err)})") from None
        img = to_rgb(img, name)
    finally:
        handle.close()
    if min_size is not None and not is_jpeg:
        factor = min(img.size) // min_size
        if factor >= 2:
            img = img.reduce(factor)  # rounds sizes up, so the shorter side stays >= min_size
    return img


def to_rgb(img: Image.Image, name: str | None = None) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB the way a person would view the image.

    Alpha (LA, PA, RGBA, or a palette/colour-key transparency) is composited on white, since
    specimen photos are shot on light backgrounds. 16-bit images (I;16*) are scaled by 255/65535.
    32-bit integer images (I) are taken as 16-bit data when their values fit in 0..65535, else
    stretched from their min..max; float images (F) are taken as [0, 1] when they fit, else
    stretched from their min..max. Other modes (1, L, P, CMYK, YCbCr, LAB, HSV) use Pillow.
    """
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        out = _gray_to_rgb(_scale_to_uint8(np.asarray(img), mode))
    elif mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        out = Image.alpha_composite(white, rgba).convert("RGB")
    else:
        try:
            out = img.convert("RGB")
        except (ValueError, OSError) as err:
            raise InputError(
                name, f"has image mode {mode}, which cannot be converted to RGB ({err})"
            ) from None
    return out


def preprocess(image: Image.Image, config: PreprocessConfig) -> np.ndarray:
    """Resize, crop and normalise one image exactly as open_clip's eval transform does.

    Args:
        image: a PIL image (converted to RGB first when it is not).
        config: the model's preprocessing settings.

    Returns:
        float32 array [3, S, S], normalised with ``config.mean`` / ``config.std``.
    """
    if image.mode != "RGB":
        image = to_rgb(image)
    size = config.image_size
    resample = INTERPOLATIONS[config.interpolation]
    width, height = image.size
    if config.resize_mode == "shortest":
        # torchvision Resize(S) with an int: the shorter side becomes S, the longer
        # int(S * long / short) (truncated), and an image already that size is left alone.
        short, long = (width, height) if width <= height else (height, width)
        new_long = int(size * long / short)
        new_w, new_h = (size, new_long) if width <= height else (new_long, size)
        if (new_w, new_h) != (width, height):
            image = image.resize((new_w, new_h), resample)
        image = _center_crop(image, size)
    elif config.resize_mode == "longest":
        # open_clip ResizeKeepRatio(longest=1) then CenterCropOrPad(fill=0).
        ratio = max(height / size, width / size)
        new_h, new_w = round(height / ratio), round(width / ratio)
        if (new_w, new_h) != (width, height):
            image = image.resize((new_w, new_h), resample)
        image = _center_crop(image, size)
    else:  # squash
        if image.size != (size, size):
            image = image.resize((size, size), resample)
    pixels = np.asarray(image, dtype=np.uint8).astype(np.float32) / np.float32(255.0)
    chw = np.ascontiguousarray(pixels.transpose(2, 0, 1))
    mean = np.asarray(config.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(config.std, dtype=np.float32)[:, None, None]
    return (chw - mean) / std


def preprocess_batch(images: Sequence[Image.Image], config: PreprocessConfig) -> np.ndarray:
    """``preprocess`` each image and stack them: float32 [B, 3, S, S]."""
    if len(images) == 0:
        size = config.image_size
        return np.zeros((0, 3, size, size), dtype=np.float32)
    return np.stack([preprocess(image, config) for image in images])


def _center_crop(image: Image.Image, size: int) -> Image.Image:
    """torchvision ``CenterCrop``: pad with black if smaller, offsets int(round((d - S) / 2))."""
    width, height = image.size
    if width < size or height < size:
        pad_left = (size - width) // 2 if size > width else 0
        pad_top = (size - height) // 2 if size > height else 0
        canvas = Image.new("RGB", (max(width, size), max(height, size)), (0, 0, 0))
        canvas.paste(image, (pad_left, pad_top))
        image = canvas
        width, height = image.size
        if (width, height) == (size, size):
            return image
    top = round((height - size) / 2.0)
    left = round((width - size) / 2.0)
    return image.crop((left, top, left + size, top + size))


def _scale_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    data = values.astype(np.float64)
    sixteen_bit = mode in _SIXTEEN_BIT_MODES or (
        mode == "I" and data.min() >= 0 and data.max() <= 65535
    )
    if sixteen_bit:
        scaled = data * (255.0 / 65535.0)
    elif mode == "F" and data.min() >= 0 and data.max() <= 1:
        scaled = data * 255.0
    else:
        finite = data[np.isfinite(data)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        span = high - low
        scaled = (data - low) * (255.0 / span) if span > 0 else np.zeros_like(data)
    return np.clip(np.rint(np.nan_to_num(scaled)), 0, 255).astype(np.uint8)


def _gray_to_rgb(gray: np.ndarray) -> Image.Image:
    return Image.fromarray(np.repeat(gray[:, :, None], 3, axis=2), mode="RGB")


def source_name(source: str | Path | bytes) -> str:
    """How an error names a photo: its path, or ``<bytes>`` for one given in memory."""
    return "<bytes>" if isinstance(source, (bytes, bytearray, memoryview)) else str(source)


def _open_source(source: str | Path | bytes) -> tuple[str, io.IOBase]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name = source_name(source)
        if not data:
            raise InputError(name, "is empty (0 bytes)")
        return name, io.BytesIO(data)
    path = Path(source)
    name = source_name(path)
    if path.is_dir():
        raise InputError(name, "is a folder, not an image file")
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise InputError(name, "no such file") from None
    except OSError as err:
        raise InputError(name, f"cannot be opened ({err.strerror or err})") from None
    if path.stat().st_size == 0:
        handle.close()
        raise InputError(name, "is empty (0 bytes)")
    return name, handle


def _reason(err: BaseException) -> str:
    """Pillow's own message, without the repr of an in-memory file object."""
    text = str(err) or type(err).__name__
    if "<_io." in text:
        text = text.split(" <_io.")[0]
    return text


def image_files(folder: Path) -> list[Path]:
    """The image files under ``folder`` (any depth, by suffix; hidden files skipped), sorted."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )
