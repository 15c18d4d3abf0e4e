"""The paper's inference-time degradation models (METHOD.md §5): noisy DNA reads, blurred photos.

They are used only to evaluate robustness, never in training. Every random draw comes from
``specimen_rng(seed, index)``, so specimen ``index`` is degraded the same way whatever the batch
size, order or number of workers. Each step draws its random numbers whether or not its
probability is zero (common random numbers): at a fixed seed, the bases hit at p_sub = 0.01 are
a subset of those hit at p_sub = 0.03, which makes severity sweeps smooth rather than noisy.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from PIL import Image

BASES = "ACGT"
_BASE_CODES = np.frombuffer(BASES.encode("ascii"), dtype=np.uint8)
_N = ord("N")
# ASCII code -> index 0..3 for A, C, G, T; 255 for anything else (N, IUPAC codes, gaps).
_BASE_INDEX = np.full(256, 255, dtype=np.uint8)
_BASE_INDEX[_BASE_CODES] = np.arange(4, dtype=np.uint8)
_BASE_INDEX.flags.writeable = False

_DNA_FIELDS = ("p_sub", "p_n", "p_indel", "dropout_frac", "truncate_frac")


@dataclass(frozen=True)
class DnaNoise:
    """Rates of the five DNA degradations, applied in this order by ``degrade_dna``.

    Attributes:
        p_sub: probability that a base (A/C/G/T) is replaced by one of the other three.
        p_n: probability that a position is masked to 'N' (an ambiguous base call).
        p_indel: probability per position of an indel; half insert a random base after the
            position, half delete it (shifts the reading frame).
        dropout_frac: one contiguous run of round(dropout_frac · length) positions becomes 'N'.
        truncate_frac: the last round(truncate_frac · length) bases are removed.
    """

    p_sub: float = 0.0
    p_n: float = 0.0
    p_indel: float = 0.0
    dropout_frac: float = 0.0
    truncate_frac: float = 0.0

    def __post_init__(self) -> None:
        for name in _DNA_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
            object.__setattr__(self, name, float(value))

    @property
    def is_identity(self) -> bool:
        return all(getattr(self, name) == 0.0 for name in _DNA_FIELDS)


@dataclass(frozen=True)
class DegradationPreset:
    """A named severity: DNA noise rates plus the image blur kernel (k×k box, 1 = no blur)."""

    name: str
    dna: DnaNoise
    blur_kernel: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.blur_kernel, bool) or not isinstance(self.blur_kernel, int):
            raise ValueError(f"blur_kernel must be an integer >= 1, got {self.blur_kernel!r}")
        if self.blur_kernel < 1:
            raise ValueError(f"blur_kernel must be >= 1, got {self.blur_kernel}")

    def describe(self) -> str:
        """One line with every value, printed in each report so results can be reproduced."""
        d = self.dna
        return (
            f"degradation preset={self.name} p_sub={d.p_sub:g} p_n={d.p_n:g} "
            f"p_indel={d.p_indel:g} dropout={d.dropout_frac:g} truncate={d.truncate_frac:g} "
            f"blur_kernel={self.blur_kernel}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dna": dataclasses.asdict(self.dna),
            "blur_kernel": self.blur_kernel,
        }

    def with_values(self, **values: float | int | None) -> DegradationPreset:
        """Override single values (``p_sub``, …, ``truncate_frac``, ``blur_kernel``).

        ``None`` values are ignored (convenient for optional CLI flags). When anything changes
        the name gains a ``-custom`` suffix, so a report never shows modified values under a
        preset's plain name.
        """
        given = {key: value for key, value in values.items() if value is not None}
        unknown = sorted(set(given) - {*_DNA_FIELDS, "blur_kernel"})
        if unknown:
            allowed = ", ".join((*_DNA_FIELDS, "blur_kernel"))
            raise ValueError(f"unknown degradation value(s) {', '.join(unknown)}; use {allowed}")
        blur = int(given.pop("blur_kernel", self.blur_kernel))
        dna = dataclasses.replace(self.dna, **given)
        if dna == self.dna and blur == self.blur_kernel:
            return self
        name = self.name if self.name.endswith("-custom") else f"{self.name}-custom"
        return DegradationPreset(name=name, dna=dna, blur_kernel=blur)

    def scaled(self, factor: float) -> DegradationPreset:
        """The same preset at ``factor`` × its severity, for a severity sweep.

        DNA rates are multiplied (capped at 1); the blur kernel becomes 1 + round((k-1)·factor),
        so factor 0 is the identity and factor 1 the preset itself.
        """
        if factor < 0:
            raise ValueError(f"severity factor must be >= 0, got {factor}")
        dna = DnaNoise(**{f: min(1.0, getattr(self.dna, f) * factor) for f in _DNA_FIELDS})
        blur = 1 + round((self.blur_kernel - 1) * factor)
        return DegradationPreset(name=f"{self.name}x{factor:g}", dna=dna, blur_kernel=blur)


# The paper's values were lost (METHOD.md §5); only "10% truncation" survives. `paper` puts
# each DNA error type at a few percent, roughly a raw field nanopore read after basecalling,
# and a 5×5 blur at 224 px (a visibly soft but recognisable specimen). `mild` is about a third
# of that (a good consensus read, slight defocus); `severe` doubles it (raw R9-era nanopore
# error rates, strong defocus), so the three bracket the paper's setting for a severity sweep.
PRESETS: Mapping[str, DegradationPreset] = MappingProxyType(
    {
        "none": DegradationPreset("none", DnaNoise(), blur_kernel=1),
        "mild": DegradationPreset(
            "mild",
            DnaNoise(p_sub=0.01, p_n=0.01, p_indel=0.003, dropout_frac=0.05, truncate_frac=0.05),
            blur_kernel=3,
        ),
        "paper": DegradationPreset(
            "paper",
            DnaNoise(p_sub=0.03, p_n=0.03, p_indel=0.01, dropout_frac=0.10, truncate_frac=0.10),
            blur_kernel=5,
        ),
        "severe": DegradationPreset(
            "severe",
            DnaNoise(p_sub=0.06, p_n=0.06, p_indel=0.02, dropout_frac=0.20, truncate_frac=0.20),
            blur_kernel=9,
        ),
    }
)


def get_preset(name: str | DegradationPreset) -> DegradationPreset:
    """The preset called ``name`` (a preset is returned as it is); an unknown name lists the
    presets and suggests a close one."""
    if isinstance(name, DegradationPreset):
        return name
    if name in PRESETS:
        return PRESETS[name]
    close = difflib.get_close_matches(name, list(PRESETS), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"unknown degradation preset {name!r}; choose one of {', '.join(PRESETS)}.{hint}"
    )


def specimen_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of specimen ``index`` under run ``seed`` (independent of batching)."""
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be >= 0, got seed={seed}, index={index}")
    return np.random.default_rng([seed, index])


