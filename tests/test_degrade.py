"""hir_edge.degrade: the DNA noise model (against a slow reference), presets, and the box blur."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from hir_edge.degrade import (
    PRESETS,
    DegradationPreset,
    DnaNoise,
    blur_chw,
    blur_image,
    degrade_dna,
    degrade_dna_seeded,
    fragment_seeded,
    get_preset,
    specimen_rng,
)
from hir_edge.images import PreprocessConfig, preprocess

FAST = settings(max_examples=60, deadline=None)
dna = st.text(alphabet="ACGT", min_size=0, max_size=400)
dna_with_n = st.text(alphabet="ACGTN", min_size=0, max_size=400)
rate = st.floats(min_value=0.0, max_value=1.0)
seeds = st.integers(min_value=0, max_value=2**32)


def _random_read(rng: np.random.Generator, length: int) -> str:
    return "".join(rng.choice(list("ACGT"), size=length))


def _reference_degrade(seq: str, noise: DnaNoise, seed: int, index: int) -> str:
    """A slow per-base loop drawing the same numbers in the same order as ``degrade_dna``."""
    rng = specimen_rng(seed, index)
    n = len(seq)
    u_sub, shift = rng.random(n), rng.integers(1, 4, size=n)
    u_n = rng.random(n)
    u_indel, u_insert, new = rng.random(n), rng.random(n), rng.integers(0, 4, size=n)
    out = []
    for i, base in enumerate(seq):
        if base in "ACGT" and u_sub[i] < noise.p_sub:
            base = "ACGT"[("ACGT".index(base) + shift[i]) % 4]
        if u_n[i] < noise.p_n:
            base = "N"
        if u_indel[i] < noise.p_indel and u_insert[i] >= 0.5:
            continue  # deletion
        out.append(base)
        if u_indel[i] < noise.p_indel:
            out.append("ACGT"[new[i]])  # insertion after the base
    length = len(out)
    run = round(noise.dropout_frac * length)
    start = int(rng.random() * (length - run + 1))
    for i in range(start, start + run):
        out[i] = "N"
    cut = round(noise.truncate_frac * length)
    return "".join(out[: length - cut])


# ---------------------------------------------------------------- DNA: exact behaviour


@FAST
@given(seq=dna_with_n, seed=seeds, index=st.integers(0, 10**6))
def test_zero_rates_are_the_identity(seq, seed, index):
    assert degrade_dna_seeded(seq, DnaNoise(), seed, index) == seq


@FAST
@given(seq=dna_with_n, p_sub=rate, p_n=rate, p_indel=rate, drop=rate, cut=rate, seed=seeds)
def test_vectorised_steps_match_the_slow_reference(seq, p_sub, p_n, p_indel, drop, cut, seed):
    noise = DnaNoise(p_sub, p_n, p_indel, drop, cut)
    assert degrade_dna_seeded(seq, noise, seed, 7) == _reference_degrade(seq, noise, seed, 7)


@FAST
@given(seq=dna_with_n, p_sub=rate, seed=seeds)
def test_substitution_never_keeps_the_base_and_spares_n(seq, p_sub, seed):
    out = degrade_dna_seeded(seq, DnaNoise(p_sub=p_sub), seed, 0)
    assert len(out) == len(seq)
    for before, after in zip(seq, out):
        if before == "N":
            assert after == "N"
        else:
            assert after in "ACGT"
    if p_sub == 1.0:
        assert all(a != b for a, b in zip(seq, out) if a != "N")


def test_substitution_rate_and_uniform_choice():
    """200 reads × 500 bp at p_sub = 0.05: 100,000 Bernoulli trials, sd 0.0007."""
    rng = np.random.default_rng(1)
    noise = DnaNoise(p_sub=0.05)
    changed = total = 0
    for index in range(200):
        seq = _random_read(rng, 500)
        out = degrade_dna_seeded(seq, noise, 0, index)
        changed += sum(a != b for a, b in zip(seq, out))
        total += len(seq)
    assert abs(changed / total - 0.05) < 0.004
    # at p_sub = 1 every A becomes C, G or T, each a third of the time
    out = degrade_dna_seeded("A" * 30000, DnaNoise(p_sub=1.0), 0, 0)
    counts = {base: out.count(base) / 30000 for base in "ACGT"}
    assert counts["A"] == 0
    for base in "CGT":
        assert abs(counts[base] - 1 / 3) < 0.02


def test_n_mask_rate():
    out = degrade_dna_seeded("ACGT" * 25000, DnaNoise(p_n=0.1), 3, 0)
    assert len(out) == 100000
    assert abs(out.count("N") / 100000 - 0.1) < 0.005


@FAST
@given(seq=dna_with_n, cut=rate, seed=seeds)
def test_truncation_removes_exactly_the_stated_fraction(seq, cut, seed):
    out = degrade_dna_seeded(seq, DnaNoise(truncate_frac=cut), seed, 0)
    assert out == seq[: len(seq) - round(cut * len(seq))]


def test_truncation_hand_computed():
    assert degrade_dna_seeded("ACGTACGTAC", DnaNoise(truncate_frac=0.1), 0, 0) == "ACGTACGTA"
    assert degrade_dna_seeded("A" * 658, DnaNoise(truncate_frac=0.1), 0, 0) == "A" * 592


@FAST
@given(seq=dna, drop=rate, seed=seeds)
def test_dropout_is_one_n_run_of_the_stated_length(seq, drop, seed):
    out = degrade_dna_seeded(seq, DnaNoise(dropout_frac=drop), seed, 0)
    run = round(drop * len(seq))
    runs = [m.span() for m in re.finditer("N+", out)]
    if run == 0:
        assert out == seq
        return
    assert len(runs) == 1
    start, end = runs[0]
    assert end - start == run
    assert out[:start] == seq[:start] and out[end:] == seq[end:]


@FAST
@given(seq=dna, p_indel=rate, seed=seeds, index=st.integers(0, 1000))
def test_indels_change_length_by_insertions_minus_deletions(seq, p_indel, seed, index):
    rng = specimen_rng(seed, index)
    n = len(seq)
    rng.random(n), rng.integers(1, 4, size=n), rng.random(n)  # the draws of steps 1 and 2
    event, insert = rng.random(n) < p_indel, rng.random(n) < 0.5
    n_ins, n_del = int((event & insert).sum()), int((event & ~insert).sum())
    out = degrade_dna_seeded(seq, DnaNoise(p_indel=p_indel), seed, index)
    assert len(out) == n - n_del + n_ins
    if p_indel == 0:
        assert out == seq


def test_seeding_is_per_specimen():
    seq = _random_read(np.random.default_rng(0), 600)
    noise = PRESETS["paper"].dna
    a = degrade_dna_seeded(seq, noise, seed=5, index=12)
    assert a == degrade_dna_seeded(seq, noise, seed=5, index=12)
    assert a == degrade_dna(seq, noise, np.random.default_rng([5, 12]))
    assert a != degrade_dna_seeded(seq, noise, seed=5, index=13)
    assert a != degrade_dna_seeded(seq, noise, seed=6, index=12)
    # order of processing does not matter: each index has its own stream
    forward = [degrade_dna_seeded(seq, noise, 0, i) for i in range(5)]
    backward = [degrade_dna_seeded(seq, noise, 0, i) for i in reversed(range(5))]
    assert forward == backward[::-1]


def test_common_random_numbers_nest_severities():
    """At a fixed seed the bases substituted at p_sub = 0.01 are among those at 0.03."""
    seq = _random_read(np.random.default_rng(2), 2000)
    low = degrade_dna_seeded(seq, DnaNoise(p_sub=0.01), 0, 0)
    high = degrade_dna_seeded(seq, DnaNoise(p_sub=0.03), 0, 0)
    hit_low = {i for i, (a, b) in enumerate(zip(seq, low)) if a != b}
    hit_high = {i for i, (a, b) in enumerate(zip(seq, high)) if a != b}
    assert hit_low and hit_low <= hit_high and len(hit_high) > len(hit_low)


def test_lower_case_input_is_upper_cased_and_bad_values_raise():
    assert degrade_dna_seeded("acgtn", DnaNoise(), 0, 0) == "ACGTN"
    with pytest.raises(ValueError, match=r"p_sub must be in \[0, 1\], got 1.5"):
        DnaNoise(p_sub=1.5)
    with pytest.raises(ValueError, match="seed and index must be >= 0"):
        specimen_rng(-1, 0)


# ---------------------------------------------------------------- presets


def test_presets_and_their_report_line():
    paper = get_preset("paper")
    assert paper.dna == DnaNoise(0.03, 0.03, 0.01, 0.10, 0.10) and paper.blur_kernel == 5
    assert paper.describe() == (
        "degradation preset=paper p_sub=0.03 p_n=0.03 p_indel=0.01 dropout=0.1 truncate=0.1 "
        "blur_kernel=5"
    )
    assert paper.to_dict() == {
        "name": "paper",
        "dna": {
            "p_sub": 0.03,
            "p_n": 0.03,
            "p_indel": 0.01,
            "dropout_frac": 0.1,
            "truncate_frac": 0.1,
        },
        "blur_kernel": 5,
    }
    assert get_preset("none").dna.is_identity and get_preset("none").blur_kernel == 1
    mild, severe = get_preset("mild"), get_preset("severe")
    for field in ("p_sub", "p_n", "p_indel", "dropout_frac", "truncate_frac"):
        assert getattr(mild.dna, field) < getattr(paper.dna, field) < getattr(severe.dna, field)
    assert mild.blur_kernel < paper.blur_kernel < severe.blur_kernel


def test_unknown_preset_lists_the_presets_and_suggests_one():
    with pytest.raises(ValueError) as err:
        get_preset("papr")
    assert str(err.value) == (
        "unknown degradation preset 'papr'; choose one of none, mild, paper, severe. "
        "Did you mean 'paper'?"
    )


def test_overrides_and_severity_scaling():
    paper = get_preset("paper")
    assert paper.with_values(p_sub=None, blur_kernel=None) is paper
    custom = paper.with_values(p_sub=0.2, blur_kernel=7)
    assert custom.name == "paper-custom" and custom.dna.p_sub == 0.2
    assert custom.dna.p_n == 0.03 and custom.blur_kernel == 7
    with pytest.raises(ValueError, match="unknown degradation value"):
        paper.with_values(p_subst=0.1)
    assert paper.scaled(0).dna.is_identity and paper.scaled(0).blur_kernel == 1
    assert paper.scaled(1).dna == paper.dna and paper.scaled(1).blur_kernel == 5
    double = paper.scaled(2)
    assert double.dna.p_sub == pytest.approx(0.06) and double.blur_kernel == 9
    assert paper.scaled(20).dna.dropout_frac == 1.0
    with pytest.raises(ValueError, match="blur_kernel must be >= 1"):
        DegradationPreset("x", DnaNoise(), blur_kernel=0)


# ---------------------------------------------------------------- blur


def _reflect101(i: int, n: int) -> int:
    if n == 1:
        return 0
    if i < 0:
        return -i
    if i >= n:
        return 2 * n - 2 - i
    return i


def _reference_blur(x: np.ndarray, k: int) -> np.ndarray:
    """Direct 2-D k×k average, OpenCV anchor (k//2) and BORDER_REFLECT_101, in float64."""
    h, w = x.shape[-2:]
    flat = x.reshape(-1, h, w).astype(np.float64)
    out = np.zeros_like(flat)
    a = k // 2
    for c in range(flat.shape[0]):
        for i in range(h):
            for j in range(w):
                total = 0.0
                for di in range(k):
                    for dj in range(k):
                        total += flat[c, _reflect101(i - a + di, h), _reflect101(j - a + dj, w)]
                out[c, i, j] = total / (k * k)
    return out.reshape(x.shape)


@pytest.mark.parametrize("kernel", [1, 2, 3, 4, 5, 9])
@pytest.mark.parametrize("shape", [(3, 12, 17), (2, 3, 10, 11)])
def test_blur_matches_direct_convolution(kernel, shape):
    x = np.random.default_rng(kernel).normal(0, 1, shape).astype(np.float32)
    out = blur_chw(x, kernel)
    assert out.shape == x.shape and out.dtype == np.float32
    assert np.abs(out - _reference_blur(x, kernel)).max() < 1e-6


def test_blur_hand_computed():
    row = np.array([[[0, 0, 9, 0, 0]]], dtype=np.float64)
    # horizontal 3-tap average, then the vertical pass over one row (reflect-101 of a single
    # row is the row itself) leaves it unchanged
    np.testing.assert_allclose(blur_chw(row, 3)[0, 0], [0, 3, 3, 3, 0])
    edge = np.array([[[3, 0, 0]]], dtype=np.float64)
    np.testing.assert_allclose(blur_chw(edge, 3)[0, 0], [1, 1, 0])  # x[-1] reflects to x[1]
    np.testing.assert_allclose(blur_chw(edge, 2)[0, 0], [1.5, 1.5, 0])  # window i-1 .. i
    x = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    np.testing.assert_array_equal(blur_chw(x, 1), x)


def test_blur_rejects_bad_input():
    with pytest.raises(TypeError, match="float array"):
        blur_chw(np.zeros((3, 4, 4), dtype=np.uint8), 3)
    with pytest.raises(ValueError, match="kernel must be an integer >= 1"):
        blur_chw(np.zeros((3, 4, 4)), 0)


def test_blurring_the_normalised_input_equals_blurring_the_image():
    """Normalisation is per-channel affine and the kernel sums to 1, so the order is free."""
    config = PreprocessConfig()
    rng = np.random.default_rng(4)
    image = Image.fromarray(rng.integers(0, 256, (260, 300, 3), dtype=np.uint8), "RGB")
    model_input = preprocess(image, config)
    mean = np.asarray(config.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(config.std, dtype=np.float32)[:, None, None]
    pixels01 = model_input * std + mean  # the [0, 1] image at model resolution
    a = blur_chw(model_input, 7)
    b = (blur_chw(pixels01, 7) - mean) / std
    assert np.abs(a - b).max() < 1e-5


def test_blur_image_keeps_mode_and_rounds():
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    out = blur_image(Image.fromarray(rgb, "RGB"), 5)
    assert out.mode == "RGB" and out.size == (30, 20)
    expected = np.rint(blur_chw(rgb.transpose(2, 0, 1).astype(np.float64), 5)).transpose(1, 2, 0)
    np.testing.assert_array_equal(np.asarray(out), expected.astype(np.uint8))
    gray = Image.fromarray(rgb[:, :, 0], "L")
    assert blur_image(gray, 3).mode == "L"
    assert np.array_equal(np.asarray(blur_image(gray, 1)), rgb[:, :, 0])


def test_module_does_not_import_torch():
    code = "import sys, hir_edge.degrade; print(sorted({'torch', 'open_clip'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_fragment_is_a_seeded_window_of_the_read():
    seq = "".join(np.random.default_rng(0).choice(list("ACGT"), 600))
    first = fragment_seeded(seq, 150, 2, 7)
    assert len(first) == 150 and first in seq
    assert fragment_seeded(seq, 150, 2, 7) == first  # the specimen's own stream
    assert {fragment_seeded(seq, 150, 2, i) for i in range(20)} != {first}
    assert fragment_seeded(seq[:100], 150, 2, 7) == seq[:100]  # shorter: the whole read
    with pytest.raises(ValueError, match="fragment length must be >= 1, got 0"):
        fragment_seeded(seq, 0, 2, 7)


def test_a_fragment_asked_for_called_bases_avoids_a_run_of_ns():
    seq = "".join(np.random.default_rng(0).choice(list("ACGT"), 300)) + "N" * 300
    windows = [fragment_seeded(seq, 150, 2, i) for i in range(40)]
    assert any(w == "N" * 150 for w in windows)  # unasked, some fall inside the Ns
    for i in range(40):
        window = fragment_seeded(seq, 150, 2, i, min_called=18)
        assert window in seq and 150 - window.count("N") >= 18
        if 150 - windows[i].count("N") >= 18:
            assert window == windows[i]  # a good first draw is kept
    # no window has 18 called bases (the read has 12): the best-called of the tries
    sparse = "N" * 200 + "ACGT" * 3 + "N" * 388
    assert 150 - fragment_seeded(sparse, 150, 2, 7, min_called=18).count("N") == 12
