"""Is a far read COI at all? Its best hit against the best hits of its own shuffled copies.

A read farther from every reference than the library's own orders are from each other is said
to be of an order absent from the library. That holds for a distant insect, not for unrelated
DNA (another gene, a contaminant, a failed read): aligned with free end gaps, any sequence
finds a best hit, and how near depends on its length — random reads reach 0.613 identity at
650 bp, 0.685 at 100 bp and 0.882 at 20 bp against the real-DNA bundle's 3,500 training
barcodes (``benchmarks/results/identify_bold.md``, "Unrelated DNA"). So for such far reads
only, the read is shuffled (its bases, hence its length and composition, kept) and the copies
are aligned like it: a read no nearer its best hit than its copies get, with a margin, is "not
recognisably COI" rather than a novel order. Seeded by the read itself: the same read gets the
same answer in any batch.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

import numpy as np

NOT_COI = "not recognisably COI"  # how a warning, and the table's answer line, start
SHUFFLES = 8  # copies per far read (each costs one read's alignment)
MARGIN = 0.05  # identity a read must beat its copies' best by to count as COI
# Reads nearer their hit than this are taken as COI untested: random reads of 100 bp or more
# stay below it (0.685 at most, identify_bold.md), and testing every far degraded read would
# cost eight alignments each. Shorter unrelated reads can be nearer: 5 of 40 at 50 bp and 36
# of 40 at 20 bp are still called novel there.
TESTED_BELOW = 0.70


def shuffled_copies(read: str, copies: int = SHUFFLES) -> list[str]:
    """``copies`` permutations of the read's bases, seeded by the read."""
    rng = np.random.default_rng(zlib.crc32(read.encode("ascii")))
    bases = np.frombuffer(read.encode("ascii"), dtype=np.uint8).copy()  # an empty one too
    return [rng.permutation(bases).tobytes().decode("ascii") for _ in range(copies)]


def chance_identities(align: Callable, reads: Sequence[str]) -> list[float]:
    """Per read, the best identity that its shuffled copies reach in the library.

    Args:
        align: sequences -> (similarities, best hits), as ``Identifier.barcode_alignments``.
        reads: cleaned reads.
    """
    copies = [copy for read in reads for copy in shuffled_copies(read)]
    _, hits = align(copies)
    identities = [0.0 if h is None else float(h.identity) for h in (hits or [None] * len(copies))]
    return [max(identities[k : k + SHUFFLES]) for k in range(0, len(identities), SHUFFLES)]


def not_coi(identity: float, chance: float) -> str | None:
    """The warning of a read no nearer the library than its shuffled copies (None if it is)."""
    if identity >= chance + MARGIN:
        return None
    return (
        f"{NOT_COI}: the best reference barcode is {100 * identity:.1f}% identical, "
        f"and shuffled copies of the read reach {100 * chance:.1f}%: unrelated DNA, another "
        "gene or a failed read, not a novel taxon"
    )
