"""Classical DNA baselines: k-mer cosine kNN and edlib best-hit identity."""

from __future__ import annotations

import csv
import math
import sys

import numpy as np
import pytest

from hir_edge.evaluation.baselines import (
    INSTALL_HINT,
    SPECIES_IDENTITY,
    AlignmentIndex,
    KmerIndex,
    alignment_predict,
    kmer_knn,
    kmer_predict,
    per_rank_accuracy,
    per_species_split,
    topk_accuracy,
)
from hir_edge.taxonomy import Taxonomy, lineage_of

pytest.importorskip("edlib")

# 40 bases without a repeated 4-mer, so every alignment below has one obvious optimum.
REF = "ATGCCGTAGCTTAGGCATCAGTTCAAGCGACTGGTACCAT"


def _mutate(seq: str, positions: list[int]) -> str:
    """Replace each listed base by the next one in ACGT (a substitution, never a no-op)."""
    out = list(seq)
    for p in positions:
        out[p] = "ACGT"[("ACGT".index(out[p]) + 1) % 4]
    return "".join(out)


def _random_seq(rng: np.random.Generator, n: int) -> str:
    return "".join(rng.choice(list("ACGT"), size=n))


def test_kmer_query_cosine_by_hand():
    index = KmerIndex(["CCCCCCC", "AAAAAAA", "AAAAAAC"], k=6)
    idx, cos = index.query(["AAAAAAC"], top=5)  # capped at the 3 references
    # AAAAAAC holds AAAAAA and AAAAAC once each: cosine 1 with itself, 1/sqrt(2) with AAAAAAA.
    assert idx.tolist() == [[2, 1, 0]]
    assert cos[0] == pytest.approx([1.0, 1 / math.sqrt(2), 0.0], abs=1e-6)


# ----------------------------------------------------------------------------- alignment


def test_stable_top_is_the_head_of_the_stable_order():
    from hir_edge.dna.kmers import stable_top

    rng = np.random.default_rng(3)
    # many ties (scores on a coarse grid), the cut falling inside a run of equal scores
    for scores in (rng.integers(0, 5, 200).astype(np.float32), rng.random(50), np.ones(7)):
        full = np.argsort(-scores, kind="stable")
        for count in (0, 1, 3, 17, len(scores), len(scores) + 5):
            np.testing.assert_array_equal(stable_top(scores, count), full[:count])
    assert stable_top(np.array([0.2, 0.9, 0.9, 0.1]), 2).tolist() == [1, 2]


def test_identity_by_hand():
    index = AlignmentIndex([REF], prefilter=None)
    queries = [
        REF,
        _mutate(REF, [5]),  # one substitution: 1 - 1/40
        _mutate(REF, [5, 20, 33, 38]),  # four substitutions: 1 - 4/40
        REF[:12] + REF[13:],  # one deletion: 1 - 1/39
        REF[:12] + "G" + REF[12:],  # one insertion: 1 - 1/41
    ]
    _, identity = index.best_hits(queries)
    assert identity == pytest.approx([1.0, 0.975, 0.9, 1 - 1 / 39, 1 - 1 / 41])


def test_n_in_the_query_matches_any_base():
    index = AlignmentIndex([REF], prefilter=None)
    masked = REF[:3] + "N" + REF[4:10] + "NN" + REF[12:]
    wrong = _mutate(REF, [3, 10, 11])
    _, identity = index.best_hits([masked, wrong, masked.lower()])
    assert identity == pytest.approx([1.0, 1 - 3 / 40, 1.0])


def test_n_in_a_reference_is_no_free_match():
    # A reference that is all N must not swallow a fragment at 100% identity: each of the
    # fragment's 20 called bases is a mismatch there (1 - 20/20), while the real reference
    # with one substitution in the window scores 1 - 1/20.
    index = AlignmentIndex(["N" * 40, _mutate(REF, [15])], prefilter=None)
    best, identity = index.best_hits([REF[10:30], "NNNN"])
    assert best.tolist() == [1, 0] and identity == pytest.approx([0.95, 1.0])
    assert index.identities("ACGTACGTACGTACGTACGT", np.array([0]))[0] == pytest.approx(0.0)


def test_infix_versus_global_on_a_partial_read():
    fragment = REF[10:30]
    hw = AlignmentIndex([REF], prefilter=None, mode="HW")
    nw = AlignmentIndex([REF], prefilter=None, mode="NW")
    # HW: the 20-bp read lies inside the reference, its unaligned ends are free.
    assert hw.best_hits([fragment])[1] == pytest.approx([1.0])
    # NW: the 20 reference bases outside the read are 20 edits: 1 - 20/20.
    assert nw.best_hits([fragment])[1] == pytest.approx([0.0])
    # HW the other way round: a read longer than its reference pays for the overhang.
    short_ref = AlignmentIndex([fragment], prefilter=None, mode="HW")
    assert short_ref.best_hits([REF])[1] == pytest.approx([0.5])