def degrade_dna(seq: str, noise: DnaNoise, rng: np.random.Generator) -> str:
    """Apply the five DNA degradations of METHOD.md §5 in order.

    1. substitution: each A/C/G/T becomes one of the other three (uniformly), prob ``p_sub``;
       N and other IUPAC codes are not base calls and are left alone;
    2. masking: each position becomes 'N' with prob ``p_n``;
    3. indels: each position, with prob ``p_indel``, is deleted or followed by an inserted
       random base (a fair coin picks which);
    4. dropout: one run of round(dropout_frac · L) positions, at a uniform start, becomes 'N';
    5. truncation: the last round(truncate_frac · L) bases are removed.
    L in steps 4 and 5 is the length after step 3; rounding is Python's ``round``.

    Args:
        seq: the read (upper-cased first).
        noise: the rates.
        rng: the specimen's generator (see ``specimen_rng``).

    Returns:
        The degraded read.
    """
    try:
        raw = seq.upper().encode("ascii")
    except UnicodeEncodeError:
        raise ValueError("DNA sequence contains non-ASCII characters") from None
    arr = np.frombuffer(raw, dtype=np.uint8).copy()
    n = arr.size

    # 1. substitution by a different base: shift the base index by 1..3 (mod 4).
    u_sub = rng.random(n)
    shift = rng.integers(1, 4, size=n)
    index = _BASE_INDEX[arr]
    hit = (u_sub < noise.p_sub) & (index != 255)
    arr[hit] = _BASE_CODES[(index[hit].astype(np.int64) + shift[hit]) % 4]

    # 2. ambiguous masking.
    arr[rng.random(n) < noise.p_n] = _N

    # 3. insertions and deletions.
    event = rng.random(n) < noise.p_indel
    insert = rng.random(n) < 0.5
    new_bases = _BASE_CODES[rng.integers(0, 4, size=n)]
    if event.any():
        ins = event & insert
        copies = np.where(event & ~insert, 0, 1) + ins
        out = np.repeat(arr, copies)
        ends = np.cumsum(copies) - 1  # the last output slot of each input position
        out[ends[ins]] = new_bases[ins]
        arr = out

    # 4. contiguous dropout.
    length = arr.size
    run = round(noise.dropout_frac * length)
    u_start = rng.random()
    if run > 0:
        start = int(u_start * (length - run + 1))
        arr[start : start + run] = _N

    # 5. tail truncation.
    cut = round(noise.truncate_frac * length)
    if cut > 0:
        arr = arr[: length - cut]
    return arr.tobytes().decode("ascii")


def degrade_dna_seeded(seq: str, noise: DnaNoise, seed: int, index: int) -> str:
    """``degrade_dna`` with specimen ``index``'s own stream under ``seed``."""
    return degrade_dna(seq, noise, specimen_rng(seed, index))


