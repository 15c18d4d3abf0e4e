"""Low-complexity reads: a homopolymer or short tandem repeat is no barcode.

A failed or off-target read (a poly-A run, an adapter concatemer, "ATATAT…") still aligns a
few bases somewhere, and its best hit, however poor, would be read as a distant relative: the
read "of an order absent from the library". Like BLAST's DUST filter, such reads are told by
their words: a repeat of period p holds at most p distinct 4-mers, so its six most common
4-mers are nearly all of it. In the 9,278 real BOLD barcodes of ``../shared/data`` they are
a sixth (median 0.160 and 0.156 in the two files), at most 0.278 of a whole record and 0.402
of a 120-bp window (``benchmarks/results/bold_qc.md``: no record is low-complexity), while a
poly-A or "AT" repeat with 3 or 5% of its bases redrawn at random stays above 0.85
(``tests/test_complexity.py``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from hir_edge.dna.kmers import kmer_codes
from hir_edge.dna.qc import base_codes

WORD = 4  # k of the words counted
TOP_WORDS = 6  # a tandem repeat of period up to 6 is at most 6 distinct 4-mers
MIN_WORDS = 100  # fewer called 4-mers say too little: a short COI window can repeat a run
REPEAT_SHARE = 0.6  # the most a read's top 4-mers may hold (real barcodes: at most 0.402)


@lru_cache(maxsize=4096)  # a read is checked where it is read and again where it is embedded
def repeat_share(read: str) -> tuple[int, float]:
    """(called 4-mers, the share of them that are the read's 6 most common) of a cleaned read
    (A/C/G/T/N); 4-mers holding an N are not counted."""
    words = kmer_codes(base_codes(read), WORD)
    words = words[words >= 0]
    if not words.size:
        return 0, 0.0
    counts = np.bincount(words, minlength=4**WORD)
    return int(words.size), float(np.partition(counts, -TOP_WORDS)[-TOP_WORDS:].sum() / words.size)


def low_complexity(read: str) -> str | None:
    """Why a cleaned read is a repeat rather than a barcode (None when it is not, or too short
    to say)."""
    words, share = repeat_share(read)
    if words < MIN_WORDS or share < REPEAT_SHARE:
        return None
    return (
        f"read is low-complexity: its {TOP_WORDS} most common 4-mers make up "
        f"{100 * share:.0f}% of it (a homopolymer or short tandem repeat, not a barcode)"
    )
