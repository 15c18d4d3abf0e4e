"""COI-like barcodes evolved down a taxonomy tree.

Model (documented because the numbers downstream depend on it):

* **Root.** A coding sequence in frame 0, drawn codon by codon with per-codon-position base
  frequencies typical of insect COI (AT-rich, most of all at third positions; overall about
  T 0.38, A 0.30, C 0.16, G 0.16). Stop codons of the invertebrate mitochondrial code (TAA,
  TAG; TGA codes for Trp there) are never drawn.
* **Substitutions.** Along a branch of length ``t`` (expected substitutions per site), a site
  at codon position ``k`` receives ``Poisson(t * w_k)`` hits, with relative rates
  ``w = (0.30, 0.10, 2.60)`` (mean 1): third positions change fastest, first positions next,
  second positions least, as in real COI. Substitutions follow HKY: the rate to a new base is
  ``pi_k[new] * kappa`` for a transition (A<->G, C<->T) and ``pi_k[new]`` for a transversion
  (``kappa = 8``), so transitions dominate and the composition stays at ``pi_k`` (AT-rich).
  Hits are drawn by uniformisation: Poisson hits at the fastest leaving rate, each one a jump
  of the HKY kernel that may keep the base.
* **Purifying selection.** A hit that would create an in-frame stop codon is rejected.
* **Tree.** The root evolves into each order, each order into its families, and so on down
  to species; every specimen is its species' sequence evolved along one more short branch
  (a star phylogeny within species). Branch lengths come from target mean p-distances
  between specimens that part at each rank (:func:`branch_lengths`): the expected p-distance
  of a pair joined by a path of length ``T`` is computed exactly under HKY
  (:func:`expected_p_distance`) and inverted by bisection.
* **Reads.** A share of reads keeps the full barcode; the others are trimmed at both ends to a
  random length in ``[min_length, full length)``, as sequencing reads are.

All arrays are numpy uint8 base codes (A=0, C=1, G=2, T=3) and every step is vectorised over
sequences and sites.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ALPHABET = np.frombuffer(b"ACGT", dtype=np.uint8)
A, C, G, T = 0, 1, 2, 3

# Base frequencies (A, C, G, T) per codon position 1, 2, 3.
POSITION_FREQS = np.array(
    [
        [0.30, 0.17, 0.25, 0.28],
        [0.18, 0.24, 0.15, 0.43],
        [0.42, 0.08, 0.07, 0.43],
    ]
)
POSITION_RATES = np.array([0.30, 0.10, 2.60])  # relative substitution rate per codon position
KAPPA = 8.0  # transition / transversion rate ratio


def _kernels() -> tuple[np.ndarray, np.ndarray]:
    """Uniformised HKY jump kernels and the hit-rate factor that keeps ``t`` in substitutions.

    Returns [3 positions, 4 old, 4 new] cumulative probabilities (a hit may leave the base
    unchanged, which keeps the stationary composition at ``POSITION_FREQS``), and per position
    the factor by which hits outnumber real substitutions.
    """
    kernels = np.zeros((3, 4, 4))
    factors = np.zeros(3)
    for pos in range(3):
        pi = POSITION_FREQS[pos]
        q = np.tile(pi, (4, 1))
        for old in range(4):
            q[old, old ^ 2] *= KAPPA  # A(0)<->G(2), C(1)<->T(3): the transition partner
            q[old, old] = 0.0
        leave = q.sum(1)
        top = leave.max()
        jump = q / top
        jump[np.arange(4), np.arange(4)] = 1.0 - leave / top
        kernels[pos] = np.cumsum(jump, axis=1)
        factors[pos] = top / float(pi @ leave)
    kernels[..., -1] = 1.0
    return kernels, factors


_KERNELS, _HIT_FACTORS = _kernels()


def encode(seq: str) -> np.ndarray:
    """ACGT text to base codes (other letters are not allowed here)."""
    lookup = np.full(256, 255, dtype=np.uint8)
    lookup[ALPHABET] = np.arange(4, dtype=np.uint8)
    codes = lookup[np.frombuffer(seq.encode("ascii"), dtype=np.uint8)]
    if (codes == 255).any():
        raise ValueError("sequence holds letters other than A, C, G, T")
    return codes


def decode(codes: np.ndarray) -> str:
    return ALPHABET[codes].tobytes().decode("ascii")


def stop_codons(seqs: np.ndarray, frame: int = 0) -> np.ndarray:
    """[..., n_codons] mask of TAA/TAG codons (invertebrate mitochondrial code) in a frame."""
    n = (seqs.shape[-1] - frame) // 3
    codons = seqs[..., frame : frame + 3 * n].reshape(*seqs.shape[:-1], n, 3)
    return (
        (codons[..., 0] == T)
        & (codons[..., 1] == A)
        & ((codons[..., 2] == A) | (codons[..., 2] == G))
    )


def root_sequence(length: int, rng: np.random.Generator) -> np.ndarray:
    """A stop-free, AT-rich coding sequence of ``length`` bases in frame 0."""
    n_codons = -(-length // 3)
    pos = np.arange(3 * n_codons) % 3
    cum = np.cumsum(POSITION_FREQS, axis=1)[pos]
    seq = (rng.random(3 * n_codons)[:, None] > cum).sum(1).astype(np.uint8)
    while True:  # re-draw stop codons until none is left
        stops = stop_codons(seq)
        if not stops.any():
            break
        idx = np.flatnonzero(np.repeat(stops, 3))
        seq[idx] = (rng.random(idx.size)[:, None] > cum[idx]).sum(1)
    return seq[:length]


def mutate(seqs: np.ndarray, t: float, rng: np.random.Generator) -> np.ndarray:
    """Evolve every row of ``seqs`` [n, L] along a branch of length ``t``; returns a new array."""
    seqs = np.array(seqs, dtype=np.uint8, copy=True)
    if t <= 0 or seqs.size == 0:
        return seqs
    n, length = seqs.shape
    pos = np.arange(length) % 3
    hits = rng.poisson(t * (POSITION_RATES * _HIT_FACTORS)[pos], size=(n, length))
    full = 3 * (length // 3)
    while (hit := hits > 0).any():
        rows, cols = np.nonzero(hit)
        cum = _KERNELS[pos[cols], seqs[rows, cols]]
        new = (rng.random(rows.size)[:, None] > cum).sum(1).astype(np.uint8)
        before = seqs.copy()
        seqs[rows, cols] = new
        # Purifying selection: undo the hits that made a stop codon (the codon was stop-free).
        bad = np.zeros_like(seqs, dtype=bool)
        bad[:, :full] = np.repeat(stop_codons(seqs), 3, axis=-1)
        bad &= hit
        seqs[bad] = before[bad]
        hits[hit] -= 1
    return seqs


def _rate_matrices() -> np.ndarray:
    """[3, 4, 4] HKY rate matrices per codon position, scaled to ``POSITION_RATES``."""
    out = np.zeros((3, 4, 4))
    for pos in range(3):
        pi = POSITION_FREQS[pos]
        q = np.tile(pi, (4, 1))
        for old in range(4):
            q[old, old ^ 2] *= KAPPA
            q[old, old] = 0.0
        q *= POSITION_RATES[pos] / float(pi @ q.sum(1))
        q[np.arange(4), np.arange(4)] = -q.sum(1)
        out[pos] = q
    return out


def expected_p_distance(path_length: float) -> float:
    """Mean p-distance of two sequences joined by a path of ``path_length`` (see module doc).

    Exact under the HKY part of the model (``sum_i pi_i (1 - P_ii(T))`` with ``P = exp(QT)``,
    from the eigen-decomposition of the symmetrised rate matrix); stop-codon rejection lowers
    the realised figure slightly.
    """
    total = 0.0
    for pos, q in enumerate(_rate_matrices()):
        pi = POSITION_FREQS[pos]
        root = np.sqrt(pi)
        vals, vecs = np.linalg.eigh(root[:, None] * q / root[None, :])
        same = (vecs**2 * np.exp(vals * path_length)[None, :]).sum(1)  # P_ii(T)
        total += float(pi @ (1.0 - same))
    return total / 3


def _path_length_for(p: float) -> float:
    lo, hi = 0.0, 20.0
    if p >= expected_p_distance(hi):
        raise ValueError(f"p-distance {p} is beyond what the model can reach")
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if expected_p_distance(mid) < p else (lo, mid)
    return (lo + hi) / 2


def branch_lengths(divergence: Sequence[float]) -> tuple[float, ...]:
    """Branch lengths (root→order, order→family, family→genus, genus→species, species→specimen).

    Args:
        divergence: target mean p-distances between specimens whose lineages part at order,
            family, genus, species, and within a species (decreasing).
    """
    depths = [_path_length_for(p) / 2 for p in divergence]  # node depth above the specimens
    return tuple(
        depths[i] - (depths[i + 1] if i + 1 < len(depths) else 0.0) for i in range(len(depths))
    )


def evolve_tree(
    species: Sequence[tuple[str, ...]],
    counts: Sequence[int],
    divergence: Sequence[float],
    length: int,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """Full-length barcodes of every specimen, evolved down the tree of ``species``.

    Args:
        species: species paths (order, family, genus, species).
        counts: specimens per species, same order.
        divergence: target p-distances per rank (see :func:`branch_lengths`).
        length: barcode length.
        rng: the generator; the draw order follows the sorted tree, so output is deterministic.

    Returns:
        One [count, length] uint8 array per species.
    """
    t = branch_lengths(divergence)
    root = root_sequence(length, rng)[None]
    nodes: dict[tuple[str, ...], np.ndarray] = {(): root[0]}
    for level in range(4):
        paths = sorted({tuple(p[: level + 1]) for p in species})
        by_parent: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
        for path in paths:
            by_parent.setdefault(path[:-1], []).append(path)
        for parent, children in by_parent.items():
            seqs = mutate(np.repeat(nodes[parent][None], len(children), axis=0), t[level], rng)
            for child, seq in zip(children, seqs):
                nodes[child] = seq
    return [
        mutate(np.repeat(nodes[tuple(p)][None], n, axis=0), t[4], rng)
        for p, n in zip(species, counts)
    ]


def trim_reads(
    seqs: np.ndarray, min_length: int, full_frac: float, rng: np.random.Generator
) -> list[str]:
    """Reads of the barcodes [n, L]: a share ``full_frac`` full length, the rest end-trimmed."""
    n, length = seqs.shape
    full = rng.random(n) < full_frac
    short = rng.integers(min(min_length, length - 1), length, size=n) if length > 1 else full
    lengths = np.where(full | (min_length >= length), length, short)
    starts = (rng.random(n) * (length - lengths + 1)).astype(int)
    text = ALPHABET[seqs]
    return [
        text[i, s : s + k].tobytes().decode("ascii")
        for i, (s, k) in enumerate(zip(starts, lengths))
    ]


def p_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Share of differing sites between aligned rows of two [n, L] code arrays."""
    return (np.asarray(a) != np.asarray(b)).mean(axis=-1)
