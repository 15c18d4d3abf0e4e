"""The library's bases per barcode site (hir_edge.dna.divergence)."""

from __future__ import annotations

import numpy as np
import pytest

from hir_edge.dna.divergence import SiteProfile
from hir_edge.dna.kmers import base_codes, kmer_codes

CODONS = [a + b + c for a in "ACGT" for b in "ACGT" for c in "ACGT"]
SENSE = [c for c in CODONS if c not in ("TAA", "TAG")]


def coding(seed: int, codons: int = 200) -> str:
    return "".join(np.random.default_rng(seed).choice(SENSE, codons))


def with_base(seq: str, position: int, base: str) -> str:
    return seq[:position] + base + seq[position + 1 :]


def test_codes_by_hand():
    np.testing.assert_array_equal(base_codes("ACGTN"), [0, 1, 2, 3, -1])
    # AC = 0·4 + 1, CG = 1·4 + 2, G N and N T hold an N
    np.testing.assert_array_equal(kmer_codes(base_codes("ACGNT"), 2), [1, 6, -1, -1])
    assert len(kmer_codes(base_codes("AC"), 3)) == 0


def test_references_are_placed_on_the_anchor_through_truncation_and_a_codon_deletion():
    a = coding(1)
    deleted = a[:300] + a[303:]  # codon 100 missing
    truncated = a[30:570]
    profile = SiteProfile([a, deleted, truncated], [0, 1, 2])
    assert profile.anchor == a and profile.species_counted == 3
    np.testing.assert_array_equal(profile.columns(0), np.arange(600))
    np.testing.assert_array_equal(profile.columns(2), np.arange(30, 570))
    placed = profile.columns(1)
    np.testing.assert_array_equal(placed[:290], np.arange(290))  # before the deletion
    np.testing.assert_array_equal(placed[310:], np.arange(313, 600))  # after it: shifted by 3


def test_an_unrelated_sequence_is_not_placed_and_gives_no_evidence():
    a, other = coding(2), "ACGT" * 150
    profile = SiteProfile([a, other], None)
    assert profile.species_counted == 2  # without species every reference counts
    assert (profile.columns(1) == -1).all()
    shares, seen = profile.shares(1, np.array([5, 9]), np.array([0, 1]))
    np.testing.assert_allclose(shares, [1 / 3, 1 / 3])
    assert not seen.any()


def test_shares_by_hand():
    """Four species differing at one third position: A, A, G, T. A read of species 0 (A there)
    with G: 1 of the 2 species differing from A carries G: (1 + 0.5) / (2 + 1.5)."""
    base = coding(3)
    site = 3 * 50 + 2
    refs = [with_base(base, site, b) for b in "AAGT"]
    refs.append(with_base(base, site, "C")[:500])  # species 0 again: not its best-covered one
    profile = SiteProfile(refs, [0, 1, 2, 3, 0])
    assert profile.species_counted == 4
    reads = base_codes("GCA")
    shares, seen = profile.shares(0, np.array([site, site, site]), reads)
    assert shares == pytest.approx([1.5 / 3.5, 0.5 / 3.5, 2.5 / 3.5])
    assert seen.tolist() == [True, False, True]
    # where all four species agree, a changed base is as likely an error: 0.5 / 1.5
    shares, seen = profile.shares(0, np.array([10]), base_codes("G" if base[10] != "G" else "A"))
    assert shares == pytest.approx([1 / 3]) and not seen.any()


def test_an_empty_profile_gives_no_evidence():
    """No references: nothing is placed, every mismatch gets the error model's 1/3."""
    profile = SiteProfile([], None)
    shares, seen = profile.shares(0, np.array([3, 4]), np.array([0, 2]))
    assert profile.species_counted == 0 and shares == pytest.approx([1 / 3, 1 / 3])
    assert not seen.any()
