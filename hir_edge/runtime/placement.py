"""How far down the tree a read's evidence reaches: calibrated placement of reads.

A read of a species the library lacks still has a best hit — in the next species, genus or
family — and every probability computed against the library's taxa then points confidently at
the wrong one. What a taxonomist does instead is ask how far the read is from its best hit
*compared with how far apart the library's own taxa are at each rank*: 99% identical is within
a species, 90% is within a genus for many insects and far outside one for others.

Here, per rank r, a small model gives P(the read's taxon at rank r is the one on its answer
path), from evidence the runtime has for every read with a barcode hit:

* ``log_odds``: the tree probability of the path's taxon at r (prompt ranking, reference and
  barcode votes: :mod:`hir_edge.runtime.scoring`), as log-odds;
* ``labelled_identity``: the identity of the nearest aligned reference named at r (of the
  best hit when none is), and ``divergence`` of the best hit (:mod:`hir_edge.dna.align`);
* ``labelled_gap``: identity of the nearest aligned reference inside the path's taxon at r minus
  that of the nearest one outside it — a barcode gap at every rank;
* ``labelled_hit_agrees``: whether the nearest aligned reference sits in the path's taxon at r;
* ``called``: the read's called bases, as a share of a full barcode;
* ``hit_unnamed``: whether the best hit is a record not named at r;
* ``labelled_margin``: that identity minus the nearest named reference's *radius* at r, its
  own identity to the nearest barcode of another taxon at r
  (:meth:`hir_edge.runtime.barcodes.LibraryBarcodes.radii`, aligned at export): a read nearer
  its hit than the hit's taxon reaches is probably of that taxon, whatever the identity.

Each rank's model is a logistic regression on these features, or, in bundles exported since
the placement gained a hidden layer, a one-hidden-layer network (tanh) whose output is a
logistic regression on the hidden units. The network can say what a linear model cannot: one
identity is a close hit for a heavily degraded read and a far one for a clean read, and the
read's own evidence of noise (called bases, the divergence estimate, the gap) says which.

The models are fitted at export on open-set read sets (:mod:`hir_edge.export.open_set`): reads
of known species, and reads whose species, genus or family was removed from the library, clean,
degraded and cut to fragments. The answer is the deepest rank whose probability, and every
coarser rank's, passes that rank's threshold — chosen so that answers at it were right at least
``target_precision`` of the time for every read class — and its confidence is that probability.
The ranks are nested (:func:`nest`): a rank is at least as likely to be right as any finer rank
of the same path, so a read sure of its species is as sure of its order.
Each rank's identity band (how identical the library's own references are to their nearest
relative of another taxon at that rank) says which rank of a far read is probably absent.

The ``labelled_*`` features look only at references *named* at r: BOLD holds many records named
to family alone, and such a record, however close, says nothing about a read's genus. (Counted
as "another genus", it held reads of known species back at family.) ``hit_unnamed`` says when
the nearest record is such a one: a read whose species is in the library only as records named
to family is close to them, and its genus may still be told by the prompts, or not.

numpy only (this runs in the field).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING

import numpy as np

from hir_edge.config_loader import check_keys
from hir_edge.errors import BundleError

if TYPE_CHECKING:  # the runtime modules that import this one
    from hir_edge.runtime.answer import Evidence
    from hir_edge.runtime.bundle import References

BASE_FEATURES = (
    "log_odds",
    "labelled_identity",
    "divergence",
    "labelled_gap",
    "labelled_hit_agrees",
    "called",
    "hit_unnamed",
)
# Second-order terms of the base features: a model linear in them alone cannot say "near and
# not diverged" — a `paper`-degraded read of a known species (95% identical, no divergence) and a
# clean read of an absent sister species (95%, diverged) then look alike. A bundle's placement
# names the features it was fitted on, so bundles fitted on the base features alone still load.
PAIR_FEATURES = (
    "labelled_identity*divergence",
    "divergence^2",
    "labelled_identity^2",
    "labelled_identity*called",
    "labelled_gap*labelled_identity",
    "sqrt(divergence)",
)
# How much nearer the read is to its nearest reference named at r than that reference is to
# its own nearest relative of another taxon at r (LibraryBarcodes.radii): a read of an absent
# family can be as near its hit as a read of an absent congener is, but not nearer than the
# hit's family reaches. 0 where the bundle has no radii.
RADIUS_FEATURES = ("labelled_margin",)
FEATURES = BASE_FEATURES + PAIR_FEATURES + RADIUS_FEATURES
FULL_BARCODE = 650  # bases of a full COI-5P barcode (the 'called' feature's unit)
MAX_CONFIDENCE = 0.999  # never claim certainty: the fit saw a finite number of reads


@dataclass(frozen=True)
class Placement:
    """Per rank: standardisation, logistic weights and threshold; per rank: identity band.

    Attributes:
        ranks: rank names, coarse to fine.
        mean, scale: per rank, per feature (standardisation of :data:`FEATURES`).
        weights: per rank, [bias, one weight per feature] on the standardised features.
        thresholds: per rank, the probability an answer at that rank needs (above 1: never).
        bands: per rank, the identity below which a read is farther from its best hit than the
            library's references are from their nearest relative of another taxon at that rank
            (a low quantile), so that rank's taxon is probably absent.
        target_precision: what the thresholds were chosen for.
        features: the names of the features it reads, a subset of :data:`FEATURES` in order.
        hidden_weights, hidden_bias: per rank, [feature][unit] and [unit] of a tanh hidden
            layer; ``weights`` is then [bias, one weight per unit]. None: ``weights`` is a
            logistic regression on the features.
        nested: each rank's probability is raised to the highest of the finer ranks on the
            read's path (:func:`nest`), and the thresholds were fitted on it so. False in
            bundles exported before.
    """

    ranks: tuple[str, ...]
    mean: tuple[tuple[float, ...], ...]
    scale: tuple[tuple[float, ...], ...]
    weights: tuple[tuple[float, ...], ...]
    thresholds: tuple[float, ...]
    bands: tuple[float, ...]
    target_precision: float = 0.95
    features: tuple[str, ...] = FEATURES
    hidden_weights: tuple[tuple[tuple[float, ...], ...], ...] | None = None
    hidden_bias: tuple[tuple[float, ...], ...] | None = None
    nested: bool = False

    def to_dict(self) -> dict:
        out = asdict(self)
        out["features"] = list(self.features)
        if self.hidden_weights is None:  # a logistic placement: the format bundles had before
            del out["hidden_weights"], out["hidden_bias"]
        if not self.nested:  # fitted without it: the format bundles had before
            del out["nested"]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Placement:
        """From a manifest's ``scoring.placement``; unknown keys or another feature set are an
        error naming them."""
        data = dict(data)
        features = tuple(data.pop("features", FEATURES))
        if not features or any(f not in FEATURES for f in features):
            raise BundleError(
                f"placement model uses features {list(features)}; this hir-edge reads "
                f"{list(FEATURES)}: re-export the bundle or upgrade hir-edge"
            )
        data["features"] = features
        check_keys(data, {f.name for f in fields(cls)}, "placement model", BundleError)
        if not isinstance(data.get("nested", False), bool):
            raise BundleError(
                f"placement model: nested must be true or false, not {data['nested']!r}"
            )
        for key in ("ranks", "thresholds", "bands"):
            data[key] = tuple(data[key])
        for key in ("mean", "scale", "weights"):
            data[key] = tuple(tuple(float(v) for v in row) for row in data[key])
        if (data.get("hidden_weights") is None) != (data.get("hidden_bias") is None):
            raise BundleError("placement model has hidden_weights or hidden_bias, not both")
        if data.get("hidden_weights") is not None:
            data["hidden_weights"] = tuple(
                tuple(tuple(float(v) for v in unit) for unit in rank)
                for rank in data["hidden_weights"]
            )
            data["hidden_bias"] = tuple(tuple(float(v) for v in r) for r in data["hidden_bias"])
        return cls(**data)

    def probabilities(self, features: np.ndarray, on_path: np.ndarray | None = None) -> np.ndarray:
        """[N, L] P(right at each rank) from features [N, L, F] (:data:`FEATURES`; the
        model reads its own); ``on_path`` [N, L] marks the ranks with a taxon on the read's
        answer path, which alone lift a coarser rank: a nested placement needs it (a rank
        without a taxon must not lift one that has)."""
        probs = self._per_rank(features)
        if not self.nested:
            return probs
        if on_path is None:
            raise ValueError("a nested placement needs on_path: the ranks with a taxon on the path")
        return nest(probs, on_path)

    def _per_rank(self, features: np.ndarray) -> np.ndarray:
        """[N, L] each rank's own model, as fitted."""
        features = features[..., [FEATURES.index(f) for f in self.features]]
        x = (features - np.asarray(self.mean)[None]) / np.asarray(self.scale)[None]
        w = np.asarray(self.weights)
        if self.hidden_weights is not None:
            hidden = np.einsum("nlf,lfh->nlh", x, np.asarray(self.hidden_weights))
            x = np.tanh(hidden + np.asarray(self.hidden_bias)[None])
        z = w[None, :, 0] + np.einsum("nlf,lf->nl", x, w[:, 1:])
        return np.clip(1.0 / (1.0 + np.exp(-z)), 0.0, MAX_CONFIDENCE)

    def assign(self, probs: np.ndarray, usable: np.ndarray) -> np.ndarray:
        """Deepest rank whose probability, and every coarser one's, passes its threshold
        (-1: none). ``usable`` [N, L] marks ranks that can be answered at all (a real taxon on
        the path)."""
        return deepest_passing(probs, usable, self.thresholds)

    def absent_rank(self, identity: float) -> int | None:
        """The coarsest rank whose band the read's best-hit identity falls below: its taxon at
        that rank is probably absent from the library (None: within every band)."""
        for level, band in enumerate(self.bands):
            if identity < band:
                return level
        return None


