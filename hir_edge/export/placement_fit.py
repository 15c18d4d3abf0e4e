"""Fitting the read placement on open-set rows: a small network per rank, the thresholds that
keep every read class precise, and the identity bands.

The rows come from :mod:`hir_edge.export.open_set` (reads of known and of hidden taxa, clean,
degraded and cut); the model is :class:`~hir_edge.runtime.placement.Placement`, nested (a rank
at least as likely right as a finer one on the path), and its thresholds are chosen on the
nested probabilities, as the runtime computes them. Each rank's
model is a one-hidden-layer network on the read's evidence (:func:`fit_network`; rows weighted
so each class counts equally), and the thresholds the set, among those the coordinate search
visits, that answers most reads deepest while keeping the answers at every rank right at least
``target_precision`` of the time in every class and read kind (:func:`_thresholds`). The bands
are the 1% low quantile of best-hit identities of reads whose taxon at that rank is in the
library.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from hir_edge.runtime.placement import Placement, deepest_passing, fit_logistic

THRESHOLD_GRID = np.round(
    np.concatenate([np.arange(0.5, 0.95, 0.05), np.arange(0.95, 1.0, 0.005)]), 4
)
MIN_GROUP = 20  # a group's answers at a rank are judged as if there were at least this many
BAND_QUANTILE = 0.01
HIDDEN_UNITS = 8  # of each rank's placement network (0: a logistic regression)


def fit_placement(
    features: np.ndarray,
    correct: np.ndarray,
    usable: np.ndarray,
    identity: np.ndarray,
    present: np.ndarray,
    groups: list[str],
    classes: list[str],
    ranks: tuple[str, ...],
    target_precision: float = 0.95,
    hidden_units: int = HIDDEN_UNITS,
    on_path: np.ndarray | None = None,
) -> tuple[Placement, dict]:
    """Fit the per-rank models, thresholds and bands on open-set rows.

    Args:
        features: [N, L, F]; correct, usable: [N, L] (usable: a taxon on the path and a truth
            to judge it by); identity: [N] best-hit identity; present: [N, L] the read's taxon
            at that rank is in the library; groups: per row "class|kind"; classes: per row.
        on_path: [N, L] a taxon on the read's answer path, as the runtime knows it; the
            thresholds are chosen on the nested probabilities
            (:func:`~hir_edge.runtime.placement.nest`), as the runtime computes them. Default:
            ``usable``, which also leaves out ranks without a truth (the runtime does not).

    Returns:
        The placement model and a report per group: reads, answers per rank, precision.
    """
    n, levels, nf = features.shape
    counts = defaultdict(int)
    for c in classes:
        counts[c] += 1
    weight = np.array([1.0 / counts[c] for c in classes])
    weight *= n / weight.sum()
    mean, scale, weights, hidden_w, hidden_b = [], [], [], [], []
    for level in range(levels):
        rows = usable[:, level]
        x = features[rows, level]
        mu = x.mean(axis=0) if len(x) else np.zeros(nf)
        sd = x.std(axis=0) if len(x) else np.ones(nf)
        sd = np.where(sd > 1e-6, sd, 1.0)
        y = correct[rows, level].astype(float)
        if hidden_units:
            w1, b1, w = fit_network((x - mu) / sd, y, weight[rows], hidden_units, seed=level)
            hidden_w.append(tuple(tuple(float(v) for v in unit) for unit in w1))
            hidden_b.append(tuple(float(v) for v in b1))
        elif len(x):
            w = fit_logistic((x - mu) / sd, y, sample_weight=weight[rows])
        else:
            w = np.zeros(nf + 1)
        mean.append(mu)
        scale.append(sd)
        weights.append(w)
    bands = []
    for level in range(levels):
        within = identity[present[:, level]]
        bands.append(float(np.quantile(within, BAND_QUANTILE)) if len(within) else 0.0)
    draft = Placement(
        ranks=tuple(ranks),
        mean=tuple(tuple(float(v) for v in m) for m in mean),
        scale=tuple(tuple(float(v) for v in s) for s in scale),
        weights=tuple(tuple(float(v) for v in w) for w in weights),
        thresholds=(0.5,) * levels,
        bands=tuple(bands),
        target_precision=target_precision,
        hidden_weights=tuple(hidden_w) if hidden_units else None,
        hidden_bias=tuple(hidden_b) if hidden_units else None,
        nested=True,
    )
    probs = draft.probabilities(features, usable if on_path is None else on_path)
    thresholds = _thresholds(probs, correct, usable, groups, target_precision)
    placement = Placement(**{**draft.__dict__, "thresholds": tuple(thresholds)})
    return placement, report(placement, probs, correct, usable, groups)


def fit_network(
    x: np.ndarray,
    y: np.ndarray,
    sample_weight: np.ndarray,
    units: int,
    l2: float = 1e-3,
    steps: int = 2000,
    lr: float = 0.01,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A one-hidden-layer (tanh) network for 0/1 targets, fitted by full-batch Adam on the
    weighted cross-entropy plus ``l2`` on the weights; seeded, so an export is repeatable.

    Returns:
        [F, units] hidden weights, [units] hidden biases and [bias, one weight per unit] of
        the output (:class:`~hir_edge.runtime.placement.Placement`'s layout). No rows: a
        network that says 0.5.
    """
    n, nf = x.shape
    rng = np.random.default_rng(seed)
    params = [
        rng.normal(0.0, 1.0 / np.sqrt(max(nf, 1)), (nf, units)),
        np.zeros(units),
        np.zeros(1),
        rng.normal(0.0, 1.0 / np.sqrt(units), units),
    ]
    if n == 0:
        return params[0], params[1], np.zeros(units + 1)
    sw = np.asarray(sample_weight, dtype=float)
    sw = sw / sw.sum()
    first = [np.zeros_like(p) for p in params]
    second = [np.zeros_like(p) for p in params]
    for t in range(1, steps + 1):
        w1, b1, b2, w2 = params
        h = np.tanh(x @ w1 + b1)
        prob = 1.0 / (1.0 + np.exp(-np.clip(h @ w2 + b2[0], -30, 30)))
        dz = sw * (prob - y)
        dh = np.outer(dz, w2) * (1.0 - h * h)
        grads = [x.T @ dh + l2 * w1, dh.sum(axis=0), np.array([dz.sum()]), h.T @ dz + l2 * w2]
        for i, g in enumerate(grads):
            first[i] = 0.9 * first[i] + 0.1 * g
            second[i] = 0.999 * second[i] + 0.001 * g * g
            step = first[i] / (1 - 0.9**t) / (np.sqrt(second[i] / (1 - 0.999**t)) + 1e-8)
            params[i] = params[i] - lr * step
    w1, b1, b2, w2 = params
    return w1, b1, np.concatenate([b2, w2])


