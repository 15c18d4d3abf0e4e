"""Procedural specimen photos whose look follows the taxonomy.

A photo is drawn from a species' :class:`~hir_edge.data.synth.world.Traits` and per-specimen
nuisance. Scales are chosen so that the hierarchy survives blur in the right order: body plan
(order), colours (family) and large pattern marks (genus) are many pixels wide, while the
species' fine detail is a few isolated glyphs 1–1.5 px across at a 64 px model input, which
a k=5 box blur there wipes out.

Everything is drawn with Pillow ``ImageDraw`` polygons in body coordinates (head at y = -1,
tail at y = +1) mapped through one affine transform (rotation, scale, shift), at twice the
stored size, then reduced 2x for antialiasing. Patterns live in "surface" coordinates: each
main surface (elytra, wing, abdomen) is an ellipse and a mark is a polygon in its unit disk,
clamped inside it, so marks never spill over the outline.

Nuisance draws come first and in a fixed number, so two specimens drawn with equally seeded
generators share pose, background, lighting and jitter whatever their traits: that is what
lets a test compare species against genera with everything else held equal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from hir_edge.data.synth.world import RGB, Traits

BACKGROUNDS = ("plain", "gradient", "speckled")
_EXTENT = 2.3  # body units across the specimen's frame (legs and antennae may reach past)
_N_JITTER = 16
_REFERENCE_SIZE = 128  # species glyphs are sized for this photo size, and scale with it


@dataclass(frozen=True)
class Nuisance:
    """Per-specimen conditions that say nothing about the taxon."""

    angle: float  # rotation, radians
    scale: float  # share of the frame the specimen spans (0.6–1.0)
    shift: tuple[float, float]  # centre offset, share of the free margin (-1..1)
    background: str
    bg_colours: tuple[RGB, RGB]
    bg_seed: int
    brightness: float
    contrast: float
    temperature: float  # > 0 warmer (more red, less blue)
    jitter: tuple[float, ...]  # standard normals for small trait jitter


def _rgb(h: float, s: float, v: float) -> RGB:
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return round(r * 255), round(g * 255), round(b * 255)


def sample_nuisance(rng: np.random.Generator) -> Nuisance:
    """Draw pose, background and lighting (always the same number of draws)."""
    u = rng.random(12)
    hue = u[5]
    base = _rgb(hue, 0.35 * u[6], 0.45 + 0.5 * u[7])
    other = _rgb(hue + 0.1 * (u[8] - 0.5), 0.35 * u[6], 0.45 + 0.5 * (1 - u[7]))
    return Nuisance(
        angle=2 * math.pi * u[0],
        scale=0.6 + 0.4 * u[1],
        shift=(2 * u[2] - 1, 2 * u[3] - 1),
        background=BACKGROUNDS[int(u[4] * len(BACKGROUNDS)) % len(BACKGROUNDS)],
        bg_colours=(base, other),
        bg_seed=int(rng.integers(2**32)),
        brightness=0.8 + 0.4 * u[9],
        contrast=0.8 + 0.4 * u[10],
        temperature=0.16 * (u[11] - 0.5),
        jitter=tuple(float(x) for x in rng.standard_normal(_N_JITTER)),
    )


def _background(n: Nuisance, side: int) -> Image.Image:
    c0 = np.array(n.bg_colours[0], np.float32)
    c1 = np.array(n.bg_colours[1], np.float32)
    if n.background == "plain":
        return Image.new("RGB", (side, side), n.bg_colours[0])
    rng = np.random.default_rng(n.bg_seed)
    if n.background == "gradient":
        phi = 2 * math.pi * rng.random()
        g = np.linspace(-1, 1, 16, dtype=np.float32)
        ramp = (np.cos(phi) * g[None, :] + np.sin(phi) * g[:, None]) / 2.0 + 0.5
        small = c0 * (1 - ramp[..., None]) + c1 * ramp[..., None]
        return Image.fromarray(small.clip(0, 255).astype(np.uint8)).resize(
            (side, side), Image.BILINEAR
        )
    half = side // 2
    noise = rng.normal(0.0, 14.0, (half, half, 1)).astype(np.float32)
    specks = (rng.random((half, half, 1)) < 0.015) * (c1 - c0 - 60.0)
    arr = (c0 + noise + specks).clip(0, 255).astype(np.uint8)
    return Image.fromarray(arr).resize((side, side), Image.NEAREST)


def _affine(cx: float, cy: float, a: float, b: float, rot: float) -> np.ndarray:
    """3x3 map from a surface's unit disk (u, v) to body coordinates."""
    c, s = math.cos(rot), math.sin(rot)
    return np.array([[a * c, -b * s, cx], [a * s, b * c, cy], [0.0, 0.0, 1.0]])


