"""identify_bold.md's unrelated-DNA rows: what `identify` says of reads that are no barcode."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

UNRELATED_LENGTHS = (20, 50, 100, 150, 300, 650)


def unrelated_dna(identify: Callable, per_length: int = 40) -> list[dict]:
    """What `identify` says of DNA that is no barcode: seeded random reads of an insect-like
    AT-rich composition (A and T 35% each), ``per_length`` of each length.

    ``identify``: (ids, reads) -> answers, as identify_bold.identify_reads.
    """
    rng = np.random.default_rng(0)
    rows = []
    for length in UNRELATED_LENGTHS:
        reads = [
            "".join(rng.choice(list("ACGT"), size=length, p=[0.35, 0.15, 0.15, 0.35]))
            for _ in range(per_length)
        ]
        ids = [f"random{length}-{i}" for i in range(per_length)]
        answers = identify(ids, reads)
        identity = [a.best_hit["identity"] for a in answers if a.best_hit]
        rows.append(
            {
                "length": length,
                "reads": per_length,
                "answered": sum(a.assigned["rank"] is not None for a in answers),
                "not_coi": sum(
                    any(w.startswith("not recognisably COI") for w in a.warnings) for a in answers
                ),
                "novel": sum(a.novel is not None for a in answers),
                "identity_median": float(np.median(identity)) if identity else None,
                "identity_max": float(max(identity)) if identity else None,
            }
        )
    return rows
