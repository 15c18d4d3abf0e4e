"""Blank frames: told apart from every real photo the project holds."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hir_edge.images import image_files, load_image
from hir_edge.photo_qc import MIN_SPREAD, blank_frame, brightness_spread


def _striped(low: int, high: int) -> Image.Image:
    """A grey 64 × 64 frame (the thumbnail's own size: no resampling) of alternating rows."""
    rows = np.where(np.arange(64) % 2 == 0, low, high).astype(np.uint8)
    return Image.fromarray(np.repeat(np.broadcast_to(rows[:, None], (64, 64))[..., None], 3, 2))


def test_spread_by_hand():
    # half the pixels at 100 and half at 104: standard deviation 2.0, on the threshold (kept)
    assert brightness_spread(_striped(100, 104)) == pytest.approx(2.0)
    assert blank_frame(_striped(100, 104)) is None
    assert brightness_spread(_striped(100, 103)) == pytest.approx(1.5)
    assert blank_frame(_striped(100, 103)) == (
        "is a blank frame (brightness varies by 1.50 grey levels, under 2): nothing to identify"
    )


@pytest.mark.parametrize("colour", [(255, 255, 255), (128, 128, 128), (0, 0, 0)])
def test_uniform_and_noisy_blank_frames(colour):
    frame = Image.new("RGB", (2880, 2160), colour)
    assert brightness_spread(frame) == 0.0 and blank_frame(frame) is not None
    # a lens cap: dark, with sensor noise of 3 grey levels per pixel, averaged away
    noise = np.random.default_rng(0).normal(0, 3, (480, 640, 3))
    noisy = np.clip(np.asarray(frame.resize((640, 480)), float) + noise, 0, 255)
    assert brightness_spread(Image.fromarray(noisy.astype(np.uint8))) < MIN_SPREAD


def test_no_real_photo_is_a_blank_frame(eu_moths, bioscan_photos):
    """Every EU-Moths and BIOSCAN photo, decoded as ``identify`` decodes them for a 128-px
    model (the EU-Moths bundle's); the lowest spread (a pale moth on a pale sheet) is twice
    the threshold."""
    photos = image_files(eu_moths / "images") + image_files(bioscan_photos)
    spreads = [brightness_spread(load_image(p, min_size=256)) for p in photos]
    assert len(photos) == 2228
    assert min(spreads) == pytest.approx(4.35, abs=0.01)
