"""Far reads against their shuffled copies: unrelated DNA is not a novel order."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

from hir_edge.runtime.chance import MARGIN, SHUFFLES, chance_identities, not_coi, shuffled_copies


def test_copies_keep_length_and_composition_and_are_seeded_by_the_read():
    read = "ACGTTTAANNACGGATTACA" * 5
    copies = shuffled_copies(read)
    assert len(copies) == SHUFFLES and len(set(copies)) == SHUFFLES
    assert all(Counter(c) == Counter(read) for c in copies)
    assert shuffled_copies(read) == copies  # the same read, the same copies, in any batch
    assert shuffled_copies(read[::-1]) != copies
    assert shuffled_copies("") == [""] * SHUFFLES


def test_each_read_gets_the_best_identity_of_its_own_copies():
    asked = []

    def align(sequences):
        asked.append(list(sequences))
        # identities 0.10, 0.11, ... in the order asked; the 5th copy of read 2 has no hit
        hits = [SimpleNamespace(identity=0.10 + 0.01 * k) for k in range(len(sequences))]
        hits[SHUFFLES + 4] = None
        return None, hits

    got = chance_identities(align, ["ACGT" * 30, "TTGA" * 30])
    assert len(asked) == 1 and len(asked[0]) == 2 * SHUFFLES  # one alignment call
    assert asked[0][:SHUFFLES] == shuffled_copies("ACGT" * 30)
    assert got == [0.10 + 0.01 * (SHUFFLES - 1), 0.10 + 0.01 * (2 * SHUFFLES - 1)]


def test_a_read_must_beat_its_copies_by_the_margin():
    assert MARGIN == 0.05
    assert not_coi(0.71, 0.60) is None
    assert not_coi(0.64, 0.60) == (
        "not recognisably COI: the best reference barcode is 64.0% identical, and shuffled "
        "copies of the read reach 60.0%: unrelated DNA, another gene or a failed read, not a "
        "novel taxon"
    )
