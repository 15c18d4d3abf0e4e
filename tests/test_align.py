"""Read-to-reference alignment and the divergence estimate (hir_edge.dna.align)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from hir_edge.degrade import degrade_dna_seeded, get_preset
from hir_edge.dna.align import (
    Hit,
    ReferenceAligner,
    biopython_aligner,
    coding_frame,
)
from hir_edge.dna.divergence import divergence_estimate, novel_species
from hir_edge.dna.qc import clean_read

BOLD = Path(__file__).resolve().parents[2] / "shared" / "data" / "bold_coi"
CODONS = [a + b + c for a in "ACGT" for b in "ACGT" for c in "ACGT"]
SENSE = [c for c in CODONS if c not in ("TAA", "TAG")]


def coding(rng: np.random.Generator, codons: int) -> str:
    """A random open reading frame in frame 0 (no TAA/TAG), like a COI barcode."""
    return "".join(rng.choice(SENSE, codons))


def maximum_by_bisection(third_matched: int, other_matched: int, mismatches: int) -> float:
    """D maximising n3·log(1 - 2.55 D) + n12·log(1 - 0.225 D) + M·log(D): the likelihood with
    no read errors (e = 0) and M third-position mismatches, by hand."""
    slope = lambda d: (  # noqa: E731
        -third_matched * 2.55 / (1 - 2.55 * d)
        - other_matched * 0.225 / (1 - 0.225 * d)
        + mismatches / d
    )
    lo, hi = 1e-6, 0.3
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if slope(mid) > 0 else (lo, mid)
    return lo


def test_divergence_estimate_by_hand():
    # 600 sites, 20 third-position changes: a sister species. Errors would put 2/3 of them on
    # positions 1-2, so e = 0 and D solves the one-parameter likelihood (0.0337).
    third = np.ones(20, dtype=bool)
    expected = maximum_by_bisection(180, 400, 20)
    assert expected == pytest.approx(0.03373, abs=1e-5)
    for shares in (np.ones(20), np.full(20, 1 / 3)):
        assert divergence_estimate((200, 400), third, shares) == pytest.approx(expected, abs=5e-4)
    # 20 mismatches over all codon positions to bases no species carries there: read errors.
    spread = np.array([True] * 7 + [False] * 13)
    assert divergence_estimate((200, 400), spread, np.full(20, 0.1)) == 0.0
    assert divergence_estimate((200, 400), np.zeros(0, dtype=bool), np.zeros(0)) == 0.0


def test_estimate_sits_on_its_grid_so_a_cut_off_is_not_decided_by_float_noise():
    # 3 third-position changes over 150 sites: exactly the 2% cut-off, which is not above it
    d = divergence_estimate((50, 100), np.ones(3, dtype=bool), np.ones(3))
    assert d == 0.02
    assert novel_species(Hit(0, 0.98, 150, (0, 0, 3), 0, d))[0] is False
    assert divergence_estimate((50, 100), np.ones(4, dtype=bool), np.ones(4)) == 0.027


def test_a_library_without_species_names_still_weighs_its_bases():
    """References named only to genus: each counts once per site; reads still get hits."""
    rng = np.random.default_rng(8)
    refs = [coding(rng, 200) for _ in range(3)]
    read = mutate_third_positions(refs[1], range(0, 200, 20))
    for species in (None, [None, None, None]):
        aligner = ReferenceAligner(refs, shortlist=3, species=species)
        assert aligner.sites.species_counted == 3
        hit = aligner.search([read])[1][0]
        assert (hit.reference, sum(hit.mismatches_by_position)) == (1, 10)


def test_library_bases_decide_between_errors_and_divergence():
    """12 third- and 8 first/second-position mismatches: the same counts read as errors when
    the read's bases are ones no species carries there, as a 3% sister species when they are
    the bases other species carry."""
    third = np.array([True] * 12 + [False] * 8)
    estimates = [divergence_estimate((200, 400), third, np.full(20, g)) for g in (0.1, 1 / 3, 0.9)]
    assert estimates[0] == 0.0 < estimates[1] < 0.02 < estimates[2]
    assert estimates == pytest.approx([0.0, 0.0175, 0.0325], abs=5e-4)


def test_divergence_estimate_matches_an_exhaustive_grid():
    """Coarse-then-fine search against the whole (e, D) grid at 0.001: the likelihood is
    concave, so the two agree within the coarser step."""
    rng = np.random.default_rng(0)
    e = np.linspace(0.0, 0.3, 301)[:, None]
    d = np.linspace(0.0, 0.3, 301)[None, :]
    for _ in range(40):
        n = int(rng.integers(0, 60))
        third = rng.random(n) < rng.random()
        shares = rng.random(n)
        called = (int(rng.integers(120, 220)), int(rng.integers(240, 440)))
        w = np.where(third, 2.55, 0.225) * shares
        with np.errstate(divide="ignore", invalid="ignore"):
            grid = (called[0] - third.sum()) * np.log(np.clip(1 - e - 2.55 * d, 0, None))
            grid = grid + (called[1] - (~third).sum()) * np.log(np.clip(1 - e - 0.225 * d, 0, None))
            for weight in w:
                grid = grid + np.log(e / 3 + d * weight)
        grid = np.nan_to_num(grid, nan=-np.inf)
        best = d[0, np.unravel_index(np.argmax(grid), grid.shape)[1]]
        assert divergence_estimate(called, third, shares) == pytest.approx(best, abs=1e-3)


def test_divergence_estimate_searches_windows_to_the_whole_grids_answer():
    """The windowed search finds the very point ``np.argmax`` over every grid point finds,
    clipped fine grids (estimates at 0 and near 0.3) included."""
    rng = np.random.default_rng(3)
    estimates = set()
    for _ in range(300):
        n = int(rng.integers(0, 150))
        third = rng.random(n) < rng.random()
        shares = rng.random(n)
        called = (
            int(third.sum() + rng.integers(0, 220)),
            int((~third).sum() + rng.integers(0, 440)),
        )
        windowed = divergence_estimate(called, third, shares)
        assert windowed == divergence_estimate(called, third, shares, whole_grid=True)
        estimates.add(windowed)
    assert min(estimates) == 0.0 and max(estimates) > 0.25


def test_coding_frame_is_the_open_one():
    rng = np.random.default_rng(1)
    orf = coding(rng, 200)
    assert coding_frame(orf) == 0
    assert coding_frame("GA" + orf) == 2
    assert coding_frame("G" + orf) == 1


def test_deletion_and_truncation_cost_one_gap_and_nothing_else():
    rng = np.random.default_rng(2)
    refs = [coding(rng, 220) for _ in range(5)]
    read = refs[3][50:200] + refs[3][201:400]  # truncated both ends, base 200 deleted
    aligner = ReferenceAligner(refs, shortlist=5)
    sims, hits = aligner.search([read])
    hit = hits[0]
    assert hit.reference == 3 and int(np.argmax(sims[0])) == 3
    assert (hit.mismatches_by_position, hit.gaps, hit.span) == ((0, 0, 0), 1, 350)
    assert hit.identity == pytest.approx(349 / 350)
    assert hit.divergence == 0.0


def test_third_position_changes_read_as_divergence_random_ones_do_not():
    rng = np.random.default_rng(3)
    ref = coding(rng, 200)
    aligner = ReferenceAligner([ref, coding(rng, 200)], shortlist=2)
    swap = {"A": "G", "G": "A", "C": "T", "T": "C"}  # transitions, as most COI changes are
    sister = list(ref)
    for codon in range(5, 200, 10):  # 20 third positions: a 3.3% sister species
        sister[3 * codon + 2] = swap[sister[3 * codon + 2]]
    hit = aligner.search(["".join(sister)])[1][0]
    assert (hit.reference, hit.mismatches_by_position) == (0, (0, 0, 20))
    assert hit.divergence > 0.02
    noisy = list(ref)
    for pos in range(7, 600, 31):  # 20 errors spread over all codon positions
        noisy[pos] = swap[noisy[pos]]
    hit = aligner.search(["".join(noisy)])[1][0]
    assert sum(hit.mismatches_by_position) == 20
    assert hit.divergence < 0.01


def test_a_read_of_nothing_but_n_has_no_hit():
    rng = np.random.default_rng(4)
    aligner = ReferenceAligner([coding(rng, 200)])
    sims, hits = aligner.search(["N" * 300])
    assert hits == [None] and not sims.any()


def mutate_third_positions(seq: str, codons: range) -> str:
    """Transitions at the third position of ``codons``: how sister species differ."""
    swap = {"A": "G", "G": "A", "C": "T", "T": "C"}
    out = list(seq)
    for codon in codons:
        out[3 * codon + 2] = swap[out[3 * codon + 2]]
    return "".join(out)


def test_shortlist_keeps_a_few_per_species_so_the_next_species_is_aligned():
    rng = np.random.default_rng(5)
    a = coding(rng, 200)
    # six references of species A (one base apart each), one of B 6.7% away (40 codons)
    refs = [mutate_third_positions(a, range(n, n + 1)) for n in range(6)]
    refs.append(mutate_third_positions(a, range(100, 140)))
    species = ["A"] * 6 + ["B"]
    plain = ReferenceAligner(refs, shortlist=4)
    diverse = ReferenceAligner(refs, shortlist=4, species=species, per_species=2)
    sims_plain, hits_plain = plain.search([a])
    sims, hits = diverse.search([a])
    assert sims_plain[0, 6] == 0.0 and hits_plain[0].gap is None  # B never aligned
    assert sims[0, 6] > 0 and int((sims[0, :6] > 0).sum()) == 2  # two of A, then B
    # score identities: A 599/600 (one mismatch), B 560/600: the gap is 39/600
    assert hits[0].gap == pytest.approx(39 / 600, abs=1e-6)


def test_a_far_read_is_aligned_to_every_candidate_so_its_nearest_relative_is_found():
    rng = np.random.default_rng(11)
    read = coding(rng, 200)
    # A's first reference differs in one 120-base block (under 90% identical, but most of
    # its 6-mers are intact: the k-mer cosine ranks it first); A's second differs at 25 third
    # positions spread along the barcode (95.8% identical, fewer 6-mers intact).
    block = read[:300] + "".join(np.random.default_rng(3).choice(list("ACGT"), 120)) + read[420:]
    spread = mutate_third_positions(read, range(0, 200, 8))
    refs = [block, spread]
    narrow = ReferenceAligner(refs, shortlist=1, species=["A", "A"], per_species=1, widen=False)
    wide = ReferenceAligner(refs, shortlist=1, species=["A", "A"], per_species=1)
    sims_narrow, (hit_narrow,) = narrow.search([read])
    sims_wide, (hit_wide,) = wide.search([read])
    assert hit_narrow.reference == 0 and hit_narrow.identity < 0.9
    assert sims_narrow[0, 1] == 0.0  # the spread reference was never aligned
    assert hit_wide.reference == 1 and hit_wide.identity == pytest.approx(575 / 600)
    assert hit_wide.mismatches_by_position == (0, 0, 25)
    assert sims_wide[0, 0] > 0  # both aligned: the votes see them both


def test_novelty_rule_by_hand():
    def hit(identity=0.97, divergence=0.03, gap=0.1):
        return Hit(0, identity, 600, (1, 1, 18), 0, divergence, gap, library_bases=17)

    assert novel_species(hit()) == (
        True,
        "best reference barcode 97.0% identical; estimated divergence 3.0% > 2.0% "
        "(mismatches at codon positions 1/2/3: 1/1/18; 17 of 20 with a base other species "
        "carry there)",
    )
    assert novel_species(hit(divergence=0.015))[0] is False
    assert novel_species(hit(divergence=0.015), divergence=0.01)[0] is True
    assert novel_species(hit(identity=0.7)) == (
        True,
        "best reference barcode only 70.0% identical (< 80%)",
    )


def test_a_sister_species_has_a_small_barcode_gap_a_distant_one_a_large_one():
    """The gap is reported, not used to decide (see novel_species): a read 3.3% from A is
    flagged novel whether the next species is 1.5% or 11% from A."""
    rng = np.random.default_rng(6)
    a = coding(rng, 200)
    far = mutate_third_positions(a, range(0, 200, 3))  # 67 codons: 11% away
    sister = mutate_third_positions(a, range(5, 50, 5))  # 9 codons: 1.5% away
    lineage = mutate_third_positions(a, range(1, 200, 10))  # 20 codons: 3.3% from A
    for other, wide in ((far, True), (sister, False)):
        aligner = ReferenceAligner([a, other], shortlist=2, species=["A", "B"])
        hit = aligner.search([lineage])[1][0]
        assert hit.reference == 0
        assert hit.divergence > 0.03  # 20 third-position changes of 600 sites
        assert (hit.gap > 0.05) is wide
        assert novel_species(hit)[0] is True


@pytest.mark.realdata
@pytest.mark.skipif(not BOLD.is_dir(), reason="../shared/data/bold_coi is absent")
def test_real_barcodes_degraded_reads_stay_known_absent_species_read_as_novel():
    """Real BOLD barcodes: 20 genera, one species of each held out whole."""
    with (BOLD / "bold_coi_100sp.tsv").open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    by_genus: dict[str, dict[str, list[dict]]] = {}
    for r in rows:
        by_genus.setdefault(r["genus_name"], {}).setdefault(r["species_name"], []).append(r)
    genera = sorted(g for g, sp in by_genus.items() if len(sp) >= 2)[:20]
    refs, names, known, absent = [], [], [], []
    for g in genera:
        species = sorted(by_genus[g])
        for name in species[1:]:
            records = by_genus[g][name]
            if len(records) < 2:
                continue
            refs += [clean_read(r["nucleotides"], orient=True)[0] for r in records[1:]]
            names += [name] * (len(records) - 1)
            known.append(clean_read(records[0]["nucleotides"], orient=True)[0])
        absent.append(clean_read(by_genus[g][species[0]][0]["nucleotides"], orient=True)[0])
    noise = get_preset("paper").dna
    noisy = [degrade_dna_seeded(s, noise, 0, i) for i, s in enumerate(known[:30])]
    aligner = ReferenceAligner(refs, species=names)
    known_hits = [h for h in aligner.search(noisy)[1] if h is not None]
    absent_hits = [h for h in aligner.search(absent)[1] if h is not None]
    assert np.mean([h.divergence <= 0.02 for h in known_hits]) >= 0.9
    assert np.mean([h.divergence > 0.02 for h in absent_hits]) >= 0.9
    assert all(h.gap is not None for h in known_hits)  # the next species was aligned too


def test_the_library_tells_a_short_read_s_strand():
    rng = np.random.default_rng(13)
    refs = [coding(rng, 200) for _ in range(4)]
    aligner = ReferenceAligner(refs, shortlist=2)
    window = refs[2][250:350]
    reverse_complemented = window[::-1].translate(str.maketrans("ACGT", "TGCA"))
    flip, decided = aligner.prefers_reverse([window, reverse_complemented, "N" * 100])
    assert flip.tolist() == [False, True, False]
    assert decided.tolist() == [True, True, False]  # a read of Ns shares no k-mer either way


def test_worker_processes_give_the_same_answers():
    rng = np.random.default_rng(7)
    refs = [coding(rng, 200) for _ in range(12)]
    species = [f"S{n // 3}" for n in range(12)]
    reads = [mutate_third_positions(refs[n % 12], range(n % 7, 200, 23)) for n in range(20)]
    reads[3] = "N" * 300  # no hit, in the middle of a chunk
    reads[5] = mutate_third_positions(refs[5], range(0, 200, 10))  # 3.3% away: widened
    serial = ReferenceAligner(refs, shortlist=5, species=species)
    parallel = ReferenceAligner(refs, shortlist=5, species=species, workers=2, min_parallel=4)
    try:
        sims, hits = parallel.search(reads)
    finally:
        parallel.close()
    expected_sims, expected_hits = serial.search(reads)
    np.testing.assert_array_equal(sims, expected_sims)
    assert hits == expected_hits and hits[3] is None


def test_simd_scores_equal_biopython_scores_on_degraded_reads():
    from hir_edge.degrade import degrade_dna_seeded, get_preset
    from hir_edge.dna.pairwise import CandidateScorer

    pytest.importorskip("pyopal")
    rng = np.random.default_rng(7)
    refs = ["".join(rng.choice(list("ACGT"), 640)) for _ in range(30)]
    aligner = ReferenceAligner(refs, k=6)
    scorer = aligner._scorer
    assert scorer.simd
    slow = CandidateScorer(refs, biopython_aligner)
    slow._opal = None  # the Biopython path
    severe = get_preset("severe").dna
    for i in range(12):
        # substitutions, Ns, indels, a dropout run, truncation; and unrelated references
        read = clean_read(degrade_dna_seeded(refs[i], severe, 0, i))[0][i * 5 :]
        candidates = rng.permutation(30)[:12]
        assert scorer.scores(read, candidates).tolist() == slow.scores(read, candidates).tolist()


def test_the_best_hit_alignment_is_biopythons_on_the_diagonal_and_off_it():
    """The diagonal shortcut gives Biopython's own alignment where it applies (substituted
    reads, fragments, overhanging ends) and stands aside where another alignment of equal
    score could exist (an indel; a mismatch in the last columns)."""
    from hir_edge.dna.pairwise import CLEAN_ENDS, _ungapped

    rng = np.random.default_rng(11)
    ref = coding(rng, 215)
    aligner = ReferenceAligner([ref], k=6)
    scorer = aligner._scorer

    def substituted(seq: str, at: list[int]) -> str:
        out = list(seq)
        for i in at:
            out[i] = "A" if out[i] != "A" else "C"
        return "".join(out)

    cases = {
        "substitutions": (substituted(ref, [40, 200, 333, 500]), True),
        "N and substitution": (substituted(ref[:300] + "NNN" + ref[303:], [90]), True),
        "fragment": (ref[120:270], True),
        "read overhangs the reference": (coding(rng, 10) + ref[:400], True),
        "deletion": (ref[:300] + ref[302:], False),
        "insertion": (ref[:300] + "GAT" + ref[300:], False),
        "mismatch near the end": (substituted(ref, [len(ref) - CLEAN_ENDS + 2]), False),
    }
    for name, (read, on_diagonal) in cases.items():
        score = float(scorer.scores(read, np.array([0]))[0])
        got = scorer.blocks(read, 0, score)
        expected = aligner._aligner.align(read, ref)[0].aligned
        assert (_ungapped(read, ref, score) is not None) == on_diagonal, name
        np.testing.assert_array_equal(np.asarray(got).reshape(2, -1, 2), expected, err_msg=name)


def test_a_few_perfectly_aligned_bases_are_no_identical_hit():
    # free end gaps let a random read align a handful of bases perfectly to some reference:
    # the identity counts at least half of the possible overlap, so it stays low
    rng = np.random.default_rng(1)
    refs = ["".join(rng.choice(list("ACGT"), 650)) for _ in range(40)]
    aligner = ReferenceAligner(refs, k=6)
    reads = ["".join(rng.choice(list("ACGT"), 650)) for _ in range(20)]
    _, hits = aligner.search(reads)
    for hit in hits:
        assert hit is None or hit.identity < 0.7
    # a real fragment is unaffected: 150 bases of a reference are 100% identical to it
    _, (fragment,) = aligner.search([refs[3][200:350]])
    assert fragment.reference == 3 and fragment.identity == 1.0 and fragment.span == 150


def test_the_library_bases_are_built_only_for_a_hit_with_a_mismatch():
    """A read identical to its reference needs no per-site bases (start-up time): the profile
    is built when a best hit first has a mismatch, and gives that hit its evidence."""
    rng = np.random.default_rng(8)
    refs = [coding(rng, 200) for _ in range(3)]
    aligner = ReferenceAligner(refs, shortlist=3, species=["a", "b", "c"])
    (hit,) = aligner.search([refs[2]])[1]
    assert hit.identity == 1.0 and hit.library_bases == 0 and "sites" not in vars(aligner)
    read = mutate_third_positions(refs[1], range(0, 200, 20))
    (hit,) = aligner.search([read])[1]
    assert "sites" in vars(aligner) and sum(hit.mismatches_by_position) == 10


_KILLED_PARENT = """
import sys, time
import numpy as np
from hir_edge.dna.align import ReferenceAligner