_MIRROR = np.diag([-1.0, 1.0, 1.0])
_ANGLES = np.linspace(0, 2 * np.pi, 33)[:-1]
_CIRCLE = np.stack([np.cos(_ANGLES), np.sin(_ANGLES)], 1)  # unit circle, 32 vertices


def _clamp(uv: np.ndarray, radius: float = 0.95) -> np.ndarray:
    r = np.hypot(uv[:, 0], uv[:, 1])
    return uv * np.minimum(1.0, radius / np.maximum(r, 1e-9))[:, None]


def _shade(rgb: Sequence[float], f: float) -> RGB:
    return tuple(int(min(255, max(0, round(c * f)))) for c in rgb)  # type: ignore[return-value]


class _Canvas:
    """An ImageDraw with the specimen's pose: body coordinates in, pixels out."""

    def __init__(self, image: Image.Image, nuisance: Nuisance):
        side = image.width
        self.draw = ImageDraw.Draw(image, "RGBA")
        self.unit = nuisance.scale * side / _EXTENT  # pixels per body unit
        margin = (1.0 - nuisance.scale) * side / 2 * 0.9
        centre = (side / 2 + margin * nuisance.shift[0], side / 2 + margin * nuisance.shift[1])
        c, s = math.cos(nuisance.angle), math.sin(nuisance.angle)
        u = self.unit
        self.pose = np.array([[u * c, -u * s, centre[0]], [u * s, u * c, centre[1]], [0, 0, 1]])

    def px(self, pts: np.ndarray, m: np.ndarray | None = None) -> list[float]:
        full = self.pose if m is None else self.pose @ m
        out = pts @ full[:2, :2].T + full[:2, 2]
        return out.ravel().tolist()

    def polygon(self, uv: np.ndarray, m: np.ndarray, fill, outline=None) -> None:
        self.draw.polygon(self.px(uv, m), fill=fill, outline=outline)

    def ellipse(self, cx, cy, a, b, rot=0.0, fill=None, outline=None, mirror=False) -> None:
        m = _affine(cx, cy, a, b, rot)
        self.polygon(_CIRCLE, _MIRROR @ m if mirror else m, fill, outline)

    def line(self, pts: Sequence[tuple[float, float]], fill, width: float, mirror=False) -> None:
        arr = np.asarray(pts, dtype=float)
        if mirror:
            arr = arr * np.array([-1.0, 1.0])
        self.draw.line(
            self.px(arr), fill=fill, width=max(1, round(width * self.unit)), joint="curve"
        )

    def dot(self, xy: np.ndarray, radius_px: float, fill) -> None:
        x, y = xy
        self.draw.ellipse((x - radius_px, y - radius_px, x + radius_px, y + radius_px), fill=fill)


@dataclass(frozen=True)
class _Surface:
    """An elliptic surface that carries the genus pattern and the species detail."""

    m: np.ndarray  # unit disk -> body coordinates (mirror included)
    colour: RGB


def _surface(cv: _Canvas, cx, cy, a, b, rot, colour, mirror=False, alpha=255) -> _Surface:
    m = _affine(cx, cy, a, b, rot)
    if mirror:
        m = _MIRROR @ m
    fill = (*colour, alpha)
    cv.polygon(_CIRCLE, m, fill, outline=(*_shade(colour, 0.6), alpha))
    return _Surface(m, colour)


# --------------------------------------------------------------------------- appendages
def _legs(cv, attach_y, x0, length, spread, colour, width, jit, pairs_forward=True) -> None:
    n = len(attach_y)
    for i, y in enumerate(attach_y):
        # Front legs reach forward, hind legs backward; knee outward.
        t = (i / max(n - 1, 1)) * 2 - 1 if pairs_forward else 0.0
        swing = spread * t + 0.08 * jit[i % len(jit)]
        knee = (x0 + 0.45 * length, y + 0.35 * length * math.sin(swing) - 0.05 * length)
        foot = (x0 + 0.75 * length, y + 0.9 * length * math.sin(swing) + 0.1 * length)
        for mirror in (False, True):
            cv.line([(x0, y), knee, foot], colour, width, mirror=mirror)