def nest(probs: np.ndarray, on_path: np.ndarray) -> np.ndarray:
    """[N, L] each rank's probability raised to the highest of the finer ranks on the path.

    The answer path is one lineage: when its species is right, so are its genus, family and
    order. So P(order right) is at least P(species right), whatever each rank's own model says;
    the per-rank models, fitted apart, break this for a few reads (a 100-bp fragment 100%
    identical to its species, its species model sure, its order model less so, because other
    100-bp windows match a reference of another order). A rank without a taxon on the path
    (``on_path`` False) lifts nothing and is left as it is.
    """
    lifted = np.where(on_path, probs, 0.0)
    finer = np.maximum.accumulate(lifted[:, ::-1], axis=1)[:, ::-1]
    return np.where(on_path, np.maximum(probs, finer), probs)


def deepest_passing(probs: np.ndarray, usable: np.ndarray, thresholds) -> np.ndarray:
    """[N] the deepest rank whose probability, and every coarser one's, passes its threshold
    (-1: none): :meth:`Placement.assign`, and the export's threshold search trying thresholds."""
    ok = (probs >= np.asarray(thresholds)[None]) & usable
    return np.cumprod(ok, axis=1).astype(bool).sum(axis=1) - 1


def placement_features(
    path_probs: np.ndarray,
    path_ids: np.ndarray,
    identity: np.ndarray,
    divergence: np.ndarray,
    hit_labels: np.ndarray,
    candidate_ids: list[np.ndarray],
    candidate_identity: list[np.ndarray],
    candidate_labels: np.ndarray,
    called: np.ndarray,
    hit_refs: np.ndarray | None = None,
    radius_of: Callable[[int, int, int], float] | None = None,
) -> np.ndarray:
    """[N, L, F] features of :data:`FEATURES` for N reads with a best hit.

    Args:
        path_probs, path_ids: [N, L] the answer path's probabilities and taxa.
        identity, divergence: [N] of the best hit (a rank the best hit is not named at takes
            the identity of the nearest aligned reference that is, if one is).
        hit_labels: [N, L] the best hit's taxon per rank (-1 unknown); the agreement of a
            rank that no aligned reference is labelled at.
        candidate_ids, candidate_identity: per read, the aligned references and identities.
        candidate_labels: [M, L] the label ids of every reference.
        called: [N] called bases of each read.
        hit_refs: [N] the best hit's reference; radius_of: (read, reference, rank level) →
            that reference's radius (NaN: unknown). Without them ``labelled_margin`` is 0.
    """
    n, levels = path_ids.shape
    out = np.zeros((n, levels, len(FEATURES)))
    p = np.clip(path_probs, 1e-6, 1 - 1e-6)
    out[..., 0] = np.log(p / (1 - p))
    out[..., 1] = identity[:, None]  # kept where the best hit is named at r
    out[..., 2] = divergence[:, None]
    out[..., 4] = hit_labels == path_ids  # kept where no aligned reference is named at r
    out[..., 5] = np.minimum(called, FULL_BARCODE)[:, None] / FULL_BARCODE
    out[..., 6] = hit_labels < 0
    margin = FEATURES.index("labelled_margin")
    for i in range(n):
        labels = candidate_labels[candidate_ids[i]]  # [c, L]
        ident = candidate_identity[i]
        for level in range(levels):
            named = labels[:, level] >= 0  # a record named to a coarser rank says nothing here
            nearest = None if hit_refs is None or hit_labels[i, level] < 0 else hit_refs[i]
            if named.any() and hit_labels[i, level] < 0:  # the nearest named at r instead
                nearest = candidate_ids[i][np.flatnonzero(named)[np.argmax(ident[named])]]
                out[i, level, 1] = ident[named].max()
            if radius_of is not None and nearest is not None:
                radius = radius_of(i, int(nearest), level)
                out[i, level, margin] = 0.0 if np.isnan(radius) else out[i, level, 1] - radius
            if not named.any():
                continue
            taxa, near = labels[named, level], ident[named]
            inside = taxa == path_ids[i, level]
            best_in = near[inside].max() if inside.any() else 0.0
            best_out = near[~inside].max() if (~inside).any() else best_in - 0.1
            out[i, level, 3] = np.clip(best_in - best_out, -0.3, 0.3)
            out[i, level, 4] = taxa[np.argmax(near)] == path_ids[i, level]
    ident_r, div, gap, share = out[..., 1], out[..., 2], out[..., 3], out[..., 5]
    base = len(BASE_FEATURES)
    out[..., base + 0] = ident_r * div
    out[..., base + 1] = div**2
    out[..., base + 2] = ident_r**2
    out[..., base + 3] = ident_r * share
    out[..., base + 4] = gap * ident_r
    out[..., base + 5] = np.sqrt(np.maximum(div, 0.0))
    return out