rng = np.random.default_rng(0)
refs = ["".join(rng.choice(list("ACGT"), 300)) for _ in range(20)]
aligner = ReferenceAligner(refs, workers=2, min_parallel=2)
aligner.start_search(refs[:4])()  # starts the two worker processes
print(" ".join(str(pid) for pid in aligner._pool._processes), flush=True)
time.sleep(60)
"""


def test_alignment_workers_end_when_their_command_is_killed():
    """SIGKILL gives identify no chance to shut its pool down: the workers notice their parent
    is gone and exit, instead of living on with a copy of the library each."""
    import os
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_PARENT], stdout=subprocess.PIPE, text=True
    )
    try:
        workers = [int(pid) for pid in proc.stdout.readline().split()]
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert len(workers) == 2

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        # a zombie is gone in all but name (its parent, init, reaps it)
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"

    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(pid) for pid in workers)


# --------------------------------------------------------------------------- anchored traceback
def test_exact_runs_are_the_maximal_shared_stretches_by_hand():
    from hir_edge.dna.anchored import exact_runs

    rng = np.random.default_rng(3)
    ref = coding(rng, 60)  # 180 bases
    # the read: ref[10:70], 5 inserted bases, ref[70:150] with a substitution at ref[110]
    middle = list(ref[70:150])
    middle[40] = "A" if middle[40] != "A" else "C"
    read = ref[10:70] + "TTTTT" + "".join(middle)
    assert ref[70] != "T" and ref[69] != "T"  # the inserted Ts extend neither run
    # 60 shared bases on diagonal +10; after the insertion the diagonal is +5, broken by the
    # substitution into 40 bases before it and 39 after
    assert exact_runs(read, ref, k=12) == [(0, 10, 60), (65, 70, 40), (106, 111, 39)]


def _anchored_and_full(read: str, ref: str):
    aligner = ReferenceAligner([ref], k=6)
    score = float(aligner._scorer.scores(read, np.array([0]))[0])
    full = aligner._aligner.align(read, ref)[0]
    assert full.score == score  # the SIMD score is the optimum the pieces must reach
    return aligner._scorer._anchored.aligned(read, ref, score), full.aligned, score


def test_the_anchored_traceback_is_biopythons_on_indels_along_homopolymers():
    """Gaps that could sit anywhere along a run of one base (equal scores) land where
    Biopython's full traceback puts them, at either end of the read and in its middle."""
    rng = np.random.default_rng(5)
    ref = coding(rng, 200)
    ref = ref[:150] + "TTTTTT" + ref[150:400] + "AAAAA" + ref[400:]
    cases = {
        "deletion in a homopolymer": ref[:152] + ref[153:],
        "insertion in a homopolymer": ref[:408] + "A" + ref[408:],
        "both, and substitutions": ref[:40] + "G" + ref[41:152] + ref[154:408] + "AA" + ref[408:],
        "codon deletion near the start": ref[:20] + ref[23:],
        "codon insertion near the end": ref[:-25] + "GCA" + ref[-25:],
        "fragment with an indel": ref[100:250] + ref[251:330],
    }
    for name, read in cases.items():
        got, expected, _ = _anchored_and_full(read, ref)
        assert got is not None, name
        np.testing.assert_array_equal(np.asarray(got).reshape(2, -1, 2), expected, err_msg=name)


