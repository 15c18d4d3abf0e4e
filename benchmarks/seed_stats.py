"""Per-seed cells of evaluation results and paired comparisons between variants or ranks.

Each benchmark that trains several seeds reports a mean with its spread, and says whether one
arm beats another from the paired per-seed differences (the same seed, data order and
initialisation on both sides), not from means against a population standard deviation.
"""

from __future__ import annotations

import numpy as np

RANKS = ("order", "family", "genus", "species", "global")


def cell(results: list[dict], setting: str, cond: str, rank: str, k: int = 1) -> list[float]:
    return [
        r["paper"][setting][cond]["accuracy"][rank][f"top{k}"]
        for r in results
        if setting in r["paper"]
    ]


def fully_labelled(results: list[dict], setting: str, cond: str, rank: str) -> list[float]:
    """Top-1 per seed on the specimens named at every rank (empty for older results)."""
    return [
        r["paper"][setting][cond]["fully_labelled"]["accuracy"][rank]["top1"]
        for r in results
        if "fully_labelled" in r["paper"].get(setting, {}).get(cond, {})
    ]


def order_vs_family(results: list[dict]) -> str:
    """IT order against family, per seed on the same specimens (those named at every rank)."""
    family = fully_labelled(results, "IT", "clean", "family")
    if not family:
        return "not in these results (they predate the fully-labelled count)"
    order = fully_labelled(results, "IT", "clean", "order")
    n = results[0]["paper"]["IT"]["clean"]["fully_labelled"]["count"]
    return f"family → order on the {n} test specimens named at every rank: {claim(family, order)}"


def fmt_cells(results: list[dict], setting: str, cond: str) -> list[str]:
    out = []
    for rank in RANKS:
        t1, t5 = cell(results, setting, cond, rank, 1), cell(results, setting, cond, rank, 5)
        if len(t1) > 1:
            out.append(f"{np.mean(t1):.1f}±{np.std(t1):.1f} / {np.mean(t5):.1f}")
        else:
            out.append(f"{t1[0]:.1f} / {t5[0]:.1f}")
    return out


def claim(a: list[float], b: list[float]) -> str:
    """Does b beat a? From the paired per-seed differences (run i of b against run i of a:
    the same seed, data order and initialisation), their mean and 95% t-interval."""
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    mean = float(d.mean())
    text = f"{np.mean(a):.1f} → {np.mean(b):.1f} (paired gain {mean:+.1f}"
    if len(d) < 2:
        return text + ", one seed: no interval)"
    t = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571}.get(len(d) - 1, 1.96)
    half = t * float(d.std(ddof=1)) / np.sqrt(len(d))
    lo, hi = mean - half, mean + half
    verdict = "holds" if lo > 0 else "reversed" if hi < 0 else "not shown (the interval spans 0)"
    return text + f", 95% interval [{lo:+.1f}, {hi:+.1f}] over {len(d)} seeds): {verdict}"
