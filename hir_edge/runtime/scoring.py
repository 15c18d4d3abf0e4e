"""From cosine scores per rank to probabilities that are consistent down the tree, and an answer.

Per-rank prompt ranking (the paper's protocol) scores every rank independently, so it can say
"order Diptera" and "species *Aphis fabae*" (a bug) at once. A field answer must not. Here each
rank's scores become probabilities top-down:

    p(order o)   = softmax over orders of s_o / T_order
    p(child c)   = p(parent of c) · softmax over the siblings of c of s_c / T_rank(c)

so a child never outweighs its parent and the children of a taxon share exactly its mass. The
temperatures T_l are fitted on validation data (:func:`fit_temperatures`). The answer walks down
the tree from the most probable order, taking the most probable child each time, and stops at the
deepest rank whose probability passes that rank's threshold: "family Chironomidae" rather than a
guessed species.

numpy only (this runs in the field).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from hir_edge.config_loader import check_keys
from hir_edge.dna.align import Hit
from hir_edge.dna.divergence import MIN_ESTIMABLE_IDENTITY, novel_species
from hir_edge.errors import BundleError
from hir_edge.runtime.placement import Placement

MODALITIES = ("image", "dna", "fused")


def _log_softmax_groups(logits: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Log-softmax of each row's logits within groups of columns (siblings share a parent)."""
    x = logits.astype(np.float64)
    group_max = np.full((x.shape[0], n_groups), -np.inf)
    np.maximum.at(group_max.T, groups, x.T)
    shifted = x - group_max[:, groups]
    sums = np.zeros((x.shape[0], n_groups))
    np.add.at(sums.T, groups, np.exp(shifted).T)
    return shifted - np.log(sums[:, groups])


def tree_log_probabilities(
    scores: Sequence[np.ndarray],
    parents: Sequence[np.ndarray],
    temperatures: Sequence[float],
) -> list[np.ndarray]:
    """Top-down log-probabilities per rank (see :func:`tree_probabilities`).

    In log space a confident mistake keeps its true cost (−log p can be 70 nats) instead of
    underflowing to p = 0; the temperature fit relies on that.
    """
    logp: list[np.ndarray] = []
    for level, (s, t) in enumerate(zip(scores, temperatures)):
        logits = np.asarray(s, dtype=np.float64) / float(t)
        if level == 0:
            lp = _log_softmax_groups(logits, np.zeros(logits.shape[1], dtype=np.int64), 1)
        else:
            parent = np.asarray(parents[level], dtype=np.int64)
            lp = _log_softmax_groups(logits, parent, logp[-1].shape[1]) + logp[-1][:, parent]
        logp.append(lp)
    return logp


def tree_probabilities(
    scores: Sequence[np.ndarray],
    parents: Sequence[np.ndarray],
    temperatures: Sequence[float],
) -> list[np.ndarray]:
    """Top-down probabilities per rank.

    Args:
        scores: per rank, [N, n_l] cosine similarities of each query to each taxon's prompt
            (or any score where higher is better).
        parents: per rank, [n_l] parent id at the next coarser rank (ignored at the top rank).
        temperatures: per rank, T_l > 0.

    Returns:
        Per rank, [N, n_l] probabilities; each row of the top rank sums to 1, and the children
        of a taxon sum to its probability (a taxon without children keeps its mass at its rank).
    """
    return [np.exp(lp) for lp in tree_log_probabilities(scores, parents, temperatures)]


@dataclass
class Assignment:
    """The answer for one specimen: a path down the tree and where it stops."""

    path: list[int]  # taxon id per rank along the greedy path (as deep as the tree goes)
    path_probs: list[float]  # probability of each step's taxon
    assigned_level: int  # deepest rank whose probability passes its threshold (-1: none)

    @property
    def confidence(self) -> float:
        return self.path_probs[self.assigned_level] if self.assigned_level >= 0 else 0.0


