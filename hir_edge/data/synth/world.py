"""The synthetic world: a taxonomy tree, its names, and what each taxon looks like.

The tree is either generated (every name starts with "Demo", so a model trained on it can never
be mistaken for one that knows real insects) or read from a BOLD export (real names, real DNA:
:mod:`hir_edge.data.synth.bold`).
Visual traits follow the hierarchy — order → body plan, family → palette, genus → pattern,
species → fine detail — and come from a hash of the taxon's path and the seed, so a taxon looks
the same in every run and in every subsample. Siblings that would look alike are re-drawn with a
salt, so that sister families, genera and species stay visually distinct.
"""

from __future__ import annotations

import colorsys
import hashlib
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np

Path4 = tuple[str, str, str, str]
# In the name of a stand-in taxon only ("Aedes [unnamed species]": hir_edge.data.synth.bold
# draws a record named above species as one); no real name holds it.
STAND_IN = " [unnamed "


def is_stand_in(path: tuple[str, ...]) -> bool:
    """True for a stand-in taxon's path (one a record named above it is drawn as)."""
    return STAND_IN in path[-1]


RGB = tuple[int, int, int]

PLANS: tuple[str, ...] = ("beetle", "fly", "moth", "wasp", "bug", "dragonfly", "spider", "elongate")
PATTERNS: tuple[str, ...] = ("stripes", "spots", "bands", "chevrons", "eyespots")
DETAILS: tuple[str, ...] = ("specks", "dashes", "crosses", "rings")

# Real orders get a body plan that resembles them; any other order gets a hashed one.
KNOWN_PLANS: dict[str, str] = {
    "Coleoptera": "beetle",
    "Diptera": "fly",
    "Lepidoptera": "moth",
    "Trichoptera": "moth",
    "Hymenoptera": "wasp",
    "Hemiptera": "bug",
    "Thysanoptera": "bug",
    "Psocodea": "bug",
    "Odonata": "dragonfly",
    "Ephemeroptera": "dragonfly",
    "Neuroptera": "dragonfly",
    "Plecoptera": "dragonfly",
    "Araneae": "spider",
    "Sarcoptiformes": "spider",
    "Julida": "elongate",
    "Entomobryomorpha": "elongate",
    "Dermaptera": "elongate",
    "Orthoptera": "elongate",
    "Stylommatophora": "elongate",
}

_ONSETS = ("", "b", "c", "ch", "d", "g", "l", "m", "n", "ph", "pr", "r", "s", "st", "t", "th",
           "tr", "v", "x", "z", "cr", "gl", "sc", "rh")  # fmt: skip
_VOWELS = ("a", "e", "i", "o", "u", "y", "ae", "io")
_CODAS = ("", "", "", "n", "r", "s", "x", "l", "m")
_GENUS_ENDINGS = ("us", "a", "um", "ia", "on", "is", "ella", "odes")
_EPITHET_ENDINGS = ("us", "a", "is", "ensis", "oides", "atus", "icus", "ii")


# --------------------------------------------------------------------------- tree
@dataclass(frozen=True)
class World:
    """The species of a world, each as its full path (order, family, genus, species).

    Attributes:
        species: every species path, sorted.
        source: "generated" or a description of the BOLD file it was read from.
    """

    species: tuple[Path4, ...]
    source: str

    def taxa(self, rank: int) -> list[tuple[str, ...]]:
        """Sorted distinct paths at a rank (0 = order … 3 = species)."""
        return sorted({p[: rank + 1] for p in self.species})


def _syllable(rng: np.random.Generator) -> str:
    return (
        _ONSETS[rng.integers(len(_ONSETS))]
        + _VOWELS[rng.integers(len(_VOWELS))]
        + _CODAS[rng.integers(len(_CODAS))]
    )


def _stem(rng: np.random.Generator, syllables: tuple[int, int]) -> str:
    n = int(rng.integers(syllables[0], syllables[1] + 1))
    return "".join(_syllable(rng) for _ in range(n))


def _unique(make: Callable[[], str], used: set[str]) -> str:
    """Draw names until one is new; the seeded generator keeps this deterministic."""
    for _ in range(10_000):
        name = make()
        if name not in used and len(name) <= 24:
            used.add(name)
            return name
    raise RuntimeError("could not draw a unique name; the world is too large for the syllables")