def _antennae(cv, head_y, length, colour, width, jit, feathery=False) -> None:
    if length <= 0:
        return
    base = (0.05, head_y)
    bend = (0.18 * length, head_y - 0.45 * length)
    tip = (0.42 * length + 0.04 * jit[0], head_y - 0.75 * length)
    for mirror in (False, True):
        cv.line([base, bend, tip], colour, width * (1.8 if feathery else 1.0), mirror=mirror)


# --------------------------------------------------------------------------- body plans
def _beetle(cv, o, p, jit) -> tuple[list[_Surface], list[_Surface]]:
    s = o.aspect
    _legs(cv, (-0.4, -0.15, 0.1), 0.2, 0.55 * o.leg_length, 0.9, p.legs, 0.045, jit)
    _antennae(cv, -0.92, 0.45 * o.antenna_length, p.legs, 0.03, jit[3:])
    cv.ellipse(0, -0.84, 0.17, 0.14, fill=p.body)
    cv.ellipse(0, -0.56, 0.31 * s, 0.19, fill=p.body, outline=_shade(p.body, 0.6))
    elytra = _surface(cv, 0, 0.22, 0.43 * s, 0.64, 0.0, p.wing)
    return [elytra], [elytra]


def _beetle_overlay(cv, o, p, jit) -> None:
    cv.line([(0, -0.4), (0, 0.84)], _shade(p.wing, 0.45), 0.022)
    for side in (False, True):
        cv.ellipse(0.09, -0.9, 0.045, 0.045, fill=(20, 15, 10), mirror=side)


def _fly(cv, o, p, jit):
    s = o.aspect
    _legs(cv, (-0.4, -0.28, -0.16), 0.16, 0.6 * o.leg_length, 0.8, p.legs, 0.028, jit)
    _antennae(cv, -0.8, 0.18 * o.antenna_length, p.legs, 0.03, jit[3:])
    cv.ellipse(0, -0.3, 0.26 * s, 0.27, fill=p.body, outline=_shade(p.body, 0.6))
    abdomen = _surface(cv, 0, 0.32, 0.25 * s, 0.4, 0.0, p.wing)
    cv.ellipse(0, -0.66, 0.22, 0.15, fill=_shade(p.body, 0.8))
    for side in (False, True):
        cv.ellipse(0.13, -0.7, 0.1, 0.12, fill=(150, 35, 25), mirror=side)
    spread = 0.55 + o.wing_spread + 0.05 * jit[5]
    wings = [
        _surface(cv, 0.4, 0.1, 0.14, 0.5, -spread, _shade(p.wing, 1.15), mirror=m, alpha=150)
        for m in (False, True)
    ]
    return [abdomen, *wings], [abdomen]


def _moth(cv, o, p, jit):
    s = o.aspect
    _legs(cv, (-0.35, -0.2, -0.05), 0.08, 0.35 * o.leg_length, 0.6, p.legs, 0.025, jit)
    spread = 0.25 + o.wing_spread + 0.05 * jit[5]
    hind_colour = _shade(p.wing, 0.8)
    for m in (False, True):
        _surface(cv, 0.36, 0.28, 0.38 * s, 0.3, spread + 0.35, hind_colour, mirror=m)
    fore = [_surface(cv, 0.5, -0.2, 0.56 * s, 0.3, spread, p.wing, mirror=m) for m in (False, True)]
    cv.ellipse(0, 0.05, 0.1, 0.62, fill=p.body)
    cv.ellipse(0, -0.62, 0.11, 0.1, fill=p.body)
    _antennae(cv, -0.68, 0.55 * o.antenna_length, p.legs, 0.025, jit[3:], feathery=True)
    return fore, fore


