"""Where an answer stops, with what confidence, and what is probably absent from the library.

The identifier gathers the evidence (:class:`~hir_edge.runtime.answer.Evidence`); these rules
turn it into a :class:`~hir_edge.runtime.answer.Decision`:

* a read with a barcode hit: the placement model's deepest reached rank, capped by the
  library's identity bands (no placement without evidence) and by the novel-species rule;
* a photo (or a read too short to align): the deepest rank whose path probability passes its
  threshold, and no answer for a photo unlike every reference photo;
* never an "incertae sedis" placeholder: the deepest real taxon above it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from hir_edge.dna.align import Hit
from hir_edge.runtime.answer import Decision, Evidence
from hir_edge.runtime.chance import TESTED_BELOW, not_coi
from hir_edge.runtime.scoring import ScoringSettings


def no_close(hit: Hit) -> str:
    """The warning of a read placed at no rank because its best hit is too far: farther than
    the library's own orders are apart (or, without a placement model, than the novelty rule
    estimates)."""
    return (
        f"no close reference: the best barcode hit is {100 * hit.identity:.1f}% identical, "
        "too far to place the read at any rank"
    )


def under_threshold(hit: Hit, rank: str, p_right: float, threshold: float) -> str:
    """The warning of a read near enough to the library to be placed, whose coarsest rank is
    still not likely enough to be right: the threshold, not the distance, holds it back (a
    100-bp window 100% identical to a reference can be of another order)."""
    p, t = _percent_pair(p_right, threshold)
    return (
        f"not placed at any rank: its {rank} is right {p}% of the time by the placement model, "
        f"under the {t}% an answer at {rank} needs "
        f"(best barcode hit {100 * hit.identity:.1f}% identical)"
    )


def _percent_pair(p: float, threshold: float) -> tuple[str, str]:
    """Two probabilities as percentages, with as many decimals as it takes for them to read
    apart (0.987 under 0.99 is "98.7% under 99.0%", not "99% under 99%")."""
    for places in range(4):
        pair = (f"{100 * p:.{places}f}", f"{100 * threshold:.{places}f}")
        if pair[0] != pair[1]:
            return pair
    return pair


@dataclass(frozen=True)
class AnswerRules:
    """The bundle's decision settings, with the user's overrides.

    Args:
        ranks: rank names, coarsest first.
        labels_mask: per rank, False for placeholder taxa.
        scoring: the bundle's calibrated settings (thresholds, novelty, placement, scope).
        max_level: never answer deeper than this rank (``--rank``).
        min_confidence: one threshold for every rank instead of the fitted ones.
    """

    ranks: tuple[str, ...] | list[str]
    labels_mask: list[np.ndarray]
    scoring: ScoringSettings
    max_level: int
    min_confidence: float | None = None

    def decide(self, ev: Evidence) -> Decision:
        """Where the answer stops, its confidence, and what is probably absent."""
        junk = self.not_coi(ev)
        if junk:  # below every band, so placed nowhere; and no taxon is claimed absent
            return Decision(-1, 0.0, None, [junk])
        if ev.reach is not None:
            return self._decide_read(ev)
        species = len(self.ranks) - 1
        warnings: list[str] = []
        scope = self._out_of_scope(ev)
        if scope:
            return Decision(-1, 0.0, None, [scope])
        far = self._too_far(ev)
        if far is not None:
            return far
        novel, why = self._novelty(ev)
        level = min(ev.level, min(self.max_level, species - 1) if novel else self.max_level)
        level = self._past_placeholders(ev, level)
        confidence = float(ev.path_p[level]) if level >= 0 else 0.0
        record = None
        if novel:
            record = {"rank": self.ranks[species], "reason": why}
            warnings.append(f"novel: species probably absent from the reference library ({why})")
        return Decision(level, confidence, record, warnings)

    def _too_far(self, ev: Evidence) -> Decision | None:
        """In a bundle without a placement model (exported before it existed), a read whose
        best barcode hit is under the novelty rule's identity floor (no relative in the
        library, or not COI) is placed nowhere: the learned ranking alone named genera of
        random DNA with full confidence. A placement model learns the same from its
        'unrelated DNA' reads and the library's identity bands."""
        hit = ev.hit
        if hit is None or hit.identity >= self.scoring.novelty_identity:
            return None
        _, reason = self.scoring.novel(hit)  # the novelty rule's own words for a far hit
        return Decision(-1, 0.0, {"rank": self.ranks[0], "reason": reason}, [no_close(hit)])

    def _decide_read(self, ev: Evidence) -> Decision:
        """A read with a barcode hit: the placement model's deepest reached rank."""
        placement = self.scoring.placement
        species = len(self.ranks) - 1
        hit = ev.hit
        reach = ev.reach
        usable = (ev.path >= 0)[None]
        if self.min_confidence is not None:
            placement = replace(placement, thresholds=(self.min_confidence,) * len(self.ranks))
        level = int(placement.assign(reach[None], usable)[0])
        # No placement without evidence: a hit farther than the library's own members of a
        # rank are from their nearest relative (its band) places nothing at that rank.
        absent = placement.absent_rank(hit.identity)
        if absent is not None:
            level = min(level, absent - 1)
        species_novel, why = self.scoring.novel(hit)
        if species_novel:
            level = min(level, species - 1)
            absent = species if absent is None else absent
        level = self._past_placeholders(ev, min(level, self.max_level))
        warnings = []
        record = None
        if absent is not None and absent <= species:
            rank = self.ranks[absent]
            band = placement.bands[absent] if absent < len(placement.bands) else None
            if band is not None and hit.identity < band:
                reason = (
                    f"best reference barcode {100 * hit.identity:.1f}% identical, below the "
                    f"{100 * band:.1f}% that the library's own {rank} members reach"
                )
            elif species_novel and absent == species:
                reason = why
            else:
                reason = f"best reference barcode {100 * hit.identity:.1f}% identical"
            record = {"rank": rank, "reason": reason}
            warnings.append(f"novel: {rank} probably absent from the reference library ({reason})")
        if level < 0:
            order_p, order_threshold = float(reach[0]), float(placement.thresholds[0])
            if absent == 0:  # below the library's order band
                warnings.append(no_close(hit))
            elif order_p < order_threshold:
                warnings.append(under_threshold(hit, self.ranks[0], order_p, order_threshold))
            else:  # the coarsest rank passes, but its taxon is a placeholder or unknown
                warnings.append(
                    f"not placed at any rank (best barcode hit {100 * hit.identity:.1f}% identical)"
                )
        confidence = float(reach[level]) if level >= 0 else 0.0
        return Decision(level, confidence, record, warnings)

    def far_identity(self) -> float:
        """Below this best-hit identity a read is placed nowhere and would be said to be of
        an absent order (the coarsest band), or of no relative (a bundle without placement),
        and is near enough to chance (``TESTED_BELOW``) that :mod:`~hir_edge.runtime.chance`
        asks whether it is COI at all."""
        placement = self.scoring.placement
        floor = placement.bands[0] if placement is not None else self.scoring.novelty_identity
        return min(floor, TESTED_BELOW)

    @staticmethod
    def not_coi(ev: Evidence) -> str | None:
        """Why a read is not recognisably COI (None: it is, or was not tested)."""
        if ev.chance_identity is None or ev.hit is None:
            return None
        return not_coi(ev.hit.identity, ev.chance_identity)

    def _past_placeholders(self, ev: Evidence, level: int) -> int:
        """Step back past "incertae sedis": it is no answer, the deepest real taxon above is."""
        while level >= 0 and not self.labels_mask[level][int(ev.path[level])]:
            level -= 1
        return level

    def _novelty(self, ev: Evidence) -> tuple[bool, str]:
        """Of a species absent from the references? For a read, by its best barcode hit: the
        divergence that read errors cannot explain
        (:func:`hir_edge.dna.divergence.novel_species`); for a photo alone (or a read too
        short to align), by the embedding similarity of its nearest reference."""
        if ev.hit is not None:
            return self.scoring.novel(ev.hit)
        threshold = self.scoring.novelty[ev.modality]
        if ev.ref_sims is None or threshold <= 0:
            return False, ""
        best = float(ev.ref_sims.max())
        return best < threshold, f"similarity to the nearest reference {best:.3f} < {threshold:.3f}"

    def _out_of_scope(self, ev: Evidence) -> str | None:
        """Why a photo alone is unlike every reference photo (None when it is not): farther
        from the library's species than all but ``scope_quantile`` of the validation photos
        were (:mod:`hir_edge.runtime.photo_scope`) — a photo of something the bundle was never
        trained on. Bundles exported before use the nearest reference's similarity."""
        limit = self.scoring.scope_distance.get(ev.modality, -1.0)
        if ev.modality == "image" and ev.scope_distance is not None and limit > 0:
            if ev.scope_distance <= limit:
                return None
            return (
                f"unlike the bundle's reference photos (distance {ev.scope_distance:.1f} to the "
                f"nearest species, beyond the {limit:.1f} that validation photos stay within): "
                "no answer"
            )
        threshold = self.scoring.scope.get(ev.modality, -1.0)
        if ev.modality != "image" or ev.ref_sims is None or threshold <= 0:
            return None
        best = float(ev.ref_sims.max())
        if best >= threshold:
            return None
        return (
            f"unlike every reference photo of the bundle (nearest similarity {best:.3f} < "
            f"{threshold:.3f}): no answer"
        )