def generate_world(
    seed: int,
    n_orders: int,
    families_per_order: tuple[int, int],
    genera_per_family: tuple[int, int],
    species_per_genus: tuple[int, int],
) -> World:
    """A random tree with pseudo-Latin demo names, deterministic from the seed.

    Order names end in "-ptera", families in "-idae"; genus and species names are binomial.
    Every order, family, genus and species name starts with "Demo" and is unique.
    """
    rng = np.random.default_rng([seed, 0x5EED, 1])
    used: set[str] = set()

    def name(suffixes: Sequence[str], syllables: tuple[int, int] = (1, 2)) -> str:
        def make() -> str:
            stem = _stem(rng, syllables)
            return f"Demo{stem}{suffixes[rng.integers(len(suffixes))]}"

        return _unique(make, used)

    species: list[Path4] = []
    for _ in range(n_orders):
        order = name(("ptera",))
        for _ in range(int(rng.integers(families_per_order[0], families_per_order[1] + 1))):
            family = name(("idae",))
            for _ in range(int(rng.integers(genera_per_family[0], genera_per_family[1] + 1))):
                genus = name(_GENUS_ENDINGS)
                epithets: set[str] = set()
                for _ in range(int(rng.integers(species_per_genus[0], species_per_genus[1] + 1))):

                    def epithet() -> str:
                        ending = _EPITHET_ENDINGS[rng.integers(len(_EPITHET_ENDINGS))]
                        return (_stem(rng, (1, 2)) + ending).lower()

                    species.append((order, family, genus, f"{genus} {_unique(epithet, epithets)}"))
    return World(species=tuple(sorted(species)), source="generated")


# --------------------------------------------------------------------------- traits
@dataclass(frozen=True)
class OrderTraits:
    """Body plan and proportions (order level)."""

    plan: str
    aspect: float  # body width factor
    leg_length: float
    antenna_length: float
    wing_spread: float  # radians added to the wing angle


@dataclass(frozen=True)
class Palette:
    """Colours (family level): body, wings/elytra, pattern accent, legs."""

    body: RGB
    wing: RGB
    accent: RGB
    legs: RGB
    hue: float  # body hue in degrees, kept to keep sister families apart


@dataclass(frozen=True)
class Pattern:
    """Large marks (genus level): kind, count, size and placement on the main surfaces."""

    kind: str
    count: int
    size: float  # in surface units (the surface is a unit disk)
    offset: float  # shift along the surface axis
    layout: tuple[tuple[float, float], ...]  # spot / eyespot centres in surface units


@dataclass(frozen=True)
class Detail:
    """Fine marks (species level), 1–2 px at the stored size: what a blur wipes out."""

    kind: str
    count: int
    angle: float  # radians, orientation of dashes and crosses
    layout: tuple[tuple[float, float], ...]  # glyph positions in surface units


@dataclass(frozen=True)
class Traits:
    """Everything that identifies a species visually."""

    order: OrderTraits
    palette: Palette
    pattern: Pattern
    detail: Detail