def fragment_seeded(
    seq: str, length: int, seed: int, index: int, min_called: int = 0, tries: int = 100
) -> str:
    """A window of ``length`` bases at a random start (the whole read when shorter): a
    mini-barcode or the surviving part of a failed read, from specimen ``index``'s stream.

    A window with fewer than ``min_called`` called bases (inside a record's run of Ns) is no
    read a sequencer returns: the start is drawn again, up to ``tries`` times (then the
    best-called window). With ``min_called`` 0 the first draw is taken.
    """
    if length < 1:
        raise ValueError(f"fragment length must be >= 1, got {length}")
    if len(seq) <= length:
        return seq
    rng = specimen_rng(seed, index)
    best = ""
    for _ in range(max(tries, 1)):
        start = int(rng.integers(0, len(seq) - length + 1))
        window = seq[start : start + length]
        called = length - window.count("N")
        if called >= min_called:
            return window
        if called > len(best) - best.count("N"):
            best = window
    return best


def blur_chw(x: np.ndarray, kernel: int) -> np.ndarray:
    """Average over a k×k window on the last two axes ([C,H,W] or [B,C,H,W] float arrays).

    The same as OpenCV's ``cv2.blur`` default: separable box filter, output the size of the
    input, border reflect-101 (``dcb|abcdefgh|gfe``), and for even k the window of pixel i spans
    i - k//2 .. i - k//2 + k - 1. Kernel 1 is the identity.

    Because preprocessing normalisation is a per-channel affine map and the kernel sums to 1,
    blurring the normalised model input equals normalising the blurred [0, 1] image at model
    resolution. Evaluation blurs at model input resolution, so a kernel size means the same
    amount of blur whatever the camera's resolution.

    Args:
        x: float array whose last two axes are height and width.
        kernel: side k of the averaging window, >= 1.

    Returns:
        The blurred array, same shape and dtype (computed in float64).
    """
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"blur_chw needs a float array, got {x.dtype}")
    if x.ndim < 2:
        raise ValueError(f"blur_chw needs at least 2 dimensions (H, W), got shape {x.shape}")
    if isinstance(kernel, bool) or not isinstance(kernel, (int, np.integer)) or kernel < 1:
        raise ValueError(f"blur kernel must be an integer >= 1, got {kernel!r}")
    if kernel == 1:
        return x.copy()
    out = _box_1d(x.astype(np.float64), kernel, axis=-1)
    out = _box_1d(out, kernel, axis=-2)
    return out.astype(x.dtype)


def blur_image(image: Image.Image, kernel: int) -> Image.Image:
    """Box-blur a PIL image at its own resolution, as ``blur_chw`` does to arrays.

    Args:
        image: L, LA, RGB or RGBA image (other modes are converted to RGB first).
        kernel: side k of the averaging window, >= 1.

    Returns:
        A new image of the same mode and size, each value rounded to the nearest integer.
    """
    if image.mode not in ("L", "LA", "RGB", "RGBA"):
        image = image.convert("RGB")
    if kernel == 1:
        return image.copy()
    # One band at a time keeps the float64 working copies small on large camera frames.
    bands = []
    for band in image.split():
        plane = np.asarray(band, dtype=np.float64)[None]
        blurred = blur_chw(plane, kernel)[0]
        bands.append(Image.fromarray(np.clip(np.rint(blurred), 0, 255).astype(np.uint8), "L"))
    return bands[0] if len(bands) == 1 else Image.merge(image.mode, bands)


def image_format_for(path: Path) -> str:
    """Pillow's format name for ``path``'s suffix (ValueError for a suffix it cannot write)."""
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"cannot tell the image format from {path.name!r}; use a suffix such as "
            ".png, .jpg, .tif or .webp"
        )
    return fmt


def blur_file(source: Path, target: Path, kernel: int) -> None:
    """Blur one image file into ``target`` (format from its suffix), written atomically."""
    from hir_edge.images import load_image
    from hir_edge.io import atomic_open

    fmt = image_format_for(target)
    blurred = blur_image(load_image(source), kernel)
    options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    with atomic_open(target, "wb") as handle:
        blurred.save(handle, format=fmt, **options)


def _box_1d(x: np.ndarray, kernel: int, axis: int) -> np.ndarray:
    """Mean over a window of ``kernel`` along ``axis`` via a float64 cumulative sum."""
    axis %= x.ndim
    pad = [(0, 0)] * x.ndim
    pad[axis] = (kernel // 2, kernel - 1 - kernel // 2)
    # numpy's "reflect" pad is OpenCV's BORDER_REFLECT_101 (the edge pixel is not repeated).
    padded = np.pad(x, pad, mode="reflect")
    csum = np.cumsum(padded, axis=axis, dtype=np.float64)

    def along(start: int | None, stop: int | None) -> tuple[slice, ...]:
        index = [slice(None)] * x.ndim
        index[axis] = slice(start, stop)
        return tuple(index)

    out = csum[along(kernel - 1, None)].copy()  # window sum of output i: csum[i+k-1] - csum[i-1]
    out[along(1, None)] -= csum[along(None, -kernel)]
    out /= kernel
    return out