def _wasp(cv, o, p, jit):
    s = o.aspect
    _legs(cv, (-0.5, -0.4, -0.3), 0.12, 0.75 * o.leg_length, 0.9, p.legs, 0.028, jit)
    _antennae(cv, -0.92, 0.6 * o.antenna_length, p.legs, 0.026, jit[3:])
    cv.ellipse(0, -0.5, 0.19 * s, 0.2, fill=p.body, outline=_shade(p.body, 0.6))
    cv.ellipse(0, -0.22, 0.045, 0.11, fill=p.body)
    abdomen = _surface(cv, 0, 0.38, 0.25 * s, 0.5, 0.0, p.wing)
    cv.ellipse(0, -0.82, 0.16, 0.13, fill=p.body)
    for side in (False, True):
        cv.ellipse(0.11, -0.84, 0.055, 0.09, fill=(25, 20, 15), mirror=side)
    spread = 1.0 + o.wing_spread + 0.05 * jit[5]
    for m in (False, True):
        cv.ellipse(0.42, -0.28, 0.1, 0.42, -spread, fill=(*_shade(p.wing, 1.2), 110), mirror=m)
        cv.ellipse(0.35, -0.12, 0.07, 0.3, -spread - 0.3, fill=(*_shade(p.wing, 1.2), 90), mirror=m)
    return [abdomen], [abdomen]


def _wasp_overlay(cv, o, p, jit) -> None:
    colour = _shade(p.wing, 0.5)
    for y in (0.12, 0.38, 0.62):
        w = 0.25 * o.aspect * math.sqrt(max(0.0, 1 - ((y - 0.38) / 0.5) ** 2))
        cv.line([(-w * 0.95, y), (w * 0.95, y)], colour, 0.018)


def _bug(cv, o, p, jit):
    s = o.aspect
    _legs(cv, (-0.3, -0.1, 0.12), 0.28, 0.5 * o.leg_length, 0.8, p.legs, 0.035, jit)
    _antennae(cv, -0.82, 0.55 * o.antenna_length, p.legs, 0.028, jit[3:])
    shield = np.array(
        [(-0.42 * s, -0.5), (0.42 * s, -0.5), (0.5 * s, 0.0), (0.32 * s, 0.62), (0.0, 0.86),
         (-0.32 * s, 0.62), (-0.5 * s, 0.0)]
    )  # fmt: skip
    cv.polygon(shield, np.eye(3), p.body, outline=_shade(p.body, 0.6))
    cv.ellipse(0, -0.66, 0.16, 0.17, fill=p.body)
    corium = _surface(cv, 0, 0.12, 0.37 * s, 0.55, 0.0, p.wing)
    return [corium], [corium]


def _bug_overlay(cv, o, p, jit) -> None:
    tri = np.array([(-0.2 * o.aspect, -0.46), (0.2 * o.aspect, -0.46), (0.0, -0.02)])
    cv.polygon(tri, np.eye(3), p.body, outline=_shade(p.body, 0.6))
    for side in (False, True):
        cv.ellipse(0.1, -0.74, 0.045, 0.045, fill=(25, 20, 15), mirror=side)


def _dragonfly(cv, o, p, jit):
    _legs(cv, (-0.5, -0.42, -0.34), 0.08, 0.3 * o.leg_length, 0.6, p.legs, 0.025, jit)
    spread = o.wing_spread + 0.04 * jit[5]
    wings = []
    for m in (False, True):
        wings.append(
            _surface(cv, 0.58, -0.46, 0.6, 0.12, spread - 0.1, p.wing, mirror=m, alpha=170)
        )
        wings.append(
            _surface(cv, 0.56, -0.22, 0.58, 0.14, spread + 0.12, p.wing, mirror=m, alpha=170)
        )
    cv.ellipse(0, 0.32, 0.07 * o.aspect, 0.66, fill=p.body, outline=_shade(p.body, 0.6))
    cv.ellipse(0, -0.42, 0.13 * o.aspect, 0.17, fill=p.body)
    for side in (False, True):
        cv.ellipse(0.08, -0.66, 0.1, 0.1, fill=_shade(p.accent, 0.7), mirror=side)
    _antennae(cv, -0.74, 0.12 * o.antenna_length, p.legs, 0.02, jit[3:])
    return wings, [wings[0], wings[2]]