def taxon_rng(seed: int, path: Sequence[str], salt: int = 0) -> np.random.Generator:
    """A generator keyed by (seed, taxon path, salt): the same taxon always draws the same."""
    key = f"{seed}\x1f{salt}\x1f" + "\x1f".join(path)
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def _hsv(h: float, s: float, v: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb((h % 360) / 360, min(max(s, 0), 1), min(max(v, 0), 1))
    return round(r * 255), round(g * 255), round(b * 255)


def order_traits(seed: int, path: Sequence[str], salt: int = 0) -> OrderTraits:
    rng = taxon_rng(seed, path, salt)
    plan = KNOWN_PLANS.get(path[0]) if salt == 0 else None
    hashed = PLANS[int(rng.integers(len(PLANS)))]
    return OrderTraits(
        plan=plan or hashed,
        aspect=float(rng.uniform(0.85, 1.15)),
        leg_length=float(rng.uniform(0.8, 1.25)),
        antenna_length=float(rng.uniform(0.6, 1.4)),
        wing_spread=float(rng.uniform(-0.15, 0.15)),
    )


def palette(seed: int, path: Sequence[str], salt: int = 0) -> Palette:
    rng = taxon_rng(seed, path, salt)
    hue = float(rng.uniform(0, 360))
    body = _hsv(hue, rng.uniform(0.45, 0.9), rng.uniform(0.25, 0.6))
    wing_hue = hue + float(rng.choice([0.0, 30.0, -30.0, 180.0]))
    wing = _hsv(wing_hue, rng.uniform(0.3, 0.85), rng.uniform(0.55, 0.9))
    accent_kind = int(rng.integers(4))
    if accent_kind == 0:
        accent = _hsv(0, 0, rng.uniform(0.05, 0.15))  # black marks
    elif accent_kind == 1:
        accent = _hsv(rng.uniform(40, 60), 0.15, 0.97)  # cream / white
    else:
        accent = _hsv(wing_hue + 180 + rng.uniform(-40, 40), rng.uniform(0.7, 1), 0.95)
    legs = _hsv(hue, 0.5, rng.uniform(0.1, 0.3))
    return Palette(body=body, wing=wing, accent=accent, legs=legs, hue=hue)


def pattern(seed: int, path: Sequence[str], salt: int = 0) -> Pattern:
    rng = taxon_rng(seed, path, salt)
    kind = PATTERNS[int(rng.integers(len(PATTERNS)))]
    lo, hi = {
        "stripes": (1, 2),
        "spots": (1, 4),
        "bands": (1, 3),
        "chevrons": (1, 2),
        "eyespots": (1, 2),
    }[kind]
    n = int(rng.integers(lo, hi + 1))
    # Marks are bold (a fifth to a half of the surface) so they outlive a blur that erases
    # the species' 1-2 px detail.
    size = {"stripes": 0.2, "spots": 0.32, "bands": 0.2, "chevrons": 0.17, "eyespots": 0.45}[kind]
    size *= float(rng.uniform(0.85, 1.15))
    layout: list[tuple[float, float]] = []
    if kind in ("spots", "eyespots"):
        # Centres spread over the disk, away from its rim, drawn once per genus.
        phase = float(rng.uniform(0, 2 * np.pi))
        for i in range(n):
            angle = phase + 2 * np.pi * i / n
            radius = 0.0 if n == 1 else 0.5
            layout.append((radius * np.cos(angle), radius * np.sin(angle)))
    return Pattern(kind, n, size, float(rng.uniform(-0.15, 0.15)), tuple(layout))


def _spread_points(rng: np.random.Generator, n: int, min_gap: float) -> list[tuple[float, float]]:
    """``n`` points in the disk of radius 0.75, at least ``min_gap`` apart where possible."""
    points: list[tuple[float, float]] = []
    for _ in range(2000):
        if len(points) == n:
            break
        r, a = 0.75 * np.sqrt(rng.random()), 2 * np.pi * rng.random()
        p = (float(r * np.cos(a)), float(r * np.sin(a)))
        if all((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2 >= min_gap**2 for q in points):
            points.append(p)
    while len(points) < n:  # pragma: no cover - the gap always fits for n <= 6
        points.append((0.0, 0.0))
    return points


def detail(seed: int, path: Sequence[str], salt: int = 0) -> Detail:
    """Isolated glyphs 1-2 px across, scattered in a species-specific layout.

    Isolated (several pixels apart) rather than grouped, so that a blur erases them instead
    of merging them into a visible smudge.
    """
    rng = taxon_rng(seed, path, salt)
    kind = DETAILS[int(rng.integers(len(DETAILS)))]
    n = int(rng.integers(2, 6))
    angle = float(rng.choice([0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4]))
    return Detail(kind, n, angle, tuple(_spread_points(rng, n, 0.5)))


def _assign(
    paths: Sequence[tuple[str, ...]],
    make: Callable[[tuple[str, ...], int], object],
    key: Callable[[object], Hashable],
    clash: Callable[[object, list[object]], bool] | None = None,
    tries: int = 64,
) -> dict[tuple[str, ...], object]:
    """Draw a trait per taxon, re-drawing (salt 1, 2, …) while it clashes with a sibling's.
    Stand-ins come after their named siblings, so a named taxon looks as it would without
    them."""
    out: dict[tuple[str, ...], object] = {}
    by_parent: dict[tuple[str, ...], list[object]] = {}
    for path in sorted(paths, key=lambda p: (is_stand_in(p), p)):
        siblings = by_parent.setdefault(path[:-1], [])
        chosen = make(path, 0)
        for salt in range(tries):
            candidate = make(path, salt)
            same = key(candidate) in {key(s) for s in siblings}
            if not same and not (clash and clash(candidate, siblings)):
                chosen = candidate
                break
        siblings.append(chosen)
        out[path] = chosen
    return out


def _hue_clash(candidate: object, siblings: list[object]) -> bool:
    hue = candidate.hue  # type: ignore[attr-defined]
    for other in siblings:
        d = abs(hue - other.hue) % 360  # type: ignore[attr-defined]
        if min(d, 360 - d) < 40:
            return True
    return False


def assign_traits(world: World, seed: int) -> dict[Path4, Traits]:
    """Traits of every species, with sister taxa kept distinct at their own rank.

    Sister orders get different body plans while unused plans remain (real orders keep the plan
    that resembles them); sister families get hues at least 40° apart where possible; sister
    genera differ in pattern kind or count; sister species differ in their fine detail.
    """
    n_plans = len(PLANS)
    orders = _assign(
        world.taxa(0),
        lambda p, s: order_traits(seed, p, s),
        key=lambda t: t.plan,  # type: ignore[attr-defined]
        tries=1 if len(world.taxa(0)) > n_plans else 64,
    )
    if any(p[0] in KNOWN_PLANS for p in world.taxa(0)):
        orders = {p: order_traits(seed, p, 0) for p in world.taxa(0)}
    families = _assign(world.taxa(1), lambda p, s: palette(seed, p, s), key=id, clash=_hue_clash)
    genera = _assign(
        world.taxa(2),
        lambda p, s: pattern(seed, p, s),
        key=lambda t: (t.kind, t.count),  # type: ignore[attr-defined]
    )
    species = _assign(
        world.taxa(3),
        lambda p, s: detail(seed, p, s),
        key=lambda t: (t.kind, t.count),  # type: ignore[attr-defined]
    )
    return {
        p: Traits(orders[p[:1]], families[p[:2]], genera[p[:3]], species[p])  # type: ignore[arg-type]
        for p in world.species
    }