def test_the_anchored_traceback_stands_aside_when_it_cannot_reach_the_optimum():
    rng = np.random.default_rng(8)
    ref = coding(rng, 200)
    read = ref[:300] + ref[302:]
    anchored = ReferenceAligner([ref], k=6)._scorer._anchored
    _, _, score = _anchored_and_full(read, ref)
    assert anchored.aligned(read, ref, score + 1.0) is None  # pieces add up to less
    assert anchored.aligned("ACGT" * 5, ref, 0.0) is None  # no anchor at all


@pytest.mark.realdata
def test_the_anchored_traceback_is_biopythons_on_real_degraded_reads(bold_100sp):
    """Real barcodes, `paper` and `severe` reads and reads of other species: whenever the
    pieces are taken, the alignment is Biopython's own (benchmarks/dna_speed.py measures
    more); and most degraded reads take them."""
    with bold_100sp.open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))[::25][:120]
    seqs = [clean_read(r["nucleotides"], orient=True)[0] for r in rows]
    refs, reads = seqs[:60], []
    for i, s in enumerate(seqs[:60]):
        for preset in ("paper", "severe"):
            reads.append((degrade_dna_seeded(s, get_preset(preset).dna, 9, i), s))
    reads += list(zip(seqs[60:], refs))  # another record against an unrelated or sister one
    aligner = ReferenceAligner(refs, k=6)
    anchored = aligner._scorer._anchored
    taken = 0
    for read, ref in reads:
        read = read.replace("-", "")
        full = aligner._aligner.align(read, ref)[0]
        got = anchored.aligned(read, ref, float(full.score))
        if got is not None:
            taken += 1
            np.testing.assert_array_equal(np.asarray(got).reshape(2, -1, 2), full.aligned)
    assert taken >= 100