def _spider(cv, o, p, jit):
    s = o.aspect
    length = 0.85 * o.leg_length
    for i, y in enumerate((-0.5, -0.42, -0.34, -0.26)):
        swing = (-0.9, -0.35, 0.25, 0.8)[i] + 0.08 * jit[i]
        knee = (0.2 + 0.4 * length * math.cos(swing), y + 0.4 * length * math.sin(swing) - 0.15)
        foot = (0.2 + 0.8 * length * math.cos(swing), y + 0.85 * length * math.sin(swing) + 0.05)
        for m in (False, True):
            cv.line([(0.12, y), knee, foot], p.legs, 0.04, mirror=m)
    cv.ellipse(0, -0.4, 0.24 * s, 0.27, fill=p.body, outline=_shade(p.body, 0.6))
    for m in (False, True):
        cv.line([(0.06, -0.64), (0.1, -0.78)], p.legs, 0.04, mirror=m)
        cv.ellipse(0.06, -0.58, 0.035, 0.035, fill=(20, 15, 10), mirror=m)
    abdomen = _surface(cv, 0, 0.3, 0.36 * s, 0.46, 0.0, p.wing)
    return [abdomen], [abdomen]


def _elongate(cv, o, p, jit):
    s = o.aspect
    ys = np.linspace(-0.7, 0.7, 8)
    _legs(cv, tuple(ys), 0.15, 0.32 * o.leg_length, 0.3, p.legs, 0.028, jit)
    _antennae(cv, -0.98, 0.55 * o.antenna_length, p.legs, 0.026, jit[3:])
    for m in (False, True):
        cv.line([(0.05, 0.86), (0.16, 1.05)], p.legs, 0.03, mirror=m)
    body = _surface(cv, 0, 0.0, 0.21 * s, 0.9, 0.0, p.wing)
    cv.ellipse(0, -0.9, 0.15, 0.11, fill=p.body)
    return [body], [body]


def _elongate_overlay(cv, o, p, jit) -> None:
    colour = _shade(p.wing, 0.55)
    for y in np.linspace(-0.6, 0.75, 7):
        w = 0.21 * o.aspect * math.sqrt(max(0.0, 1 - (y / 0.9) ** 2))
        cv.line([(-w, y), (w, y)], colour, 0.014)


_PLANS = {
    "beetle": (_beetle, _beetle_overlay),
    "fly": (_fly, None),
    "moth": (_moth, None),
    "wasp": (_wasp, _wasp_overlay),
    "bug": (_bug, _bug_overlay),
    "dragonfly": (_dragonfly, None),
    "spider": (_spider, None),
    "elongate": (_elongate, _elongate_overlay),
}


# --------------------------------------------------------------------------- pattern & detail
def _band(u0: float, u1: float, v0: float, v1: float, n: int = 9) -> np.ndarray:
    """A rectangle in surface units, densely sampled so clamping follows the rim."""
    us, vs = np.linspace(u0, u1, n), np.linspace(v0, v1, n)
    return np.concatenate(
        [np.stack([us, np.full(n, v0)], 1), np.stack([np.full(n, u1), vs], 1),
         np.stack([us[::-1], np.full(n, v1)], 1), np.stack([np.full(n, u0), vs[::-1]], 1)]
    )  # fmt: skip


def _draw_pattern(cv: _Canvas, surf: _Surface, pat, colour: RGB, jit) -> None:
    w = pat.size
    off = pat.offset + 0.04 * jit[6]
    centres = np.linspace(-0.5, 0.5, pat.count) if pat.count > 1 else np.array([0.0])
    if pat.kind == "stripes":
        for c in centres + 0.6 * off:
            cv.polygon(_clamp(_band(c - w, c + w, -1.1, 1.1)), surf.m, colour)
    elif pat.kind == "bands":
        for c in centres + off:
            cv.polygon(_clamp(_band(-1.1, 1.1, c - w, c + w)), surf.m, colour)
    elif pat.kind == "chevrons":
        us = np.linspace(-1.1, 1.1, 15)
        for c in centres * 1.2 + off:
            top = np.stack([us, c + 0.45 * np.abs(us)], 1)
            bottom = np.stack([us[::-1], c + 0.45 * np.abs(us[::-1]) + 2 * w], 1)
            cv.polygon(_clamp(np.concatenate([top, bottom])), surf.m, colour)
    elif pat.kind == "spots":
        for cu, cvv in pat.layout:
            disk = _CIRCLE * w + np.array([cu, cvv + 0.3 * off])
            cv.polygon(_clamp(disk), surf.m, colour)
    else:  # eyespots: ring of accent, dark pupil, light highlight
        for cu, cvv in pat.layout:
            centre = np.array([cu * 0.8, cvv * 0.8 + 0.3 * off])
            cv.polygon(_clamp(_CIRCLE * w + centre), surf.m, colour)
            cv.polygon(_clamp(_CIRCLE * w * 0.55 + centre), surf.m, (20, 15, 10))
            cv.polygon(_clamp(_CIRCLE * w * 0.2 + centre), surf.m, (245, 245, 235))


