"""Evaluation protocols and scoring on small hand-made cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from hir_edge.evaluation.hierarchy import consistency, mistake_severity, top1_per_rank
from hir_edge.evaluation.knn import clibd_protocol, micro_macro, nearest_labels
from hir_edge.evaluation.protocol import paper_protocol, true_rank_positions
from hir_edge.runtime.scoring import (
    assign,
    choose_thresholds,
    expected_calibration_error,
    fit_temperatures,
    greedy_paths,
    tree_probabilities,
)
from hir_edge.taxonomy import Taxonomy

# Two orders; order 0 has families 0,1; order 1 has family 2. Banks are one-hot directions.
TAX = Taxonomy(
    [
        [("A",), ("B",)],
        [("A", "a1"), ("A", "a2"), ("B", "b1")],
        [("A", "a1", "g1"), ("A", "a1", "g2"), ("A", "a2", "g3"), ("B", "b1", "g4")],
        [
            ("A", "a1", "g1", "s1"),
            ("A", "a1", "g2", "s2"),
            ("A", "a2", "g3", "s3"),
            ("B", "b1", "g4", "s4"),
        ],
    ]
)


def _unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_true_rank_positions_counts_ties_against_the_query():
    bank = np.eye(3)
    q = _unit([[1.0, 1.0, 0.0], [0.0, 0.2, 1.0]])
    # Query 0 ties between taxa 0 and 1: truth 1 ranks second (position 1), not first.
    pos = true_rank_positions(q, bank, np.array([1, -1]))
    assert pos.tolist() == [1, -1]
    pos = true_rank_positions(q, bank, np.array([0, 1]))
    assert pos.tolist() == [1, 1]


def test_paper_protocol_top1_top5_and_global_by_hand():
    # One block of dimensions per rank (2 + 3 + 4 + 4 = 13): a query can point at one taxon
    # per rank at once, so every rank's ranking is known.
    dims = [2, 3, 4, 4]
    offsets = np.cumsum([0, *dims[:-1]])
    banks = []
    for level, n in enumerate(dims):
        b = np.zeros((n, sum(dims)))
        b[np.arange(n), offsets[level] + np.arange(n)] = 1.0
        banks.append(b)

    def query(ids):
        q = np.zeros(sum(dims))
        for level, i in enumerate(ids):
            q[offsets[level] + i] = 1.0
        return q

    queries = _unit(
        [query([0, 0, 0, 0]), query([0, 1, 2, 2]), query([1, 2, 3, 0]), query([0, 0, 1, 1])]
    )
    labels = np.array([[0, 0, 0, 0], [0, 1, 2, 2], [1, 2, 3, 3], [0, 0, -1, -1]])
    res = paper_protocol(queries, banks, labels, TAX.ranks, ks=(1,))
    # order: all 4 right; species: specimens 0,1 right, 2 wrong (3 labelled) → 66.7%
    assert res.cell("order", 1) == 100.0
    assert res.cell("species", 1) == pytest.approx(200 / 3)
    assert res.counts == {"order": 4, "family": 4, "genus": 3, "species": 3, "global": 4}
    # Global: specimen 2 wrong at species → 3 of 4; specimen 3 only judged at order and family.
    assert res.cell("global", 1) == 75.0


def test_fully_labelled_compares_ranks_on_the_same_specimens():
    # Specimen 2 is named only to order and its photo points at the wrong order: it lowers
    # order's Top-1 over all labelled specimens (2 of 3) but is not among the fully labelled
    # ones, where order (2 of 2) and family (1 of 2) are read on the same specimens.
    banks = [np.eye(5)[:2], np.eye(5)[2:5]]
    queries = _unit([[1, 0, 1, 0, 0], [0, 1, 0, 1, 0], [0, 1, 0, 0, 1]])
    labels = np.array([[0, 0], [1, 2], [0, -1]])
    res = paper_protocol(queries, banks, labels, ("order", "family"), ks=(1, 2))
    assert res.cell("order", 1) == pytest.approx(200 / 3)
    assert res.fully_labelled_count == 2
    assert res.fully_labelled == {"order": {1: 100.0, 2: 100.0}, "family": {1: 50.0, 2: 50.0}}
    out = res.to_dict()["fully_labelled"]
    assert out == {
        "count": 2,
        "accuracy": {
            "order": {"top1": 100.0, "top2": 100.0},
            "family": {"top1": 50.0, "top2": 50.0},
        },
    }


def test_nearest_labels_and_micro_macro():
    keys = _unit([[1, 0], [0, 1], [1, 1]])
    key_labels = np.array([[0, 5], [1, -1], [0, 6]])
    queries = _unit([[0.9, 0.1], [0.1, 0.9]])
    pred, cos = nearest_labels(queries, keys, key_labels)
    # Query 1 is nearest key 1, which has no label at rank 1: the next nearest labelled is key 2.
    assert pred.tolist() == [[0, 5], [1, 6]]
    assert cos[1, 1] == pytest.approx(float(queries[1] @ keys[2]))
    micro, macro, n = micro_macro(np.array([0, 0, 1, 1]), np.array([0, 0, 0, 1]))
    assert (micro, macro, n) == (75.0, pytest.approx(100 * (2 / 3 + 1) / 2), 4)


def test_clibd_protocol_splits_seen_and_unseen():
    keys = _unit([[1, 0, 0], [0, 1, 0]])
    key_labels = np.array([[0, 0, 0, 0], [0, 0, 1, 1]])
    queries = _unit([[1, 0.1, 0], [0.1, 1, 0.2]])
    # The second query's species is absent from the training taxonomy: -1 at species rank.
    q_labels = np.array([[0, 0, 0, 0], [0, 0, 1, -1]])
    out = clibd_protocol(
        queries, q_labels, keys, key_labels, TAX.ranks, unseen=np.array([0, 1], bool)
    )
    assert out["seen"]["species"]["micro"] == 100.0
    assert out["unseen"]["genus"]["micro"] == 100.0
    assert out["unseen"]["species"]["n"] == 0


def test_consistency_and_mistake_severity():
    pred = np.array([[0, 0, 0, 0], [0, 0, 2, 2], [1, 2, 3, 0]])
    assert consistency(pred, TAX) == pytest.approx(100 / 3)
    truth = np.array([[0, 0, 0, 1], [0, 0, 0, 0], [1, 2, 3, 3]])
    sev = mistake_severity(pred, truth, TAX)
    # species mistakes: s1 for s2 (same family a1: distance 4), s3 for s1 (same order: 6),
    # s1 for s4 (different orders: 8)
    assert sev["species"]["mistakes"] == 3
    assert sev["species"]["mean_distance"] == pytest.approx((4 + 6 + 8) / 3)
    assert sev["species"]["within"] == {
        "none": 1,
        "same order": 1,
        "same family": 1,
        "same genus": 0,
    }


def test_tree_probabilities_are_consistent_by_construction():
    rng = np.random.default_rng(0)
    scores = [rng.normal(size=(5, TAX.size(lv))) for lv in range(4)]
    parents = [TAX.parents(lv) for lv in range(4)]
    probs = tree_probabilities(scores, parents, [0.5, 0.3, 0.2, 0.1])
    assert np.allclose(probs[0].sum(axis=1), 1.0)
    for level in range(1, 4):
        for parent_id in range(TAX.size(level - 1)):
            kids = TAX.children(level - 1, parent_id)
            if len(kids):
                assert np.allclose(
                    probs[level][:, kids].sum(axis=1), probs[level - 1][:, parent_id]
                )
    # by hand for one row: p(family a2) = p(A) * softmax(a1, a2 within A)[a2]
    s0, s1 = scores[0][0] / 0.5, scores[1][0] / 0.3
    p_a = np.exp(s0[0]) / np.exp(s0).sum()
    expected = p_a * np.exp(s1[1]) / (np.exp(s1[0]) + np.exp(s1[1]))
    assert probs[1][0, 1] == pytest.approx(expected)


def test_greedy_path_and_assignment_stop_at_the_threshold():
    probs = [
        np.array([[0.9, 0.1]]),
        np.array([[0.6, 0.3, 0.1]]),
        np.array([[0.5, 0.1, 0.3, 0.1]]),
        np.array([[0.5, 0.1, 0.3, 0.1]]),
    ]
    parents = [TAX.parents(lv) for lv in range(4)]
    ids, p = greedy_paths(probs, parents)
    assert ids.tolist() == [[0, 0, 0, 0]] and p.tolist() == [[0.9, 0.6, 0.5, 0.5]]
    assert assign(p, [0.8, 0.8, 0.8, 0.8]).tolist() == [0]  # order only
    assert assign(p, [0.5, 0.5, 0.5, 0.5]).tolist() == [3]
    assert assign(p, [0.95, 0.1, 0.1, 0.1]).tolist() == [-1]


def test_fit_temperatures_recovers_a_known_temperature():
    rng = np.random.default_rng(1)
    n = 4000
    true_t = 0.1
    scores, labels = [], []
    logits = rng.normal(size=(n, 2)) * 0.2
    p = np.exp(logits / true_t)
    p /= p.sum(axis=1, keepdims=True)
    y0 = (rng.random(n) < p[:, 1]).astype(int)
    scores.append(logits)
    labels.append(y0)
    parents = [np.array([-1, -1])]
    temps = fit_temperatures(scores, parents, np.stack(labels, axis=1))
    assert temps[0] == pytest.approx(true_t, rel=0.15)


def test_ece_by_hand():
    conf = np.array([0.95, 0.95, 0.55, 0.55])
    correct = np.array([1, 0, 1, 1])
    # two bins: (0.95 vs 0.5) and (0.55 vs 1.0), each half the data
    assert expected_calibration_error(conf, correct, bins=10) == pytest.approx(
        0.5 * 0.45 + 0.5 * 0.45
    )


def test_choose_thresholds_reaches_target_precision():
    ids = np.array([[0], [0], [0], [0], [0]])
    p = np.array([[0.9], [0.8], [0.7], [0.6], [0.5]])
    truth = np.array([[0], [0], [0], [1], [1]])
    # From the top: 1/1, 2/2, 3/3, 3/4, 3/5 → the lowest threshold with precision ≥ 0.95 is 0.7
    assert choose_thresholds(ids, p, truth, 0.95) == [0.7]
    assert choose_thresholds(ids, p, np.array([[1]] * 5), 0.95) == [1.0]


def test_top1_per_rank_ignores_masked_candidates():
    scores = [np.array([[0.1, 0.9]]), np.array([[0.9, 0.2, 0.1]])]
    masks = [np.array([True, True]), np.array([False, True, True])]
    assert top1_per_rank(scores, masks).tolist() == [[1, 1]]


def test_log_probabilities_keep_the_cost_of_confident_mistakes():
    from hir_edge.runtime.scoring import tree_log_probabilities

    scores = [np.array([[0.0, 1.0]])]
    parents = [np.array([-1, -1])]
    logp = tree_log_probabilities(scores, parents, [0.01])[0]
    # truth is class 0, which trails by 1.0 / 0.01 = 100 logits: −log p = 100 (+ log(1+e^-100))
    assert -logp[0, 0] == pytest.approx(100.0, abs=1e-9)
    probs = tree_probabilities(scores, parents, [0.5])[0]
    assert np.allclose(np.exp(tree_log_probabilities(scores, parents, [0.5])[0]), probs)


def test_fit_does_not_sharpen_into_confident_mistakes():
    """10% of specimens have the wrong taxon ahead by 0.05: the fitted temperature stays sane."""
    rng = np.random.default_rng(2)
    n = 1000
    scores = rng.normal(0, 0.01, size=(n, 5))
    truth = rng.integers(0, 5, n)
    scores[np.arange(n), truth] += 0.05
    wrong = rng.random(n) < 0.1
    other = (truth + 1) % 5
    scores[np.flatnonzero(wrong), other[wrong]] += 0.1
    (t,) = fit_temperatures([scores], [np.full(5, -1)], truth[:, None])
    assert 0.01 < t < 0.1
