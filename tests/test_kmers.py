"""K-mer counts and the exact integer cosine search (hir_edge.dna.kmers)."""

from __future__ import annotations

import numpy as np
import pytest

from hir_edge.dna.kmers import KmerIndex, kmer_counts


def _random_seq(rng: np.random.Generator, n: int) -> str:
    return "".join(rng.choice(list("ACGT"), size=n))


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
    """The integer product (counts up to 127 in a reference, 255 in a read) and the float
    fallback (a 140-base poly-A reference holds AAAAAA 135 times; a 300-base poly-A read 295
    times) give the cosine of the exact counts."""
    rng = np.random.default_rng(8)
    refs = [_random_seq(rng, 300) for _ in range(5)]
    reads = [refs[1][10:250], _random_seq(rng, 200), "A" * 300]

    def exact(index_refs):
        q = kmer_counts(reads, 6, np.int64).astype(float)
        r = kmer_counts(index_refs, 6, np.int64).astype(float)
        return (q @ r.T) / np.outer(np.linalg.norm(q, axis=1), np.linalg.norm(r, axis=1))

    for index_refs in (refs, [*refs, "A" * 140]):
        index = KmerIndex(index_refs)
        assert index._counts.dtype == (np.int8 if index_refs is refs else np.float32)
        _, scores = next(index._score_chunks(reads))
        np.testing.assert_allclose(scores, exact(index_refs), rtol=1e-12)
    with pytest.raises(OverflowError, match="a k-mer occurs more than 127 times in one sequence"):
        kmer_counts(["A" * 140], 6, np.int8)


def test_kmer_counts_transposed_are_the_transpose():
    rng = np.random.default_rng(9)
    seqs = ["".join(rng.choice(list("ACGTN"), int(n))) for n in rng.integers(0, 80, 300)]
    np.testing.assert_array_equal(
        kmer_counts(seqs, 6, np.int16, transposed=True), kmer_counts(seqs, 6, np.int16).T
    )
