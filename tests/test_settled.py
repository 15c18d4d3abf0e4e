"""Reads whose barcode votes settle every rank skip the DNA encoder, and lose nothing by it."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from hir_edge.runtime.scoring import tree_probabilities
from hir_edge.runtime.settled import UNDERFLOW, settled_by_barcodes

# Two orders (0, 1), each with two species: species 0, 1 under order 0; 2, 3 under order 1.
PARENTS = [np.array([0, 0]), np.array([0, 0, 1, 1])]
ORDERS = np.eye(4)[:2]  # orthogonal prompts: 1.4142 apart
SPECIES = np.array([[1.0, 0, 0, 0], [0.6, 0.8, 0, 0], [0, 0, 1, 0], [0, 0, 0.8, 0.6]])
REAL = [np.ones(2, bool), np.ones(4, bool)]
SCALE = 1000.0
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def settled(order_votes, species_votes, real=REAL) -> bool:
    votes = [np.array([order_votes], float), np.array([species_votes], float)]
    return bool(settled_by_barcodes(votes, [SCALE, SCALE], [ORDERS, SPECIES], real, PARENTS)[0])


def test_a_lead_over_the_prompt_distance_plus_the_underflow_margin_settles():
    # order: 1000 x 1.4142 = 1414.2 of cosine swing, plus 750 -> a lead of 2164.2 is needed;
    # species 0 and 1 are sqrt(2 - 2 x 0.6) = 0.8944 apart: 894.4 + 750 = 1644.4
    assert settled([2170.0, 0.0], [1650.0, 0.0, -5000.0, -5000.0])
    assert not settled([2160.0, 0.0], [1650.0, 0.0, -5000.0, -5000.0])  # order too close
    assert not settled([2170.0, 0.0], [1640.0, 0.0, -5000.0, -5000.0])  # species too close
    # the species under the other order are no siblings of species 0: however close, no rival
    assert settled([2170.0, 0.0], [1650.0, 0.0, 1650.0, 1650.0])
    # a placeholder has no prompt of its own (prompt_cosines may borrow its cosine from a child):
    # its cosine is bounded by 2 from any sibling's, not by the 0.8944 of the two prompts
    placeholder = [np.ones(2, bool), np.array([True, False, True, True])]
    assert not settled([2170.0, 0.0], [1650.0, 0.0, -5000.0, -5000.0], placeholder)
    assert settled([2170.0, 0.0], [2760.0, 0.0, -5000.0, -5000.0], placeholder)
    assert UNDERFLOW > 745.2  # exp() of a log-probability below -745.2 is 0.0 in float64


def test_settled_probabilities_are_one_hot_whatever_the_embedding():
    """The claim itself: for a settled read, every unit query — the prompts themselves and
    the worst case for each rival — gives exactly the same probabilities."""
    rng = np.random.default_rng(0)
    votes = [np.array([[2170.0, 0.0]]), np.array([[1650.0, 0.0, 30.0, 0.0]])]
    assert settled_by_barcodes(votes, [SCALE, SCALE], [ORDERS, SPECIES], REAL, PARENTS)[0]
    queries = [ORDERS[1], SPECIES[1], SPECIES[3], -ORDERS[0]]
    queries += [(SPECIES[1] - SPECIES[0]) / np.linalg.norm(SPECIES[1] - SPECIES[0])]
    queries += list(rng.normal(size=(50, 4)))
    seen = set()
    for q in queries:
        q = np.asarray(q) / np.linalg.norm(q)
        logits = [v + SCALE * (q @ bank.T)[None] for v, bank in zip(votes, [ORDERS, SPECIES])]
        probs = tree_probabilities(logits, PARENTS, [1.0, 1.0])
        seen.add(tuple(np.concatenate([p.ravel() for p in probs])))
    assert seen == {(1.0, 0.0, 1.0, 0.0, 0.0, 0.0)}
    # 20 short of the margin, the worst-case query moves species 1 off 0 (exp(-735.6) > 0)
    votes[1][0, 0] = 1630.0
    q = (SPECIES[1] - SPECIES[0]) / np.linalg.norm(SPECIES[1] - SPECIES[0])
    logits = [v + SCALE * (q @ bank.T)[None] for v, bank in zip(votes, [ORDERS, SPECIES])]
    assert tree_probabilities(logits, PARENTS, [1.0, 1.0])[1][0, 1] > 0.0


def test_a_path_that_ends_early_settles_the_ranks_below():
    """An order without families keeps its mass at its rank: every family and species is under
    an order of probability 0, so ties among them cannot matter."""
    parents = [np.array([0, 0]), np.array([1, 1]), np.array([0, 0])]  # order 0 has no family
    banks = [ORDERS, ORDERS, ORDERS]
    real = [np.ones(2, bool)] * 3
    votes = [np.array([[2170.0, 0.0]]), np.zeros((1, 2)), np.zeros((1, 2))]  # tied below
    assert settled_by_barcodes(votes, [SCALE] * 3, banks, real, parents)[0]
    probs = tree_probabilities(votes, parents, [1.0] * 3)
    assert [p.tolist() for p in probs] == [[[1.0, 0.0]], [[0.0, 0.0]], [[0.0, 0.0]]]


def test_a_hidden_taxon_s_fixed_logit_must_also_be_cleared():
    """The export's calibration gives a hidden taxon a fixed logit (-1e4): a leader whose own
    logit could fall near it is not settled (a rank of thousands of taxa, votes near the floor)."""
    votes = [np.array([[-8500.0, -10700.0]]), np.array([[-8500.0, -10700.0, -1e5, -1e5]])]
    args = ([SCALE, SCALE], [ORDERS, SPECIES], REAL, PARENTS)
    assert settled_by_barcodes(votes, *args)[0]  # 2200 ahead of its sibling at each rank
    # the leader's logit can fall to -8500 - 1000 = -9500, under -1e4 + 750 = -9250
    assert not settled_by_barcodes(votes, *args, masked_logit=-1.0e4)[0]
    votes = [v + 1000.0 for v in votes]  # at worst -8500: 1500 above the mask
    assert settled_by_barcodes(votes, *args, masked_logit=-1.0e4)[0]


def test_a_placeholder_order_s_borrowed_cosine_stays_within_the_bound():
    """Through prompt_cosines in float32, as identify runs it: order 1 is a placeholder whose
    score is its best child's cosine. A read settled onto it keeps exactly the same one-hot
    probabilities for any query, the worst case for each rival included."""
    from hir_edge.runtime.scoring import prompt_cosines

    rng = np.random.default_rng(1)
    banks = [ORDERS.astype(np.float32), SPECIES.astype(np.float32)]
    masks = [np.array([True, False]), np.ones(4, bool)]
    votes = [np.array([[0.0, 2760.0]]), np.array([[-5000.0, -5000.0, 1650.0, 0.0]])]
    assert settled_by_barcodes(votes, [SCALE, SCALE], banks, masks, PARENTS)[0]
    votes_short = [np.array([[0.0, 2740.0]]), votes[1]]  # under 2 x 1000 + 750 at order
    assert not settled_by_barcodes(votes_short, [SCALE, SCALE], banks, masks, PARENTS)[0]
    queries = [-SPECIES[2], SPECIES[0] - SPECIES[2], SPECIES[3] - SPECIES[2], ORDERS[0]]
    queries += list(rng.normal(size=(50, 4)))
    seen = set()
    for q in queries:
        q = (np.asarray(q) / np.linalg.norm(q)).astype(np.float32)[None]
        cos = prompt_cosines(q, banks, masks, PARENTS)
        logits = [v + SCALE * c.astype(np.float64) for v, c in zip(votes, cos)]
        probs = tree_probabilities(logits, PARENTS, [1.0, 1.0])
        seen.add(tuple(np.concatenate([p.ravel() for p in probs])))
    assert seen == {(0.0, 1.0, 0.0, 0.0, 1.0, 0.0)}


@pytest.fixture(scope="module")
def identifiers():
    """The demo bundle with DNA scoring like the real-DNA bundle's (bold100: prompt cosine /
    0.01, logit temperature 0.1, no embedding-neighbour vote) but barcode votes weighted 64, not
    32: with 5 orders (bold100 has 14) an unvoted order's floor is higher, and at 32 no read of
    the demo would be settled. Asked with and without the encoder on every read; the encoder's
    rows are counted."""
    from hir_edge.runtime.backends import OnnxRuntimeBackend
    from hir_edge.runtime.bundle import default_bundle, open_bundle
    from hir_edge.runtime.identifier import Identifier

    bundle = open_bundle(default_bundle())
    scoring = copy.deepcopy(bundle.manifest.scoring)
    scoring["temperatures"]["dna"] = [0.01] * 4
    scoring["logit_temperatures"]["dna"] = [0.1] * 4
    scoring["barcode_weight"]["dna"] = 64.0
    scoring["reference_weight"]["dna"] = 0.0
    bundle.manifest = dataclasses.replace(bundle.manifest, scoring=scoring)
    backend = OnnxRuntimeBackend(bundle, "int8", device="cpu", threads=1)
    encoded = []
    embed_dna = backend.embed_dna
    backend.embed_dna = lambda ids, mask: encoded.append(len(ids)) or embed_dna(ids, mask)
    both = Identifier(bundle, backend), Identifier(bundle, backend, encode_every_read=True)
    yield bundle, both, encoded
    for identifier in both:
        identifier.close()


def test_skipping_the_encoder_changes_no_answer(identifiers):
    from hir_edge.dna.qc import clean_read
    from hir_edge.runtime.benchmark import read_sets
    from hir_edge.runtime.schema import Specimen

    bundle, (skipping, every_read), encoded = identifiers
    sets = read_sets(bundle, n=24)
    specimens = [
        Specimen(f"{name}{i}", *clean_read(raw, orient=True))
        for name, reads in sets.items()
        for i, raw in enumerate(reads)
    ]
    encoded.clear()
    answers = [json.dumps(r.to_dict(), sort_keys=True) for r in skipping.identify(specimens)]
    ran_skipping = sum(encoded)
    encoded.clear()
    again = [json.dumps(r.to_dict(), sort_keys=True) for r in every_read.identify(specimens)]
    assert answers == again
    assert sum(encoded) == len(specimens)  # every read (all 96 are usable)
    assert ran_skipping == 18
    # and bit for bit before rounding: every probability, the path and the placement's reach
    _, settled_ev = skipping.evidence(specimens)
    _, encoded_ev = every_read.evidence(specimens)
    for a, b in zip(settled_ev, encoded_ev):
        assert all(np.array_equal(x, y) for x, y in zip(a.probs, b.probs))
        assert np.array_equal(a.path, b.path) and np.array_equal(a.path_p, b.path_p)
        assert np.array_equal(a.reach, b.reach)
    ran = {}
    for name in sets:
        encoded.clear()
        skipping.identify([s for s in specimens if s.id.startswith(name)])
        ran[name] = sum(encoded)
    # the reads of the library's species are settled by their votes; 18 of the 24 shuffled
    # reads are not (6 are: one chance hit takes the votes), and none of those gets a taxon
    assert ran == {"known": 0, "paper": 0, "150 bp": 0, "unrelated": 18}
    shuffled = [json.loads(a) for a in answers if json.loads(a)["id"].startswith("unrelated")]
    assert [a["assigned"]["rank"] for a in shuffled] == [None] * 24


def test_a_read_with_a_photo_always_runs_the_encoder(identifiers):
    from hir_edge.dna.qc import clean_read
    from hir_edge.runtime.benchmark import read_sets
    from hir_edge.runtime.schema import Specimen

    bundle, (skipping, _), encoded = identifiers
    read, qc = clean_read(read_sets(bundle, n=1)["known"][0], orient=True)
    photo = sorted((EXAMPLES / "photos").iterdir())[0]
    encoded.clear()
    skipping.identify([Specimen("alone", read, qc), Specimen("paired", read, qc, image=photo)])
    assert encoded == [1]  # the paired read only: the fused embedding needs it