def test_kmer_codes_and_ungapped_pieces_by_hand():
    """The anchored traceback's k-mer codes (2 bits a base, -1 over an N), and the pieces it
    aligns side by side: between two anchors a gapped alignment of two 10-base pieces pairs at
    most 9 bases and opens two gaps (9 - 4 = 5), so a score above 5 is the one optimum."""
    from hir_edge.dna.anchored import AnchoredTraceback, _exact_end, _kmer_codes
    from hir_edge.dna.qc import base_codes

    assert _kmer_codes(base_codes("ACGTNA"), 2).tolist() == [1, 6, 11, -1, -1]
    assert _kmer_codes(base_codes("ACG"), 4).tolist() == []
    pieces = AnchoredTraceback(biopython_aligner())
    ref = "ACGTACGTAC"
    assert pieces._ungapped_score("ACGTTCGTAC", ref) == 8.0  # 9 matches, 1 mismatch
    assert pieces._ungapped_score("ACGTNCGTAC", ref) == 9.0  # N scores 0
    assert pieces._ungapped_score("TCGTTCGAAC", ref) is None  # 7 - 3 = 4, not above 5
    blocks, score = pieces._piece("ACGTTCGTAC", ref, 100, 200, False, False)
    assert (blocks, score) == ([(100, 110, 200, 210)], 8.0)
    # Biopython's own alignment of that piece: the same single block and score
    full = pieces._pieces[(False, False)].align("ACGTTCGTAC", ref)[0]
    assert full.score == 8.0 and full.aligned.tolist() == [[[0, 10]], [[0, 10]]]
    # the read's first piece (its left end free) and its last (its right end free): exact
    # where they meet the anchor, over the shorter side, they are taken as they are
    cases = {
        ("GGACGT", "ACGT", True): ([(102, 106, 200, 204)], 4.0),
        ("ACGTTT", "ACGT", False): ([(100, 104, 200, 204)], 4.0),
        ("TACGT", "GACGT", True): None,  # a mismatch: Biopython decides (end gaps are free)
        ("ANGT", "ACGT", False): None,  # an N: equal scores, Biopython decides
    }
    for (a, b, left), expected in cases.items():
        got = pieces._piece(a, b, 100, 200, left, not left)
        full = pieces._pieces[(left, not left)].align(a, b)[0]
        blocks = [
            (r0 + 100, r1 + 100, f0 + 200, f1 + 200) for (r0, r1), (f0, f1) in zip(*full.aligned)
        ]
        assert got == (blocks, float(full.score))  # Biopython's own, whichever path took it
        if expected is not None:
            assert got == expected
        fast = _exact_end(a, b, 100, 200, left)
        assert fast == (None if expected is None else expected[0][0])


