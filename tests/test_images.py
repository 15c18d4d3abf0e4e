"""hir_edge.images: parity with open_clip's eval transform, EXIF, modes, draft decoding, errors."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hir_edge.errors import ConfigError, InputError
from hir_edge.images import (
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    PreprocessConfig,
    load_image,
    preprocess,
    preprocess_batch,
)

CFG = PreprocessConfig()


def _open_clip_transform(size: int = 224, **kwargs):
    open_clip = pytest.importorskip("open_clip")
    return open_clip.image_transform(
        size, is_train=False, mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD, **kwargs
    )


def _noise_image(width: int, height: int, seed: int = 0) -> Image.Image:
    """A smooth gradient plus noise: exercises the resampling filter at every phase."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 / max(width - 1, 1), yy * 255 / max(height - 1, 1), (xx + yy) % 256])
    noisy = base.transpose(1, 2, 0) + rng.normal(0, 30, (height, width, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


def _save(img: Image.Image, path: Path, **kwargs) -> Path:
    img.save(path, **kwargs)
    return path


# ---------------------------------------------------------------- parity with open_clip


@pytest.mark.realdata
def test_preprocess_matches_open_clip_on_real_photos(bioscan_photos):
    """Measured: max |ours - open_clip| = 0.0 on all 23 photos (18 at 2880×2160, 5 at 341×256):
    same Pillow resize, same crop offsets, same float32 arithmetic."""
    transform = _open_clip_transform()
    photos = sorted(bioscan_photos.glob("*.jpg"))
    assert len(photos) == 23
    worst = 0.0
    for path in photos:
        image = load_image(path)
        ours = preprocess(image, CFG)
        theirs = transform(image).numpy()
        assert ours.shape == (3, 224, 224) and ours.dtype == np.float32
        worst = max(worst, float(np.abs(ours - theirs).max()))
    assert worst <= 1e-6


@pytest.mark.parametrize(
    "size",
    [
        (224, 224),
        (225, 224),
        (224, 225),
        (301, 299),
        (7, 300),
        (300, 7),
        (1, 1),
        (100, 50),
        (341, 256),
        (1001, 333),
    ],
)
def test_preprocess_matches_open_clip_on_odd_sizes(size):
    """Measured: max abs difference 0.0 for every size, up- and down-sampling alike."""
    transform = _open_clip_transform()
    image = _noise_image(*size, seed=sum(size))
    diff = np.abs(preprocess(image, CFG) - transform(image).numpy()).max()
    assert diff <= 1e-6


@pytest.mark.parametrize(
    ("resize_mode", "interpolation", "image_size"),
    [
        ("longest", "bicubic", 224),
        ("squash", "bicubic", 224),
        ("shortest", "bilinear", 224),
        ("shortest", "bicubic", 160),
        ("longest", "bilinear", 97),
    ],
)
def test_preprocess_matches_open_clip_other_settings(resize_mode, interpolation, image_size):
    transform = _open_clip_transform(
        image_size, resize_mode=resize_mode, interpolation=interpolation
    )
    config = PreprocessConfig(
        image_size=image_size, resize_mode=resize_mode, interpolation=interpolation
    )
    for size in [(341, 256), (256, 341), (50, 80), (image_size, image_size)]:
        image = _noise_image(*size, seed=3)
        ours = preprocess(image, config)
        assert ours.shape == (3, image_size, image_size)
        assert np.abs(ours - transform(image).numpy()).max() <= 1e-6


def test_preprocess_hand_computed_values():
    """A uniform mid-grey image normalises to (128/255 - mean) / std in every pixel."""
    out = preprocess(Image.new("RGB", (300, 250), (128, 128, 128)), CFG)
    expected = (128 / 255 - np.array(OPENAI_CLIP_MEAN)) / np.array(OPENAI_CLIP_STD)
    np.testing.assert_allclose(out.reshape(3, -1).mean(axis=1), expected, rtol=1e-6)
    np.testing.assert_allclose(out.std(axis=(1, 2)), 0.0, atol=1e-6)


def test_centre_crop_offsets_follow_torchvision_rounding():
    """A 224×227 image is not resized; torchvision crops rows round(3/2) = 2 .. 225."""
    rows = np.repeat(np.arange(227, dtype=np.uint8)[:, None], 224, axis=1)
    image = Image.fromarray(np.stack([rows] * 3, axis=2), "RGB")
    out = preprocess(image, PreprocessConfig(mean=(0, 0, 0), std=(1, 1, 1)))
    assert round(float(out[0, 0, 0]) * 255) == 2
    assert round(float(out[0, -1, 0]) * 255) == 225


def test_preprocess_batch_stacks_and_handles_empty():
    images = [_noise_image(300, 200, 1), _noise_image(200, 300, 2)]
    batch = preprocess_batch(images, CFG)
    assert batch.shape == (2, 3, 224, 224) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch[1], preprocess(images[1], CFG))
    assert preprocess_batch([], CFG).shape == (0, 3, 224, 224)


# ---------------------------------------------------------------- draft / reduce


@pytest.mark.realdata
def test_draft_decode_changes_tensor_by_a_stated_amount(bioscan_photos):
    """JPEG draft at 1/8 scale (2880×2160 → 360×270) against full decode, final 224 tensor in
    normalised units. Measured over the 18 photos: mean |diff| 0.0061 on average, 0.0102 on the
    worst photo; max |diff| 0.242 (≈17/255 of pixel value). Bounds: 0.015 and 0.35."""
    photos = sorted(bioscan_photos.glob("[A-Z]*.jpg"))
    assert len(photos) == 18
    worst_mean = worst_max = 0.0
    for path in photos:
        draft = load_image(path, min_size=224)
        assert draft.size == (360, 270)
        diff = np.abs(preprocess(draft, CFG) - preprocess(load_image(path), CFG))
        worst_mean = max(worst_mean, float(diff.mean()))
        worst_max = max(worst_max, float(diff.max()))
    assert worst_mean < 0.015
    assert worst_max < 0.35
    assert worst_mean > 0  # the draft path really decoded differently


@pytest.mark.parametrize("orientation", [1, 6, 8])
@pytest.mark.parametrize("min_size", [100, 224, 300, 449])
def test_draft_keeps_shorter_side_whatever_the_orientation(tmp_path, orientation, min_size):
    path = tmp_path / "frame.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    _noise_image(1200, 900).save(path, quality=90, exif=exif.tobytes())
    image = load_image(path, min_size=min_size)
    assert min(image.size) >= min_size
    # the scale is the largest of 1/2, 1/4, 1/8 that keeps both sides >= min_size
    scale = {100: 8, 224: 4, 300: 2, 449: 2}[min_size]
    stored = (-(-1200 // scale), -(-900 // scale))  # libjpeg rounds scaled sizes up
    assert image.size == (stored if orientation == 1 else stored[::-1])


def test_reduce_for_non_jpeg_keeps_shorter_side(tmp_path):
    path = _save(_noise_image(1000, 601), tmp_path / "big.png")
    assert load_image(path, min_size=224).size == (500, 301)  # factor 601 // 224 = 2, rounded up
    assert load_image(path, min_size=120).size == (200, 121)  # factor 5
    assert load_image(path, min_size=400).size == (1000, 601)  # factor 1: untouched
    assert load_image(path).size == (1000, 601)


# ---------------------------------------------------------------- EXIF and modes


@pytest.mark.parametrize(
    ("orientation", "size", "red_at"),
    # the red quadrant is stored top-left; where must it appear once displayed upright?
    [
        (1, (80, 40), (10, 10)),
        (3, (80, 40), (70, 30)),
        (6, (40, 80), (30, 10)),
        (8, (40, 80), (10, 70)),
        (2, (80, 40), (70, 10)),
    ],
)
def test_exif_orientation_is_applied(tmp_path, orientation, size, red_at):
    pixels = np.full((40, 80, 3), 200, dtype=np.uint8)
    pixels[:20, :40] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "oriented.jpg"
    Image.fromarray(pixels).save(path, quality=95, exif=exif.tobytes())
    image = load_image(path)
    assert image.size == size
    r, g, b = image.getpixel(red_at)
    assert r > 230 and g < 30 and b < 30
    assert image.getpixel((size[0] - 1 - red_at[0], size[1] - 1 - red_at[1]))[1] > 170


def test_grayscale_becomes_three_equal_channels(tmp_path):
    path = _save(Image.new("L", (5, 4), 77), tmp_path / "gray.png")
    image = load_image(path)
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (77, 77, 77)


def test_alpha_is_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (4, 1), (255, 0, 0, 255))
    rgba.putpixel((1, 0), (255, 0, 0, 0))  # fully transparent red → white
    rgba.putpixel((2, 0), (0, 0, 0, 128))  # half-transparent black → mid grey
    image = load_image(_save(rgba, tmp_path / "alpha.png"))
    assert image.getpixel((0, 0)) == (255, 0, 0)
    assert image.getpixel((1, 0)) == (255, 255, 255)
    assert image.getpixel((2, 0)) == (127, 127, 127)
    la = Image.new("LA", (2, 1), (0, 0))
    assert load_image(_save(la, tmp_path / "la.png")).getpixel((0, 0)) == (255, 255, 255)


def test_palette_with_and_without_transparency(tmp_path):
    pal = Image.new("P", (2, 1), 0)
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.putpixel((1, 0), 1)
    plain = load_image(_save(pal, tmp_path / "pal.png"))
    assert plain.getpixel((0, 0)) == (255, 0, 0) and plain.getpixel((1, 0)) == (0, 0, 255)
    keyed = load_image(_save(pal, tmp_path / "pal_t.png", transparency=1))
    assert keyed.getpixel((0, 0)) == (255, 0, 0) and keyed.getpixel((1, 0)) == (255, 255, 255)


def test_cmyk_tiff_and_jpeg(tmp_path):
    cmyk = Image.new("CMYK", (4, 4), (255, 0, 0, 0))  # pure cyan ink
    assert load_image(_save(cmyk, tmp_path / "c.tif")).getpixel((0, 0)) == (0, 255, 255)
    jpeg = load_image(_save(cmyk, tmp_path / "c.jpg", quality=100))
    assert jpeg.mode == "RGB"
    assert np.abs(np.array(jpeg.getpixel((0, 0))) - (0, 255, 255)).max() <= 2


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257 * 100, 32768, 65535]], dtype=np.uint16)
    path = _save(Image.fromarray(values), tmp_path / "deep.png")
    assert Image.open(path).mode == "I;16"
    image = load_image(path)
    assert [image.getpixel((x, 0))[0] for x in range(4)] == [0, 100, 128, 255]
    assert len(set(image.getpixel((2, 0)))) == 1


