"""Is there anything in the photo? A blank frame is no specimen.

A lens cap left on, a flash-blown white frame or an empty grey scan still goes through the image
encoder, and its embedding lands somewhere among the references: before this check the
EU-Moths bundle named a blank white frame to species. The DNA branch refuses a homopolymer
read for the same reason (:mod:`hir_edge.dna.complexity`).

The test is the spread of the frame's brightness on a small thumbnail (averaging over blocks
removes most sensor noise): a uniform frame has almost none. The threshold sits far below every
real photo the project holds: the lowest spread among the 2,205 EU-Moths photos and the 23
BIOSCAN photos is 4.35 grey levels (a pale moth on a pale sheet), the threshold 2.0.

numpy and Pillow only (this runs in the field).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

THUMBNAIL = 64  # pixels per side of the thumbnail the spread is measured on
MIN_SPREAD = 2.0  # standard deviation of the thumbnail's brightness, in 8-bit grey levels


def brightness_spread(image: Image.Image) -> float:
    """Standard deviation of the brightness (Pillow's 'L': ITU-R 601 luma) of a
    :data:`THUMBNAIL`-pixel thumbnail of the whole frame, in 8-bit grey levels."""
    thumb = image.convert("L").resize((THUMBNAIL, THUMBNAIL), Image.Resampling.BILINEAR)
    return float(np.asarray(thumb, dtype=np.float64).std())


def blank_frame(image: Image.Image) -> str | None:
    """Why the photo shows nothing to identify (None when it shows something)."""
    spread = brightness_spread(image)
    if spread >= MIN_SPREAD:
        return None
    return (
        f"is a blank frame (brightness varies by {spread:.2f} grey levels, under "
        f"{MIN_SPREAD:g}): nothing to identify"
    )
