"""Low-complexity reads: repeats are told from barcodes by their six commonest 4-mers."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from hir_edge.dna.complexity import MIN_WORDS, low_complexity, repeat_share
from hir_edge.dna.io import read_sequences

REPO = Path(__file__).resolve().parents[1]


def noisy(unit: str, length: int, error: float, seed: int) -> str:
    """A tandem repeat of ``unit`` with each base replaced at random at rate ``error``."""
    rng = random.Random(seed)
    bases = [
        rng.choice("ACGT") if rng.random() < error else unit[i % len(unit)] for i in range(length)
    ]
    return "".join(bases)


def test_the_share_is_counted_by_hand():
    # "AAAAAAC": 4-mers AAAA x3, AAAC x1 -> the top six are all four of them
    assert repeat_share("AAAAAAC") == (4, 1.0)
    # 4-mers with an N are not words: "ACGTNACGT" has ACGT twice and nothing else
    assert repeat_share("ACGTNACGT") == (2, 1.0)
    # eight distinct 4-mers, one each: the top six hold 6 of 8
    assert repeat_share("AACCGGTTAAC") == (8, 0.75)
    assert repeat_share("NNNN") == (0, 0.0)


@pytest.mark.parametrize(
    "read",
    [
        "A" * 600,
        "AT" * 300,
        "ACGTTG" * 100,  # period 6: six distinct 4-mers
        noisy("A", 600, 0.03, seed=1),
        noisy("AT", 600, 0.05, seed=2),
    ],
)
def test_homopolymers_and_short_repeats_are_low_complexity(read):
    assert repeat_share(read)[1] > 0.85  # the figure the module docstring gives
    why = low_complexity(read)
    assert why is not None and why.startswith("read is low-complexity: its 6 most common 4-mers")
    assert why.endswith("(a homopolymer or short tandem repeat, not a barcode)")


def test_a_short_run_is_too_short_to_judge():
    """Fewer than MIN_WORDS called 4-mers: a 60-bp poly-T stretch of a real AT-rich barcode
    would look like a repeat, so short reads are left to the alignment."""
    assert repeat_share("T" * 60)[0] < MIN_WORDS and low_complexity("T" * 60) is None
    assert low_complexity("A" * (MIN_WORDS + 3)) is not None  # exactly MIN_WORDS words


def test_the_shipped_example_reads_are_barcodes():
    for read in read_sequences(REPO / "examples" / "reads.fa"):
        assert low_complexity(read.sequence) is None, read.id


def test_no_real_bold_barcode_is_low_complexity(bold_100sp, bold_1826sp):
    shares = [
        repeat_share(read.sequence)[1]
        for path in (bold_100sp, bold_1826sp)
        for read in read_sequences(path)
    ]
    assert len(shares) == 9278
    assert max(shares) < 0.3  # 0.278 (bold_qc.md), the rule stops at 0.6
