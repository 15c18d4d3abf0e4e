"""The DNA graph's token axis: a short read runs without its padding, with the same embedding."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hir_edge.data.hdf5 import SpecimenStore
from hir_edge.runtime.backends import OnnxRuntimeBackend
from hir_edge.runtime.bundle import open_bundle
from hir_edge.runtime.identifier import Identifier

pytestmark = pytest.mark.slow


def _reads(tiny_world) -> list[str]:
    """Test barcodes whole and cut to 150 and 90 bases: three lengths, three buckets."""
    barcodes = SpecimenStore(tiny_world, "test").barcodes()[:6]
    return list(barcodes) + [b[:150] for b in barcodes] + [b[:90] for b in barcodes]


def test_the_dna_graph_records_its_token_multiple(tiny_bundle):
    graph = json.loads((tiny_bundle / "manifest.json").read_text())["graphs"]["dna"]
    assert graph["token_multiple"] == 4  # the tiny preset merges 4 tokens into one
    assert graph["inputs"]["input_ids"][1] % 4 == 0  # TensorRT's fixed length, a multiple


def test_cut_reads_embed_as_padded_ones(tiny_bundle, tiny_world):
    bundle = open_bundle(tiny_bundle)
    backend = OnnxRuntimeBackend(bundle, "int8", device="cpu")
    identifier = Identifier(bundle, backend)
    ids, mask = identifier.tokenizer.encode_batch(_reads(tiny_world))
    cut = backend.embed_dna(ids, mask)
    padded = backend._embed_dna_chunks(ids, mask)  # every read at the full 704 tokens
    cosine = (
        (cut * padded).sum(axis=1) / np.linalg.norm(cut, axis=1) / np.linalg.norm(padded, axis=1)
    )
    assert cosine.min() > 0.9999
    # each read ran at its own length rounded up to 64 tokens (16 merged): 90 bp -> 86 tokens
    # -> 128, 150 bp -> 146 -> 192, a whole barcode at the full 704 or below
    lengths = []
    run = backend._embed_dna_chunks

    def recording(ids_, mask_):
        lengths.append(ids_.shape[1])
        return run(ids_, mask_)

    backend._embed_dna_chunks = recording
    backend.embed_dna(ids, mask)
    assert lengths[:2] == [128, 192] and all(n % 64 == 0 or n == 704 for n in lengths)


def test_a_reads_embedding_does_not_depend_on_its_batch(tiny_bundle, tiny_world):
    bundle = open_bundle(tiny_bundle)
    backend = OnnxRuntimeBackend(bundle, "int8", device="cpu")
    identifier = Identifier(bundle, backend)
    reads = _reads(tiny_world)
    ids, mask = identifier.tokenizer.encode_batch(reads)
    together = backend.embed_dna(ids, mask)
    for i in (0, 7, 14):  # a whole read, a 150-bp one and a 90-bp one, alone and in pairs
        alone = backend.embed_dna(ids[i : i + 1], mask[i : i + 1])
        with_long = backend.embed_dna(ids[[i, 0]], mask[[i, 0]])
        assert np.array_equal(alone[0], together[i])
        assert np.array_equal(with_long[0], together[i])