def test_int32_and_float_images(tmp_path):
    ints = np.array([[0, 257 * 50, 65535]], dtype=np.int32)
    path = _save(Image.fromarray(ints), tmp_path / "int.tif")
    assert Image.open(path).mode == "I"
    assert [load_image(path).getpixel((x, 0))[0] for x in range(3)] == [0, 50, 255]
    floats = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    path = _save(Image.fromarray(floats), tmp_path / "float.tif")
    assert Image.open(path).mode == "F"
    assert [load_image(path).getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]
    wide = np.array([[-10.0, 0.0, 10.0]], dtype=np.float32)  # outside [0, 1]: stretched
    path = _save(Image.fromarray(wide), tmp_path / "wide.tif")
    assert [load_image(path).getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


@pytest.mark.parametrize(("suffix", "kwargs"), [(".tif", {}), (".webp", {"lossless": True})])
def test_lossless_formats_round_trip(tmp_path, suffix, kwargs):
    original = _noise_image(31, 17)
    path = _save(original, tmp_path / f"x{suffix}", **kwargs)
    np.testing.assert_array_equal(np.asarray(load_image(path)), np.asarray(original))


def test_bytes_source_equals_path_source(tmp_path):
    path = _save(_noise_image(64, 48), tmp_path / "x.jpg")
    a = np.asarray(load_image(path.read_bytes()))
    np.testing.assert_array_equal(a, np.asarray(load_image(path)))


# ---------------------------------------------------------------- errors


def test_missing_file(tmp_path):
    path = tmp_path / "nope.jpg"
    with pytest.raises(InputError) as err:
        load_image(path)
    assert str(err.value) == f"{path}: no such file"


def test_not_an_image(tmp_path):
    path = tmp_path / "reads.jpg"
    path.write_text(">seq1\nACGT\n")
    with pytest.raises(InputError) as err:
        load_image(path)
    assert str(err.value).startswith(f"{path}: is not an image Pillow can read (cannot identify")


def test_truncated_jpeg(tmp_path):
    whole = io.BytesIO()
    _noise_image(200, 150).save(whole, "JPEG", quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    with pytest.raises(InputError) as err:
        load_image(path)
    assert str(err.value).startswith(f"{path}: is truncated or corrupt (image file is truncated")


def test_empty_file_folder_and_empty_bytes(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.png: is empty \(0 bytes\)$"):
        load_image(empty)
    with pytest.raises(InputError, match=r"^<bytes>: is empty \(0 bytes\)$"):
        load_image(b"")
    with pytest.raises(InputError, match=r"is a folder, not an image file$"):
        load_image(tmp_path)


# ---------------------------------------------------------------- config


def test_config_round_trips_through_json():
    config = PreprocessConfig(image_size=160, interpolation="bilinear", resize_mode="squash")
    again = PreprocessConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and isinstance(again.mean, tuple)


def test_config_rejects_unknown_keys_and_bad_values():
    with pytest.raises(
        ConfigError, match=r"preprocessing: unknown key 'crop_pct' \(allowed: image_size"
    ):
        PreprocessConfig.from_dict({"image_size": 224, "crop_pct": 0.9})
    with pytest.raises(ConfigError, match="interpolation 'lanczos' is not supported"):
        PreprocessConfig(interpolation="lanczos")
    with pytest.raises(ConfigError, match="resize_mode"):
        PreprocessConfig(resize_mode="pad")
    with pytest.raises(ConfigError, match="image_size must be at least 1"):
        PreprocessConfig(image_size=0)


def test_module_does_not_import_torch():
    code = "import sys, hir_edge.images; print(sorted({'torch', 'open_clip'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_jpeg_cut_inside_its_headers(tmp_path):
    # a field camera's JPEG carries tens of kB of metadata before the pixels: cut inside it,
    # Pillow fails while *opening* the file, not while decoding it
    whole = io.BytesIO()
    _noise_image(64, 48).save(whole, "JPEG", icc_profile=bytes(range(256)) * 80)
    path = tmp_path / "cut.jpg"
    path.write_bytes(whole.getvalue()[:300])
    with pytest.raises(InputError) as err:
        load_image(path)
    assert str(err.value) == f"{path}: is truncated or corrupt (Truncated File Read)"