def test_a_widened_search_reuses_the_spare_lanes_of_the_first_simd_pass(monkeypatch):
    """The first Opal call scores the 12 shortlisted references and the next 4 a widened
    search would add (one SIMD pass either way); the widened call scores the other 32. Hits
    and identities are those of scoring the 36 apart."""
    import hir_edge.dna.align as align

    rng = np.random.default_rng(21)
    refs = [coding(rng, 200) for _ in range(60)]
    species = [f"s{i}" for i in range(60)]
    read = coding(rng, 200)  # no relative in the library: a far read, widened
    aligner = ReferenceAligner(refs, k=6, shortlist=12, species=species)  # as the bundles
    if not aligner._scorer.simd:
        pytest.skip("pyopal is not installed: Biopython scores, no SIMD pass to fill")
    sizes = []
    scores = aligner._scorer.scores
    aligner._scorer.scores = lambda r, c: sizes.append(len(c)) or scores(r, c)
    sims, (hit,) = aligner.search([read])
    assert sizes == [16, 32]
    assert hit.identity < align.WIDEN_IDENTITY
    monkeypatch.setattr(align, "SIMD_PASS", 1)  # no spare: 12, then 36
    sizes.clear()
    sims_apart, (hit_apart,) = aligner.search([read])
    assert sizes == [12, 36]
    assert hit == hit_apart
    np.testing.assert_array_equal(sims, sims_apart)