def greedy_paths(
    probs: Sequence[np.ndarray], parents: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Walk down from the most probable order, taking the most probable child at each rank.

    Returns:
        (ids, p): [N, L] taxon ids along each path (-1 once a taxon has no children) and their
        probabilities (0 there).
    """
    n = probs[0].shape[0]
    levels = len(probs)
    ids = np.full((n, levels), -1, dtype=np.int64)
    p = np.zeros((n, levels))
    ids[:, 0] = probs[0].argmax(axis=1)
    p[:, 0] = probs[0][np.arange(n), ids[:, 0]]
    for level in range(1, levels):
        parent = np.asarray(parents[level])
        current = ids[:, level - 1]
        # mask children of the current node; rows whose path already ended stay -1
        allowed = (parent[None, :] == current[:, None]) & (current[:, None] >= 0)
        masked = np.where(allowed, probs[level], -1.0)
        best = masked.argmax(axis=1)
        has_child = allowed.any(axis=1)
        ids[:, level] = np.where(has_child, best, -1)
        p[:, level] = np.where(has_child, probs[level][np.arange(n), best], 0.0)
    return ids, p


def assign(path_probs: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """Deepest rank on each path whose probability passes that rank's threshold (-1: none).

    The answer is a prefix of the path: it stops at the first rank that fails (thresholds may
    differ per rank, so a finer rank passing after a coarser one failed is not taken). A path
    that ended — a taxon without children, probability 0 — never passes, even at threshold 0.
    """
    passing = (path_probs >= np.asarray(thresholds, dtype=np.float64)[None, :]) & (path_probs > 0)
    # prefix: stop at the first rank that fails
    prefix = np.cumprod(passing, axis=1).astype(bool)
    return prefix.sum(axis=1) - 1


# --------------------------------------------------------------------------- calibration
def _nll_at(level: int, scores, parents, temps, labels) -> float:
    logp = tree_log_probabilities(scores[: level + 1], parents[: level + 1], temps[: level + 1])
    y = labels[:, level]
    keep = y >= 0
    if not keep.any():
        return 0.0
    return float(-logp[level][np.flatnonzero(keep), y[keep]].mean())


def fit_temperatures(
    scores: Sequence[np.ndarray],
    parents: Sequence[np.ndarray],
    labels: np.ndarray,
    grid: np.ndarray | None = None,
) -> list[float]:
    """Per-rank temperatures minimising the NLL of the tree probabilities, coarse to fine.

    Rank l's temperature is fitted with the coarser ranks' already fixed, because a rank's
    probability depends on its ancestors'. A log-spaced grid search, refined once around the
    best value: robust, no optimiser dependency, and cheap (N × L × |grid| softmaxes).

    Args:
        scores: per rank, [N, n_l] validation scores.
        parents: per rank, parent ids.
        labels: [N, L] true ids (-1 = not labelled at that rank).
        grid: candidate temperatures (default 0.01 … 3.2, log-spaced). The floor is the
            contrastive models' own: their logit scale is clamped at 100 (METHOD.md §1). On a
            validation split with no mistakes the likelihood keeps rising as T → 0; the floor
            stops that from turning into certainty the field data will not honour.
    """
    grid = np.logspace(-2, 0.5, 26) if grid is None else np.asarray(grid, dtype=np.float64)
    temps: list[float] = [1.0] * len(scores)
    for level in range(len(scores)):

        def nll(t: float, level: int = level) -> float:
            trial = list(temps)
            trial[level] = t
            return _nll_at(level, scores, parents, trial, labels)

        best = min(grid, key=nll)
        step = grid[1] / grid[0] if len(grid) > 1 else 2.0
        fine = best * np.logspace(-np.log10(step), np.log10(step), 9)
        fine = fine[fine >= grid.min()]
        temps[level] = float(min(fine, key=nll))
    return temps


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, bins: int = 15
) -> float:
    """ECE: |accuracy − confidence| averaged over equal-width confidence bins, weighted by size."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if confidence.size == 0:
        return float("nan")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def choose_thresholds(
    path_ids: np.ndarray,
    path_probs: np.ndarray,
    truth: np.ndarray,
    target_precision: float = 0.95,
    min_threshold: float = 0.05,
) -> list[float]:
    """Per rank, the lowest probability threshold whose assignments reach ``target_precision``.

    Fitted on validation data, so that in the field a taxon shown at a rank is right at least
    that often; a rank that never reaches the target gets threshold 1.0 (never assigned alone).
    A threshold is never set above ``target_precision`` itself: with calibrated probabilities
    "p ≥ 0.95" already means "right 95% of the time", and a validation split without a single
    mistake would otherwise set the threshold to its least confident answer (0.99999…), which
    new specimens miss for no reason.

    Args:
        path_ids, path_probs: [N, L] from :func:`greedy_paths`.
        truth: [N, L] true ids (-1 = unlabelled; those specimens do not vote at that rank).
        target_precision: wanted share of correct assignments at each rank.
        min_threshold: floor, so a rank is never assigned on a near-uniform distribution.
    """
    thresholds = []
    for level in range(truth.shape[1]):
        keep = (truth[:, level] >= 0) & (path_ids[:, level] >= 0)
        if not keep.any():
            thresholds.append(1.0)
            continue
        p = path_probs[keep, level]
        correct = path_ids[keep, level] == truth[keep, level]
        order = np.argsort(-p, kind="stable")
        precision = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
        ok = np.flatnonzero(precision >= target_precision)
        if not ok.size:
            thresholds.append(1.0)
            continue
        thresholds.append(float(min(max(min_threshold, p[order][ok[-1]]), target_precision)))
    return thresholds


# --------------------------------------------------------------------------- evidence
# Keys of a manifest's ``scoring`` section that record how the fit went (read by the model
# card and by people), not settings the runtime uses.
RECORDED_KEYS = frozenset(
    {
        "target_precision",
        "novelty_quantile",
        "scope_quantile",
        "calibration_noise",
        "calibration_fragment",  # one length, in bundles exported before several
        "calibration_fragments",
        "validation",
        "open_set",
        "calibrated_on",
    }
)


@dataclass
class ScoringSettings:
    """Per query modality: temperatures and thresholds per rank, reference weights, novelty.

    ``barcode_*`` concern the alignment of reads to the reference barcodes: the weight and
    temperature of its identity vote, the k-mer length and size of the alignment shortlist, and
    the novelty rule (:func:`hir_edge.dna.divergence.novel_species`: estimated divergence from the
    best hit above ``novelty_divergence``, or identity below ``novelty_identity``). The
    shortlist keeps at most ``barcode_per_species`` references of a species so the next
    species is aligned too (the barcode gap in the output). ``logit_temperatures`` rescale
    each rank's combined logits (calibration); ``scope_distance`` is the Mahalanobis distance to
    the library's species beyond which a photo gets no answer
    (:mod:`hir_edge.runtime.photo_scope`), and ``scope`` the nearest-reference similarity below
    which it gets none in bundles exported before; ``placement`` decides how far a read's
    answer goes (:mod:`hir_edge.runtime.placement`; None in bundles exported before it).
    """

    temperatures: dict[str, list[float]]
    thresholds: dict[str, list[float]]
    reference_weight: dict[str, float]
    reference_temperature: float
    reference_k: int
    novelty: dict[str, float]
    barcode_weight: dict[str, float]
    barcode_temperature: float = 0.01
    kmer_k: int = 6
    barcode_shortlist: int = 12
    barcode_per_species: int = 3
    novelty_divergence: float = 0.02
    novelty_identity: float = MIN_ESTIMABLE_IDENTITY
    logit_temperatures: dict[str, list[float]] = field(default_factory=dict)
    scope: dict[str, float] = field(default_factory=dict)
    scope_distance: dict[str, float] = field(default_factory=dict)
    placement: Placement | None = None

    @classmethod
    def from_section(cls, section: dict, num_ranks: int) -> ScoringSettings:
        """The runtime's settings from a manifest's ``scoring`` section (absent keys take
        their defaults; an unknown key is refused, naming it)."""
        s = dict(section)
        allowed = {f for f in cls.__dataclass_fields__} | RECORDED_KEYS
        read = {k: v for k, v in s.items() if not k.startswith("validation_")}
        check_keys(read, allowed, "manifest scoring", BundleError)

        def per_modality(key: str, default):
            return {m: s.get(key, {}).get(m, default) for m in MODALITIES}

        return cls(
            temperatures=per_modality("temperatures", [0.05] * num_ranks),
            thresholds=per_modality("thresholds", [0.5] * num_ranks),
            reference_weight=per_modality("reference_weight", 0.0),
            reference_temperature=float(s.get("reference_temperature", 0.05)),
            reference_k=int(s.get("reference_k", 10)),
            novelty=per_modality("novelty", -1.0),
            barcode_weight=per_modality("barcode_weight", 0.0),
            barcode_temperature=float(s.get("barcode_temperature", 0.01)),
            kmer_k=int(s.get("kmer_k", 6)),
            barcode_shortlist=int(s.get("barcode_shortlist", 12)),
            barcode_per_species=int(s.get("barcode_per_species", 3)),
            novelty_divergence=float(s.get("novelty_divergence", 0.02)),
            novelty_identity=float(s.get("novelty_identity", MIN_ESTIMABLE_IDENTITY)),
            logit_temperatures=per_modality("logit_temperatures", [1.0] * num_ranks),
            scope={m: float(v) for m, v in per_modality("scope", -1.0).items()},
            scope_distance={m: float(v) for m, v in per_modality("scope_distance", -1.0).items()},
            placement=Placement.from_dict(s["placement"]) if s.get("placement") else None,
        )

    def novel(self, hit: Hit) -> tuple[bool, str]:
        """The novelty rule for a read's best barcode hit, with its reason."""
        return novel_species(hit, self.novelty_divergence, self.novelty_identity)


def prompt_cosines(
    queries: np.ndarray,
    banks: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    parents: Sequence[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """Per rank, cosine of each query to each taxon's prompt.

    A placeholder ("incertae sedis") has no prompt of its own: its score is the best score of
    its children, filled in from the finest rank up, so the specimens under it stay reachable
    (a genus known only to its order competes through its placeholder family on its own merit).
    """
    cos = [queries @ b.T for b in banks]
    if parents is None:
        return cos
    for level in range(len(cos) - 2, -1, -1):
        holders = np.flatnonzero(~masks[level])
        if not len(holders):
            continue
        child_parent = np.asarray(parents[level + 1])
        best = np.full((cos[level].shape[0], cos[level].shape[1]), -np.inf)
        np.maximum.at(best.T, child_parent, cos[level + 1].T)
        cos[level][:, holders] = np.where(np.isfinite(best[:, holders]), best[:, holders], -1.0)
    return cos


def combine_evidence(
    cos: Sequence[np.ndarray],
    temperatures: Sequence[float],
    votes: Sequence[np.ndarray] | None,
    weight: float,
    barcode_votes: Sequence[np.ndarray] | None = None,
    barcode_weight: float = 0.0,
) -> list[np.ndarray]:
    """Per-rank logits: prompt cosine / T_l, plus ``weight`` × the embedding-neighbour log-vote,
    plus ``barcode_weight`` × the aligned-barcode log-vote."""
    logits = [c / t for c, t in zip(cos, temperatures)]
    if votes is not None and weight:
        logits = [lg + weight * v for lg, v in zip(logits, votes)]
    if barcode_votes is not None and barcode_weight:
        logits = [lg + barcode_weight * v for lg, v in zip(logits, barcode_votes)]
    return logits


def reference_log_probs(
    sims: np.ndarray, labels: np.ndarray, n_taxa: Sequence[int], k: int, temperature: float
) -> list[np.ndarray]:
    """Per rank, log of a soft nearest-neighbour vote over the k most similar references.

    Each of the k neighbours votes for its taxon at the rank with weight exp(sim / τ); ranks
    where a neighbour is unlabelled get no vote from it. A small floor keeps unvoted taxa
    possible (the prompt evidence can still win), so log-probabilities are finite.
    """
    k = min(k, sims.shape[1])
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    top_sims = np.take_along_axis(sims, top, axis=1)
    weights = np.exp((top_sims - top_sims.max(axis=1, keepdims=True)) / temperature)
    out = []
    rows = np.arange(sims.shape[0])[:, None]
    for level, n in enumerate(n_taxa):
        votes = np.zeros((sims.shape[0], n))
        lab = labels[top, level]
        ok = lab >= 0
        np.add.at(votes, (np.broadcast_to(rows, lab.shape)[ok], lab[ok]), weights[ok])
        total = votes.sum(axis=1, keepdims=True)
        probs = np.where(total > 0, votes / np.maximum(total, 1e-12), 1.0 / n)
        out.append(np.log(probs * 0.99 + 0.01 / n))
    return out