def _too_many_wrong(answers: int, right: int, target: float) -> bool:
    """More wrong answers than ``target`` allows, a group with few answers counted as if it
    had :data:`MIN_GROUP` (so one wrong answer in 20 is allowed, five wrong in five are not)."""
    allowed = int((1.0 - target) * max(answers, MIN_GROUP) + 1e-9)
    return answers - right > allowed


def _precise_at(level, assigned, correct, group_of, n_groups, target) -> bool:
    """Answers at ``level`` are right often enough in every group."""
    at = assigned == level
    for g in range(n_groups):
        rows = at & (group_of == g)
        if _too_many_wrong(int(rows.sum()), int(correct[rows, level].sum()), target):
            return False
    return True


def _thresholds(probs, correct, usable, groups, target, passes: int = 6) -> list[float]:
    """Thresholds at which answers at every rank are right at least ``target`` of the time in
    every group (:func:`_too_many_wrong`).

    Coordinate passes, coarse to fine, each taking a rank's lowest threshold that is precise
    with the others held. A finer rank's threshold moves reads to and from the coarser ranks,
    so passes can cycle between states: of the states visited that are precise at every rank,
    the one answering most reads deepest (the sum of answered depths) is kept, and where none
    is, every rank's threshold is raised past 1 (no answers).
    """
    levels = probs.shape[1]
    thresholds = [float(THRESHOLD_GRID[0])] * levels
    names = sorted(set(groups))
    group_of = np.array([names.index(g) for g in groups])
    best, best_depth = [1.01] * levels, -1
    seen = []
    for _ in range(passes):
        for level in range(levels):
            for t in [*THRESHOLD_GRID, 1.01]:
                trial = [*thresholds[:level], float(t), *thresholds[level + 1 :]]
                assigned = deepest_passing(probs, usable, trial)
                if _precise_at(level, assigned, correct, group_of, len(names), target):
                    thresholds[level] = float(t)
                    break
        assigned = deepest_passing(probs, usable, thresholds)
        if all(
            _precise_at(lv, assigned, correct, group_of, len(names), target) for lv in range(levels)
        ):
            depth = int((assigned + 1).sum())
            if depth > best_depth:
                best, best_depth = list(thresholds), depth
        if thresholds in seen:
            break
        seen.append(list(thresholds))
    return best


def report(placement, probs, correct, usable, groups) -> dict:
    """Per group: reads, answers per rank, and the share right at the answered rank."""
    level = placement.assign(probs, usable)
    out = {}
    for g in sorted(set(groups)):
        rows = np.array([x == g for x in groups])
        at = level[rows]
        right = correct[rows][np.arange(rows.sum()), np.maximum(at, 0)] & (at >= 0)
        answered = int((at >= 0).sum())
        out[g] = {
            "n": int(rows.sum()),
            "answered_at": {r: int((at == i).sum()) for i, r in enumerate(placement.ranks)},
            "precision_%": 100.0 * float(right.sum()) / answered if answered else None,
        }
    return out


__all__ = ["HIDDEN_UNITS", "fit_network", "fit_placement", "report"]