def test_the_side_by_side_pieces_are_biopythons_on_random_small_pieces():
    """Interior pieces and the read's first and last pieces, 1-12 bases of A/C/G/T/N, against
    Biopython's own alignment of each piece: whenever a shortcut takes a piece, the blocks and
    score are Biopython's, and Biopython finds no other alignment of that score."""
    from hir_edge.dna.anchored import AnchoredTraceback, _exact_end

    pieces = AnchoredTraceback(biopython_aligner())
    rng = np.random.default_rng(4)
    taken = 0
    for _ in range(1500):
        a = "".join(rng.choice(list("ACGTN"), rng.integers(1, 13), p=[0.24] * 4 + [0.04]))
        if rng.random() < 0.6:  # mostly near copies, as pieces between anchors are
            b = "".join(c if rng.random() < 0.85 else rng.choice(list("ACGT")) for c in a)
            b = b[: max(1, len(b) - int(rng.integers(0, 3)))]
        else:
            b = "".join(rng.choice(list("ACGT"), rng.integers(1, 13)))
        for left, right in ((False, False), (True, False), (False, True)):
            shortcut = None
            if not left and not right and len(a) == len(b):
                shortcut = pieces._ungapped_score(a, b)
            elif left != right:
                shortcut = _exact_end(a, b, 0, 0, left)
            got = pieces._piece(a, b, 0, 0, left, right)
            alignments = pieces._pieces[(left, right)].align(a, b)
            full = alignments[0]
            blocks = [(r0, r1, f0, f1) for (r0, r1), (f0, f1) in zip(*full.aligned)]
            assert got == (blocks, float(full.score)), (a, b, left, right)
            if shortcut is not None:
                taken += 1
                assert len(alignments) == 1, (a, b, left, right)
    assert taken > 500