def _species_world(seed: int = 0, n_species: int = 8, per_species: int = 5, length: int = 300):
    """References of ``n_species`` random ancestors (2 substitutions per copy) and one query of
    each: a 240-bp window of a copy with 3 substitutions, so at most 5 edits from any copy
    of its own species (identity >= 1 - 5/240 = 97.9%)."""
    rng = np.random.default_rng(seed)
    refs, labels, queries, truth = [], [], [], []
    for s in range(n_species):
        base = _random_seq(rng, length)
        for _ in range(per_species):
            refs.append(_mutate(base, rng.choice(length, 2, replace=False).tolist()))
            labels.append([s // 4, s // 2, s, s])
        queries.append(_mutate(base, rng.choice(length, 3, replace=False).tolist())[20:260])
        truth.append([s // 4, s // 2, s, s])
    return refs, np.array(labels), queries, np.array(truth)


def test_prefilter_equals_exhaustive_on_a_small_library():
    refs, labels, queries, truth = _species_world()
    fast = AlignmentIndex(refs, prefilter=3)
    exact = AlignmentIndex(refs, prefilter=None)
    fast_idx, fast_id = fast.best_hits(queries)
    exact_idx, exact_id = exact.best_hits(queries)
    assert fast_idx.tolist() == exact_idx.tolist()
    assert fast_id == pytest.approx(exact_id)
    pred = alignment_predict(queries, fast, labels)
    assert (pred.labels == truth).all()
    assert pred.best_index.tolist() == fast_idx.tolist()
    assert pred.best_score == pytest.approx(fast_id)
    assert (pred.best_score >= 1 - 5 / 240).all()
    # A read of a species absent from the library: no hit near the 97% species convention.
    absent = alignment_predict([_random_seq(np.random.default_rng(9), 240)], fast, labels)
    assert absent.best_score[0] < 0.8
    assert pred.novel().tolist() == [False] * 8 and absent.novel().tolist() == [True]


def test_alignment_ranks_distinct_taxa():
    refs, labels, queries, _ = _species_world()
    pred = alignment_predict(queries[:1], AlignmentIndex(refs, prefilter=None), labels, top=5)
    # Five references of species 0 come first; the list holds each taxon once.
    assert pred.ranked[0, 3, 0] == 0
    assert sorted(pred.ranked[0, 3].tolist()) == sorted(set(pred.ranked[0, 3].tolist()))
    assert len(set(pred.ranked[0, 3].tolist())) == 5
    # Only two orders exist: the rest of the order list is padding.
    assert pred.ranked[0, 0].tolist() == [0, 1, -1, -1, -1]


# ----------------------------------------------------------------------------- kNN


def test_knn_takes_the_nearest_reference_labelled_at_each_rank():
    rng = np.random.default_rng(1)
    a, b = _random_seq(rng, 200), _random_seq(rng, 200)
    refs = [a, _mutate(a, [50]), _mutate(a, [50, 100]), _mutate(a, [50, 100, 150]), b]
    labels = np.array(
        [
            [0, 0, 0, -1],  # the nearest, but not identified to species
            [0, 0, 0, 1],
            [0, 0, 0, 2],
            [0, 0, 0, 2],
            [1, 1, 1, 3],
        ]
    )
    assert kmer_knn([a, b], KmerIndex(refs), labels).tolist() == [[0, 0, 0, 1], [1, 1, 1, 3]]
    # Three nearest labelled at species: 1, 2, 2 -> the vote picks 2, and it leads the list.
    voted = kmer_predict([a], KmerIndex(refs), labels, k_neighbours=3, top=3)
    assert voted.labels.tolist() == [[0, 0, 0, 2]]
    assert voted.ranked[0, 3].tolist() == [2, 1, 3]
    # The alignment baseline follows the same rule on identities.
    aligned = alignment_predict([a], AlignmentIndex(refs, prefilter=None), labels)
    assert aligned.labels.tolist() == [[0, 0, 0, 1]]
    assert aligned.best_index.tolist() == [0]


# ----------------------------------------------------------------------------- accuracy


def test_per_rank_accuracy_and_global_by_hand():
    truth = np.array([[0, 0, 0, 0], [0, 0, 1, -1], [1, 1, -1, -1], [-1, -1, -1, -1]])
    pred = np.array([[0, 0, 0, 1], [0, 0, 1, 5], [1, 2, 0, 0], [0, 0, 0, 0]])
    acc = per_rank_accuracy(pred, truth)
    # order: 3/3; family: 2/3; genus: 2/2; species: 0/1; global: only specimen 1 of 3.
    assert acc == pytest.approx(
        {"order": 100.0, "family": 200 / 3, "genus": 100.0, "species": 0.0, "global": 100 / 3}
    )
    ranked = np.stack([pred, np.array([[0, 0, 0, 0]] * 4)], axis=2)
    top = topk_accuracy(ranked, truth, ks=(1, 2))
    assert top.per_rank["species"] == {1: 0.0, 2: 100.0}
    assert top.per_rank["global"] == pytest.approx({1: 100 / 3, 2: 200 / 3})
    assert top.counts == {"order": 3, "family": 3, "genus": 2, "species": 1, "global": 3}


def test_per_species_split_keeps_every_species_in_the_library():
    species = ["a"] * 10 + ["b"] * 3 + ["c"]
    train, test = per_species_split(species, 0.3, seed=0)
    assert sorted(train.tolist() + test.tolist()) == list(range(14))
    assert [species[i] for i in test].count("a") == 3
    assert [species[i] for i in test].count("b") == 1
    assert "c" not in [species[i] for i in test]  # a lone record stays a reference
    assert per_species_split(species, 0.3, seed=0)[1].tolist() == test.tolist()


# ----------------------------------------------------------------------------- errors


def test_errors_name_the_problem():
    with pytest.raises(
        ValueError, match=r"^no reference sequences: the reference library is empty$"
    ):
        KmerIndex([])
    with pytest.raises(
        ValueError,
        match=r"^reference 1: invalid characters 'X' \(first at position 5\), '1' \(first at "
        r"position 6\); expected DNA",
    ):
        AlignmentIndex(["ACGT", "ACGTX1"])
    index = KmerIndex([REF])
    with pytest.raises(ValueError, match=r"^query 1: has no sequence$"):
        index.query([REF, ""], top=1)
    with pytest.raises(ValueError, match=r"^query 0: looks like a protein sequence"):
        kmer_knn(["MKLEFPQWLLEF"], index, np.zeros((1, 4), dtype=int))
    with pytest.raises(ValueError, match="must be a list of sequences, not one string"):
        KmerIndex(REF)
    with pytest.raises(ValueError, match=r"ref_labels must be \[references, ranks\] = \[1, L\]"):
        kmer_knn([REF], index, np.zeros((2, 4), dtype=int))
    with pytest.raises(ValueError, match="unknown alignment mode 'SW'"):
        AlignmentIndex([REF], mode="SW")
    with pytest.raises(ValueError, match="prefilter must be an integer >= 1 or None, got 0"):
        AlignmentIndex([REF], prefilter=0)
    with pytest.raises(ValueError, match=r"k must be an integer in 1\.\.8, got 9"):
        KmerIndex([REF], k=9)


def test_missing_edlib_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "edlib", None)  # makes `import edlib` fail
    with pytest.raises(ImportError, match=r"pip install 'hir-edge\[baselines\]'"):
        AlignmentIndex([REF])
    assert "hir-edge[baselines]" in INSTALL_HINT
    KmerIndex([REF])  # the k-mer baseline does not need it


# ----------------------------------------------------------------------------- real data


@pytest.mark.realdata
def test_best_hit_on_real_barcodes(bold_100sp):
    with bold_100sp.open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    train, test = per_species_split([r["species_name"] for r in rows], 0.3, seed=0)
    assert (len(train), len(test)) == (3500, 1500)
    taxonomy = Taxonomy.from_records(rows[i] for i in train)
    ref_labels = taxonomy.encode_many(lineage_of(rows[i]) for i in train)
    truth = taxonomy.encode_many(lineage_of(rows[i]) for i in test)
    refs = [rows[i]["nucleotides"] for i in train]
    queries = [rows[i]["nucleotides"] for i in test]

    index = AlignmentIndex(refs, prefilter=50)
    pred = alignment_predict(queries, index, ref_labels)
    acc = per_rank_accuracy(pred.labels, truth)
    # Measured 100.0% at every rank (seed 0): held-out barcodes of a library's own species.
    assert acc["species"] >= 99.0 and acc["global"] >= 99.0
    assert per_rank_accuracy(kmer_knn(queries, index.kmers, ref_labels), truth)["species"] >= 99.0
    # Identity is the novelty signal: 97.1% of known-species reads clear the 97% convention.
    assert (pred.best_score >= SPECIES_IDENTITY).mean() >= 0.96

    # The prefilter against all 3,500 references, on 12 queries spread over the test set (one
    # has no hit above 87.5%). benchmarks/dna_baselines.py measures the agreement on more.
    sample = [queries[i] for i in range(0, len(queries), 125)]
    fast_idx, fast_id = index.best_hits(sample)
    exact_idx, exact_id = AlignmentIndex(refs, prefilter=None).best_hits(sample)
    assert fast_idx.tolist() == exact_idx.tolist()
    assert fast_id == pytest.approx(exact_id)