def read_placement_features(
    evidence: Sequence[Evidence],
    sequences: Sequence[str],
    refs: References,
    radius_of: Callable[[int, int, int], float] | None = None,
) -> np.ndarray:
    """[N, L, F] :func:`placement_features` of reads with a best hit, from their evidence
    (:class:`~hir_edge.runtime.answer.Evidence`) and the bundle's references: what
    ``identify`` and the export's open-set calibration both feed the placement model.
    ``radius_of``: the references' radii (default: ``refs.radii``, if any)."""
    if radius_of is None and refs.radii is not None:
        radii = refs.radii
        radius_of = lambda i, j, level: float(radii[j, level])  # noqa: E731
    sims = [ev.barcode_sims for ev in evidence]
    return placement_features(
        np.stack([ev.path_p for ev in evidence]),
        np.stack([ev.path for ev in evidence]),
        np.array([ev.hit.identity for ev in evidence]),
        np.array([ev.hit.divergence for ev in evidence]),
        refs.labels[[ev.hit.reference for ev in evidence]],
        [np.flatnonzero(row > 0) for row in sims],
        [row[row > 0] for row in sims],
        refs.labels,
        np.array([len(s) - s.count("N") for s in sequences]),
        np.array([ev.hit.reference for ev in evidence]),
        radius_of,
    )


def fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    l2: float = 1e-3,
    steps: int = 50,
    sample_weight: np.ndarray | None = None,
) -> np.ndarray:
    """[bias, weights] of an L2-regularised logistic regression (Newton's method), for
    standardised features ``x`` [N, F], 0/1 targets ``y`` and optional row weights."""
    design = np.hstack([np.ones((len(x), 1)), x])
    sw = np.ones(len(x)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    w = np.zeros(design.shape[1])
    penalty = l2 * sw.sum() * np.eye(len(w))
    penalty[0, 0] = 0.0  # the bias is not shrunk
    for _ in range(steps):
        z = np.clip(design @ w, -30, 30)
        prob = 1.0 / (1.0 + np.exp(-z))
        grad = design.T @ (sw * (prob - y)) + penalty @ w
        hess = (design * (sw * prob * (1 - prob))[:, None]).T @ design + penalty
        step = np.linalg.solve(hess + 1e-9 * np.eye(len(w)), grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w