def test_anchored_traceback_refuses_settings_its_shortcuts_do_not_hold_for():
    from Bio.Align import PairwiseAligner

    from hir_edge.dna.anchored import AnchoredTraceback

    free_gap = biopython_aligner()
    free_gap.open_gap_score = 0.0
    with pytest.raises(ValueError, match="gaps must cost"):
        AnchoredTraceback(free_gap)
    no_wildcard = PairwiseAligner(match_score=1.0, mismatch_score=-1.0, open_gap_score=-2.0)
    with pytest.raises(ValueError, match="N must be the aligner's wildcard"):
        AnchoredTraceback(no_wildcard)


def test_the_kept_reference_k_mers_are_cleared_when_full(monkeypatch):
    import hir_edge.dna.anchored as anchored

    monkeypatch.setattr(anchored, "REFERENCES_KEPT", 2)
    rng = np.random.default_rng(6)
    refs = [coding(rng, 60) for _ in range(3)]
    pieces = anchored.AnchoredTraceback(biopython_aligner())
    for ref in refs:
        read = ref[:90] + ref[91:]  # one deletion: anchors on both sides
        score = float(biopython_aligner().score(read, ref))
        fresh = anchored.AnchoredTraceback(biopython_aligner()).aligned(read, ref, score)
        assert pieces.aligned(read, ref, score) == fresh is not None
    assert list(pieces._ref_kmers) == [refs[2]]  # cleared at 2, then the third kept
