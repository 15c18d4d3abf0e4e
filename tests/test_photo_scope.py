"""Photo scope: Ledoit-Wolf shrinkage, Mahalanobis distances, and the decision they drive."""

from __future__ import annotations

import numpy as np
import pytest

from hir_edge.runtime.answer import Evidence
from hir_edge.runtime.decide import AnswerRules
from hir_edge.runtime.photo_scope import PhotoScope, ledoit_wolf_shrinkage
from hir_edge.runtime.scoring import ScoringSettings


def _paper_shrinkage(x: np.ndarray) -> float:
    """Ledoit & Wolf (2004), Lemma 3.2-3.4 written out term by term (a loop over samples)."""
    n, p = x.shape
    s = x.T @ x / n
    m = np.trace(s) / p
    d2 = np.linalg.norm(s - m * np.eye(p), "fro") ** 2 / p
    b2 = sum(np.linalg.norm(np.outer(r, r) - s, "fro") ** 2 / p for r in x) / n**2
    return min(b2, d2) / d2


@pytest.mark.parametrize("n, p", [(10, 4), (40, 16), (300, 8)])
def test_shrinkage_matches_the_papers_formula(n, p):
    x = np.random.default_rng(n).normal(size=(n, p)) * np.linspace(0.2, 3.0, p)
    assert ledoit_wolf_shrinkage(x) == pytest.approx(_paper_shrinkage(x), rel=1e-10)


def test_distances_by_hand():
    """Two species in 2-D, two photos each: deviations (±1, 0) and (0, ±2) around the means
    (0, 0) and (10, 2 - 2 = 0): sample covariance diag(0.5, 2) for the shrinkage, and
    diag(1, 4) over its 4 - 2 degrees of freedom for the distances."""
    x = np.array([[1, 0], [-1, 0], [10, 2], [10, -2]], dtype=float)
    labels = np.array([[0, 0], [0, 0], [0, 1], [0, 1]])
    scope = PhotoScope.fit(x, labels)
    # sample covariance diag(0.5, 2), mean variance 1.25: delta = (0.75² + 0.75²) / 2 = 0.5625;
    # beta = (sum ||x||⁴ / n - ||S||²) / (n p) = ((1 + 1 + 16 + 16) / 4 - 4.25) / 8 = 0.53125
    assert scope.shrinkage == pytest.approx(0.53125 / 0.5625)
    w = scope.shrinkage
    cov = (1 - w) * np.diag([1.0, 4.0]) + w * 2.5 * np.eye(2)
    q = np.array([[3.0, 1.0], [9.0, 0.0]])
    expect = [
        min(np.sqrt((q[i] - m) @ np.linalg.inv(cov) @ (q[i] - m)) for m in ([0, 0], [10, 0]))
        for i in range(2)
    ]
    assert scope.distances(q) == pytest.approx(expect)
    assert scope.distances(np.array([[10.0, 0.0]])) == pytest.approx([0.0], abs=1e-9)


def test_references_without_a_photo_are_left_out():
    x = np.array([[1, 0], [-1, 0], [0, 0], [10, 2], [10, -2]], dtype=float)
    labels = np.array([[0, 0], [0, 0], [0, 2], [0, 1], [0, 1]])
    with_gap = PhotoScope.fit(x, labels)
    without = PhotoScope.fit(x[[0, 1, 3, 4]], labels[[0, 1, 3, 4]])
    assert np.allclose(with_gap.means, without.means)
    assert PhotoScope.fit(x[:1], labels[:1]) is None  # one photo: no spread to measure
    assert PhotoScope.fit(np.ones((3, 2)), np.zeros((3, 2), int)) is None  # all alike
    # two photos of one species spread along one line: Ledoit-Wolf gives no weight to the
    # identity, and the covariance cannot be inverted: no fit, the similarity rule stays
    assert ledoit_wolf_shrinkage(np.array([[1.0, 0.0], [-1.0, 0.0]])) == 0.0
    assert PhotoScope.fit(x[:2], labels[:2]) is None
    # species of one photo add a mean but no spread: the same covariance as without them
    lone = np.vstack([x[[0, 1, 3, 4]], [[5.0, 5.0]]])
    lone_labels = np.vstack([labels[[0, 1, 3, 4]], [[0, 3]]])
    with_lone = PhotoScope.fit(lone, lone_labels)
    assert len(with_lone.means) == 3
    assert np.allclose(with_lone.whitening, without.whitening)


def _photo(distance: float | None) -> Evidence:
    probs = [np.array([1.0]), np.array([1.0])]
    return Evidence(
        "image", probs, np.array([0, 0]), np.array([1.0, 0.9]), 1, np.array([0.99]), None,
        None, None, scope_distance=distance,
    )  # fmt: skip


def _rules(section: dict) -> AnswerRules:
    scoring = ScoringSettings.from_section(section, 2)
    return AnswerRules(("order", "species"), [np.array([True])] * 2, scoring, 1)


def test_a_photo_beyond_the_limit_gets_no_answer():
    rules = _rules({"scope_distance": {"image": 12.5}, "scope": {"image": 0.5}})
    assert rules.decide(_photo(12.4)).level == 1
    refused = rules.decide(_photo(30.25))
    assert refused.level == -1 and refused.confidence == 0.0
    assert refused.warnings == [
        "unlike the bundle's reference photos (distance 30.2 to the nearest species, beyond "
        "the 12.5 that validation photos stay within): no answer"
    ]


def test_a_bundle_without_a_distance_limit_keeps_the_nearest_similarity_rule():
    rules = _rules({"scope": {"image": 0.995}})
    (warning,) = rules.decide(_photo(None)).warnings
    assert warning == (
        "unlike every reference photo of the bundle (nearest similarity 0.990 < 0.995): no answer"
    )
    assert _rules({"scope": {"image": 0.98}}).decide(_photo(None)).level == 1
