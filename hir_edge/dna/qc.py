"""Read cleaning, quality control and strand orientation of COI barcodes.

Reads are cleaned to the A/C/G/T/N alphabet the tokenizers expect (case, whitespace and gap
characters removed, U→T, IUPAC ambiguity codes → N) and put on the coding strand, because the
encoders were trained on coding-strand barcodes and a reverse-complemented read embeds as a
different sequence. Each read gets a :class:`ReadQC` record a field biologist can act on.

Edge path: standard library and numpy only.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np

# Flag thresholds. COI-5P barcodes are ~658 bp and BOLD calls a barcode compliant from 500 bp
# with < 1% N; reads under 200 bp or over 5% N are still identified, but flagged, because they
# carry too little sequence to separate close species.
DEFAULT_MIN_LENGTH = 200
DEFAULT_MAX_N_FRACTION = 0.05

_WHITESPACE = " \t\r\n\v\f"
_GAPS = "-.~"
_AMBIGUITY = "RYSWKMBDHV"
_VALID = "ACGTUN" + _AMBIGUITY
_DROP_VALID = str.maketrans("", "", _VALID + _VALID.lower() + _GAPS + _WHITESPACE)
_DROP_LAYOUT = str.maketrans("", "", _GAPS + _WHITESPACE)
_DROP_WHITESPACE = str.maketrans("", "", _WHITESPACE)
_TO_ACGTN = str.maketrans("U" + _AMBIGUITY, "T" + "N" * len(_AMBIGUITY))
# Letters of amino acids that are no nucleotide code (X and '*' are left out: a DNA read may
# use X for a masked base).
_PROTEIN_ONLY = frozenset("EFIJLOPQZ")
_PROTEIN_SHARE = 0.10
_COMPLEMENT = str.maketrans("ACGTURYSWKMBDHVNacgturyswkmbdhvn", "TGCAAYRSWMKVHDBNtgcaayrswmkvhdbn")
_N_RUN = re.compile("N+")
_A, _C, _G, _T = (ord(c) for c in "ACGT")
# The one base table: byte -> 0..3 for A/C/G/T (either case), -1 for anything else (N, IUPAC).
BASE_CODE = np.full(256, -1, dtype=np.int64)
for _code, _base in enumerate("ACGT"):
    BASE_CODE[ord(_base)] = BASE_CODE[ord(_base.lower())] = _code
BASE_CODE.flags.writeable = False

# P(base | previous base, codon position of the base) on the COI-5P coding strand: rows are
# the 1st, 2nd and 3rd codon position, then the previous base (A C G T), then the base
# (A C G T). Estimated from the 9,278 BOLD barcodes of ../shared/data/bold_coi (frame = the
# one free of stop codons) by ``python benchmarks/bold_qc.py --fit``; fitted on either file
# alone it orients the other as well (cross-fit figures in benchmarks/results/bold_qc.md).
# The signal is the codon bias of insect mtDNA: A/T-rich, G-poor 3rd positions, T-rich 2nd
# positions of a hydrophobic membrane protein.
COI_MARKOV = np.array(
    [
        [
            [0.336, 0.117, 0.300, 0.247],
            [0.178, 0.387, 0.173, 0.261],
            [0.207, 0.147, 0.424, 0.223],
            [0.312, 0.136, 0.237, 0.315],
        ],
        [
            [0.166, 0.186, 0.086, 0.562],
            [0.184, 0.399, 0.132, 0.285],
            [0.148, 0.275, 0.349, 0.227],
            [0.056, 0.236, 0.093, 0.615],
        ],
        [
            [0.151, 0.144, 0.013, 0.692],
            [0.373, 0.115, 0.022, 0.490],
            [0.696, 0.023, 0.090, 0.191],
            [0.469, 0.053, 0.036, 0.442],
        ],
    ]
)
COI_MARKOV.flags.writeable = False


def _log_table(model: np.ndarray) -> np.ndarray:
    """[3, 4, 4] probabilities -> [3, 17] log-probabilities by transition, then a 0 column."""
    model = np.asarray(model, dtype=np.float64)
    if model.shape != (3, 4, 4) or (model <= 0).any():
        raise ValueError(
            f"a COI model is a [3, 4, 4] array of probabilities > 0, got {model.shape}"
        )
    table = np.zeros((3, 17))
    table[:, :16] = np.log(model).reshape(3, 16)
    table.flags.writeable = False
    return table


_LOG_COI_MARKOV = _log_table(COI_MARKOV)
_WINDOW = 90  # bases per window (30 codons) in which the frame is chosen afresh
# Strand calls below this log-likelihood ratio (nats) are flagged: the 9,278 real barcodes all
# score >= 25 (median ~80); wrong calls on heavily degraded reads rarely reach 20.
UNCERTAIN_STRAND_MARGIN = 10.0


@dataclass(frozen=True)
class ReadQC:
    """What cleaning found and changed in one read.

    ``orientation_margin`` is the evidence for the chosen strand: the log-likelihood ratio in
    nats between the two strands under the COI coding model (see ``orient_coi``); 0 when
    orientation was not run. ``stop_codons`` > 0 on an oriented read means no frame is open:
    indels (a frameshift), a pseudogene (numt) or not COI at all.
    """

    raw_length: int
    clean_length: int
    gaps_removed: int
    n_count: int
    n_fraction: float
    ambiguity_count: int  # IUPAC codes other than N, turned into N
    longest_n_run: int
    reverse_complemented: bool
    orientation_margin: float
    stop_codons: int  # TAA/TAG in the best frame of the final strand (invertebrate mt code)
    flags: tuple[str, ...]

    def to_dict(self) -> dict:
        out = asdict(self)
        out["flags"] = list(self.flags)
        return out


# ----------------------------------------------------------------------------- cleaning


def reverse_complement(seq: str) -> str:
    """Reverse complement, IUPAC aware (R<->Y, K<->M, B<->V, D<->H; S, W, N and gaps unchanged)."""
    return seq.translate(_COMPLEMENT)[::-1]


def _bad_characters(raw: str) -> str:
    """The message for a sequence with characters outside the nucleotide alphabet."""
    letters = raw.translate(_DROP_LAYOUT).upper()
    protein = sorted({c for c in letters if c in _PROTEIN_ONLY})
    if letters and sum(c in _PROTEIN_ONLY for c in letters) >= _PROTEIN_SHARE * len(letters):
        shown = ", ".join(protein[:4]) + (", …" if len(protein) > 4 else "")
        return f"looks like a protein sequence (amino-acid letters {shown}); expected DNA"
    first: dict[str, int] = {}
    for position, char in enumerate(raw, 1):
        if char.translate(_DROP_VALID) and char not in first:
            first[char] = position
    listed = ", ".join(f"{c!r} (first at position {p})" for c, p in list(first.items())[:5])
    noun = "invalid character" if len(first) == 1 else "invalid characters"
    return f"{noun} {listed}; expected DNA (A C G T/U, IUPAC codes, N, gaps - . ~)"


def stop_codon_counts(seq: str) -> tuple[np.ndarray, np.ndarray]:
    """TAA/TAG counts in the 3 frames of each strand (invertebrate mitochondrial code).

    Frame f holds the codons that start at positions f, f+3, ...; on the reverse strand the
    positions are those of the reverse complement. Codons holding an N never count.

    Returns:
        (forward counts [3], reverse-strand counts [3]), int64.
    """
    b = np.frombuffer(seq.encode("ascii"), dtype=np.uint8)
    if len(b) < 3:
        return np.zeros(3, np.int64), np.zeros(3, np.int64)
    x, y, z = b[:-2], b[1:-1], b[2:]
    forward = np.flatnonzero((x == _T) & (y == _A) & ((z == _A) | (z == _G)))
    # TAA/TAG on the reverse strand read TTA/CTA on this one.
    reverse = np.flatnonzero(((x == _T) | (x == _C)) & (y == _T) & (z == _A))
    return (
        np.bincount(forward % 3, minlength=3),
        np.bincount((len(b) - 3 - reverse) % 3, minlength=3),
    )


def base_codes(seq: str) -> np.ndarray:
    """A/C/G/T as 0..3, anything else (N) as -1."""
    return BASE_CODE[np.frombuffer(seq.encode("ascii"), dtype=np.uint8)]


def _coding_log_likelihood(codes: np.ndarray, log_model: np.ndarray) -> float:
    """Log-likelihood of a read as coding strand, the frame chosen per 90-bp window."""
    n = len(codes) - 1
    if n < 1:
        return 0.0
    prev, cur = codes[:-1], codes[1:]
    # Column 16 is all zeros: a transition from or to N adds nothing.
    pair = np.where((prev >= 0) & (cur >= 0), prev * 4 + cur, 16)
    by_position = log_model[:, pair]  # [codon position, transition]
    # In frame f, base j+1 sits at codon position (j+1-f) % 3.
    column = np.arange(n)
    per_base = by_position[(column + 1 - np.arange(3)[:, None]) % 3, column]
    n_windows = max(1, n // _WINDOW)
    windows = np.add.reduceat(per_base, (np.arange(n_windows) * n) // n_windows, axis=1)
    return float(windows.max(axis=0).sum())


def orient_coi(seq: str, model: np.ndarray | None = None) -> tuple[str, bool, float]:
    """Put a clean COI barcode on its coding strand.

    Each strand is scored by its log-likelihood under a 3-periodic first-order Markov model of
    COI-5P coding sequence (``COI_MARKOV``), the frame chosen anew in every 90-bp window so an
    indel costs only its window; the likelier strand wins. Why not stop codons: they decide
    every clean barcode too, but the reverse strand's best frame is often only 1-2 stops worse,
    so a few indels or substitutions (a nanopore read) flip ~17% of reads at the ``paper``
    degradation preset, where this model flips ~0.1% (benchmarks/results/bold_qc.md).

    Args:
        seq: a clean read (upper-case A/C/G/T/N, as from ``clean_read``).
        model: P(base | previous base, codon position) as a [3, 4, 4] array; default
            ``COI_MARKOV``.

    Returns:
        (oriented sequence, whether it was reverse-complemented, margin): the margin is the
        log-likelihood ratio in nats between the strands (real barcodes: median ~80; below
        ``UNCERTAIN_STRAND_MARGIN`` the read is flagged ``uncertain_strand``).
    """
    log_model = _LOG_COI_MARKOV if model is None else _log_table(model)
    codes = base_codes(seq)
    backwards = codes[::-1]
    reverse = np.where(backwards >= 0, 3 - backwards, -1)  # A<->T, C<->G; N stays -1
    margin = _coding_log_likelihood(reverse, log_model) - _coding_log_likelihood(codes, log_model)
    flip = margin > 0
    return (reverse_complement(seq) if flip else seq), flip, abs(margin)


def clean_read(
    raw: str,
    *,
    orient: bool = False,
    min_length: int = DEFAULT_MIN_LENGTH,
    max_n_fraction: float = DEFAULT_MAX_N_FRACTION,
) -> tuple[str, ReadQC]:
    """Clean one raw sequence to upper-case A/C/G/T/N and measure it.

    Whitespace and alignment gaps (``- . ~``) are removed, U becomes T, IUPAC ambiguity codes
    (R Y S W K M B D H V) become N: the k-mer vocabularies know only A/C/G/T, and N is what
    they map to "unknown".

    Args:
        raw: the sequence as read from the file.
        orient: also put the read on the COI coding strand (``orient_coi``).
        min_length: reads shorter than this (after cleaning) are flagged ``short``.
        max_n_fraction: reads with a larger share of N are flagged ``many_n``.

    Returns:
        (clean sequence, ReadQC).

    Raises:
        ValueError: no sequence, a protein sequence, or characters outside the nucleotide
            alphabet; the message names them and says what is expected.
    """
    if raw.translate(_DROP_VALID):
        raise ValueError(_bad_characters(raw))
    compact = raw.translate(_DROP_LAYOUT)
    if not compact:
        raise ValueError("has no sequence" if not raw.strip() else "has no sequence (only gaps)")
    upper = compact.upper()
    ambiguity = len(upper) - sum(upper.count(c) for c in "ACGTUN")
    seq = upper.translate(_TO_ACGTN)
    flipped, margin = False, 0.0
    if orient:
        seq, flipped, margin = orient_coi(seq)
    stops = int(stop_codon_counts(seq)[0].min())
    n_count = seq.count("N")
    n_fraction = n_count / len(seq)
    flags = []
    if len(seq) < min_length:
        flags.append("short")
    if n_fraction > max_n_fraction:
        flags.append("many_n")
    if flipped:
        flags.append("reverse_complemented")
    if orient and margin < UNCERTAIN_STRAND_MARGIN:
        flags.append("uncertain_strand")
    if stops:
        flags.append("stop_codons")
    qc = ReadQC(
        raw_length=len(raw),
        clean_length=len(seq),
        gaps_removed=len(raw.translate(_DROP_WHITESPACE)) - len(compact),
        n_count=n_count,
        n_fraction=n_fraction,
        ambiguity_count=ambiguity,
        longest_n_run=max((len(m) for m in _N_RUN.findall(seq)), default=0),
        reverse_complemented=flipped,
        orientation_margin=margin,
        stop_codons=stops,
        flags=tuple(flags),
    )
    return seq, qc
