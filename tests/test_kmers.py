"""K-mer counts and the exact integer cosine search (hir_edge.dna.kmers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hir_edge.dna import kmers
from hir_edge.dna.kmers import KmerIndex, cached_counts, index_key, kmer_counts
from tests.conftest import counting_only_spot_checks


def _random_seq(rng: np.random.Generator, n: int) -> str:
    return "".join(rng.choice(list("ACGT"), size=n))


def test_kmer_count_columns_and_n_skipping():
    counts = kmer_counts(["AAAAAAA", "ACGTAC", "AAANAAAAAA", "ACGNN"], 6)
    assert counts.shape == (4, 4096) and counts.dtype == np.int32
    # AAAAAA twice -> column 0 holds 2.
    assert counts[0, 0] == 2 and np.count_nonzero(counts[0]) == 1
    # ACGTAC = 0·4^5 + 1·4^4 + 2·4^3 + 3·4^2 + 0·4 + 1 = 433.
    assert counts[1, 433] == 1 and np.count_nonzero(counts[1]) == 1
    # Four of the five 6-mers hold the N: only the last one (AAAAAA) counts.
    assert counts[2, 0] == 1 and np.count_nonzero(counts[2]) == 1
    # Shorter than k once the N are skipped: a zero row.
    assert not counts[3].any()


def test_kmer_counts_of_a_batch_are_each_sequences_own():
    """Counted in joined chunks (300 sequences span five): row i is sequence i's count alone."""
    rng = np.random.default_rng(5)
    seqs = ["".join(rng.choice(list("ACGTN"), int(n))) for n in rng.integers(0, 60, 300)]
    batch = kmer_counts(seqs, 6)  # 64 sequences a chunk at k=6
    for i, seq in enumerate(seqs):
        expected = np.zeros(4096, dtype=np.int32)
        for j in range(len(seq) - 5):
            if "N" not in seq[j : j + 6]:
                expected[
                    sum("ACGT".index(b) * 4 ** (5 - p) for p, b in enumerate(seq[j : j + 6]))
                ] += 1
        np.testing.assert_array_equal(batch[i], expected)


def test_kmer_dot_model_is_the_one_node_integer_product():
    """The shipped bytes are this model (the runtime builds no graph and needs no onnx)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from hir_edge.dna.kmers import _KMER_DOT_ONNX

    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["reads", "references"], ["shared"])],
        "kmer_dot",
        [
            helper.make_tensor_value_info("reads", TensorProto.UINT8, ["n", "kmers"]),
            helper.make_tensor_value_info("references", TensorProto.INT8, ["kmers", "m"]),
        ],
        [helper.make_tensor_value_info("shared", TensorProto.INT32, ["n", "m"])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 10)], producer_name="hir-edge"
    )
    model.ir_version = 5
    onnx.checker.check_model(model)
    assert model.SerializeToString() == _KMER_DOT_ONNX


def test_kmer_cosine_is_exact_on_every_path():
    """The integer product (reference counts up to 127, read counts up to the saturation-safe
    limit), a read past the limit (exact int64 over its own k-mers) and a float64 library (a
    140-base poly-A reference holds AAAAAA 135 times) all give the cosine of the exact counts:
    a 300-base poly-A read holds AAAAAA 295 times, a 206-base one 201 times (under 255, over
    the limit 32,767 // (2 * 100) = 163 of a library whose largest count is 100)."""
    rng = np.random.default_rng(8)
    refs = [_random_seq(rng, 300) for _ in range(5)]
    reads = [refs[1][10:250], _random_seq(rng, 200), "A" * 300, "A" * 206, "ACG"]

    def exact(index_refs):
        q = kmer_counts(reads, 6, np.int64).astype(float)
        r = kmer_counts(index_refs, 6, np.int64).astype(float)
        norms = np.outer(np.linalg.norm(q, axis=1), np.linalg.norm(r, axis=1))
        return np.divide(q @ r.T, norms, out=np.zeros_like(norms), where=norms > 0)

    for extra, dtype, limit in (
        ([], np.int8, 255),
        (["A" * 105], np.int8, 163),
        (["A" * 140], np.float64, None),  # no integer product: no limit applies
    ):
        index = KmerIndex([*refs, *extra])
        assert index._counts.dtype == dtype
        assert limit is None or index._read_limit == limit
        _, scores = next(index._score_chunks(reads))
        np.testing.assert_allclose(scores, exact([*refs, *extra]), rtol=1e-12, atol=0)
        assert not scores[4].any()  # shorter than k: cosine 0 to all
    with pytest.raises(OverflowError, match="a k-mer occurs more than 127 times in one sequence"):
        kmer_counts(["A" * 140], 6, np.int8)


def test_kmer_index_pickles_without_its_session():
    import pickle

    index = KmerIndex(["ACGTACGTAAACCC", "TTTTGGGGCCCCAAA"])
    before = index.query(["ACGTACGTAAAC"], 2)
    assert index._session is not None
    copy = pickle.loads(pickle.dumps(index))
    assert copy._session is None
    after = copy.query(["ACGTACGTAAAC"], 2)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])


def test_kmer_counts_transposed_are_the_transpose():
    rng = np.random.default_rng(9)
    seqs = ["".join(rng.choice(list("ACGTN"), int(n))) for n in rng.integers(0, 80, 300)]
    np.testing.assert_array_equal(
        kmer_counts(seqs, 6, np.int16, transposed=True), kmer_counts(seqs, 6, np.int16).T
    )