def _luma(rgb: Sequence[int]) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _draw_detail(cv: _Canvas, surf: _Surface, det, colour: RGB, px_scale: float) -> None:
    """Species glyphs about 2–3 px across in a 128 px photo, so 1–1.5 px at a 64 px model input.

    ``px_scale`` is the number of render pixels per pixel of a 128 px photo.
    """
    full = cv.pose @ surf.m
    centres = np.asarray(det.layout, float) @ full[:2, :2].T + full[:2, 2]
    width = max(1, round(1.5 * px_scale))
    reach = 1.4 * px_scale  # half-length of a dash, in render pixels
    d = np.array([math.cos(det.angle), math.sin(det.angle)]) * reach
    n = np.array([-d[1], d[0]])
    for x, y in centres:
        if det.kind == "specks":
            cv.dot((x, y), 1.1 * px_scale, colour)
        elif det.kind == "dashes":
            cv.draw.line([x - d[0], y - d[1], x + d[0], y + d[1]], fill=colour, width=width)
        elif det.kind == "crosses":
            cv.draw.line([x - d[0], y - d[1], x + d[0], y + d[1]], fill=colour, width=width)
            cv.draw.line([x - n[0], y - n[1], x + n[0], y + n[1]], fill=colour, width=width)
        else:  # rings: a hollow glyph
            r = 1.7 * px_scale
            cv.draw.ellipse((x - r, y - r, x + r, y + r), outline=colour, width=max(1, width - 1))


# --------------------------------------------------------------------------- entry point
def _lighting(img: Image.Image, n: Nuisance) -> Image.Image:
    arr = np.asarray(img, dtype=np.float32)
    mean = arr.mean()
    arr = (arr - mean) * n.contrast + mean
    gain = n.brightness * np.array([1 + n.temperature, 1.0, 1 - n.temperature], np.float32)
    return Image.fromarray((arr * gain).clip(0, 255).astype(np.uint8))


def _jitter_colour(rgb: RGB, z: float) -> RGB:
    return _shade(rgb, 1.0 + 0.05 * z)


def draw_specimen(traits: Traits, rng: np.random.Generator, size: int = 128) -> Image.Image:
    """Draw one specimen photo.

    Args:
        traits: the species' traits (body plan, palette, pattern, detail).
        rng: per-specimen generator for nuisance (pose, scale, background, lighting, jitter).
        size: side of the square RGB image returned, in pixels.

    Returns:
        A ``size`` x ``size`` RGB image.
    """
    nuisance = sample_nuisance(rng)
    jit = nuisance.jitter
    side = 2 * size
    image = _background(nuisance, side)
    cv = _Canvas(image, nuisance)
    pal = traits.palette
    pal = type(pal)(
        body=_jitter_colour(pal.body, jit[7]),
        wing=_jitter_colour(pal.wing, jit[8]),
        accent=_jitter_colour(pal.accent, jit[9]),
        legs=pal.legs,
        hue=pal.hue,
    )
    plan, overlay = _PLANS[traits.order.plan]
    pattern_surfaces, detail_surfaces = plan(cv, traits.order, pal, jit)
    for surf in pattern_surfaces:
        _draw_pattern(cv, surf, traits.pattern, pal.accent, jit)
    if overlay is not None:
        overlay(cv, traits.order, pal, jit)
    # Glyph colour from the un-jittered palette, so a species' marks never flip colour.
    base = traits.palette
    dark_surface = _luma(base.wing) < 120
    ink = (245, 240, 225) if dark_surface else (15, 10, 5)
    for surf in detail_surfaces:
        _draw_detail(cv, surf, traits.detail, ink, px_scale=side / _REFERENCE_SIZE)
    return _lighting(image.reduce(2), nuisance)