def test_kept_index_reads_back_the_counts_it_was_built_from(tmp_path, monkeypatch):
    rng = np.random.default_rng(9)
    refs = [_random_seq(rng, int(n)) for n in rng.integers(100, 400, 40)]
    built = KmerIndex(refs, 5, cache_dir=tmp_path)
    counted = KmerIndex(refs, 5)  # no cache
    (kept,) = tmp_path.iterdir()
    assert kept.name == f"kmer-index-{index_key(refs, 5)}.npz"

    monkeypatch.setattr(
        kmers, "reference_counts", counting_only_spot_checks(kmers.reference_counts)
    )
    again = KmerIndex(refs, 5, cache_dir=tmp_path)
    np.testing.assert_array_equal(again._counts, built._counts)
    np.testing.assert_array_equal(again._norms, built._norms)
    queries = [_random_seq(rng, 200) for _ in range(5)] + refs[:3]
    for got, want in zip(again.query(queries, 4), counted.query(queries, 4)):
        np.testing.assert_array_equal(got, want)


def test_another_library_order_or_k_is_another_index():
    refs = ["ACGTACGTAC", "TTTTGGGGCC"]
    key = index_key(refs, 6)
    assert key != index_key(refs[::-1], 6)
    assert key != index_key(refs, 5)
    assert key != index_key([refs[0], refs[1] + "A"], 6)


def test_a_damaged_kept_index_is_counted_again_and_replaced(tmp_path):
    rng = np.random.default_rng(3)
    refs = [_random_seq(rng, 300) for _ in range(20)]
    want_counts, want_norms = kmers.reference_counts(refs, 6)
    cached_counts(refs, 6, tmp_path)
    (kept,) = tmp_path.iterdir()
    data = kept.read_bytes()
    middle = len(data) // 2  # inside the counts: the member's CRC no longer matches
    # the first member's compression method in the zip's directory: NotImplementedError
    method = data.index(b"PK\x01\x02") + 10
    damaged = [
        data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :],
        data[:method] + bytes([99]) + data[method + 1 :],
        data[:100],  # cut short
    ]
    for bad in damaged:
        kept.write_bytes(bad)
        counts, norms = cached_counts(refs, 6, tmp_path)
        np.testing.assert_array_equal(counts, want_counts)
        np.testing.assert_array_equal(norms, want_norms)
        assert kept.read_bytes() == data  # written whole again
    assert [p.name for p in tmp_path.iterdir()] == [kept.name]  # no temporary left behind


def test_kept_counts_that_are_not_these_references_are_counted_again(tmp_path):
    """A whole file of the right name and shape whose counts differ from a recount of the
    spot-checked references (another counting code, a hand-made file) is not trusted."""
    rng = np.random.default_rng(4)
    refs = [_random_seq(rng, 200) for _ in range(30)]
    want_counts, want_norms = kmers.reference_counts(refs, 5)
    wrong = want_counts.copy()
    wrong[:, 0] = np.roll(wrong[:, 0], 1)  # reference 0 is always spot-checked
    path = tmp_path / f"kmer-index-{index_key(refs, 5)}.npz"
    np.savez(path, counts=wrong, norms=want_norms, key=np.array(index_key(refs, 5)))
    np.testing.assert_array_equal(cached_counts(refs, 5, tmp_path)[0], want_counts)
    with np.load(path) as kept:  # and replaced
        np.testing.assert_array_equal(kept["counts"], want_counts)


def test_a_link_in_the_cache_folder_is_neither_read_nor_written_through(tmp_path):
    refs = ["ACGTACGTACGTAAAC", "GGGGCCCCAAAATTTG"]
    victim = tmp_path / "someone-elses-file"
    victim.write_text("keep me")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / f"kmer-index-{index_key(refs, 6)}.npz").symlink_to(victim)
    counts, _ = cached_counts(refs, 6, cache)
    np.testing.assert_array_equal(counts, kmer_counts(refs, 6, np.int8, transposed=True))
    assert victim.read_text() == "keep me"


def test_cache_folder_setting():
    from hir_edge.io import cache_folder

    assert cache_folder("off") is None and cache_folder(" OFF ") is None
    assert cache_folder("/data/idx") == Path("/data/idx")
    assert cache_folder("") == cache_folder(None)  # click reads an empty variable as unset
    assert cache_folder(None).name == "hir-edge"


def test_an_unwritable_cache_folder_costs_the_cache_not_the_run(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would go")
    counts, _ = cached_counts(["ACGTACGTACGTAAA", "GGGGCCCCAAAATTT"], 6, blocker / "cache")
    np.testing.assert_array_equal(
        counts, kmer_counts(["ACGTACGTACGTAAA", "GGGGCCCCAAAATTT"], 6, np.int8, transposed=True)
    )


def test_a_cache_folder_keeps_the_most_recently_used_indexes(tmp_path, monkeypatch):
    import os

    monkeypatch.setattr(kmers, "KEPT_INDEXES", 3)
    libraries = [[f"ACGTACGTAC{'A' * n}GGT"] for n in range(5)]
    for when, refs in enumerate(libraries[:3]):
        cached_counts(refs, 4, tmp_path)
        path = tmp_path / f"kmer-index-{index_key(refs, 4)}.npz"
        os.utime(path, (1000 + when, 1000 + when))  # used in this order
    cached_counts(libraries[0], 4, tmp_path)  # read back: now the most recent
    cached_counts(libraries[3], 4, tmp_path)  # a fourth: the least recently used goes
    names = {p.name for p in tmp_path.iterdir()}
    expected = {f"kmer-index-{index_key(libraries[i], 4)}.npz" for i in (0, 2, 3)}
    assert names == expected
