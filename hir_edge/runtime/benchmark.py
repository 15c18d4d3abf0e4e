"""Timing a bundle's graphs on this machine, with synthetic inputs of the right shapes."""

from __future__ import annotations

import time

import numpy as np

from hir_edge.dna.tokens import tokenizer_from_dict
from hir_edge.runtime.backends import OnnxRuntimeBackend, TensorRTBackend, tensorrt_available
from hir_edge.runtime.bundle import Bundle


def _time(fn, repeat: int) -> float:
    """Median wall time of ``fn`` in ms, after one warm-up call."""
    fn()
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return float(np.median(runs)) * 1000.0


def _backends(bundle: Bundle) -> list:
    out = []
    for precision in ("int8", "fp32"):
        if bundle.graph_path("image", precision) is not None:
            out.append(OnnxRuntimeBackend(bundle, precision, device="cpu"))
    if tensorrt_available() and bundle.manifest.engines:
        precision = bundle.manifest.model.default_precision
        try:
            out.append(TensorRTBackend(bundle, precision))
        except Exception:  # engines for another device are not timed here
            return out
    return out


def _parts(backend, pixels, ids, mask, zi, zd) -> dict:
    """The timed calls, each bound to its own inputs."""
    return {
        "image": lambda: backend.embed_images(pixels),
        "dna": lambda: backend.embed_dna(ids, mask),
        "fusion": lambda: backend.fuse(zi, zd),
        "specimen": lambda: backend.fuse(
            backend.embed_images(pixels), backend.embed_dna(ids, mask)
        ),
    }


def run_benchmark(
    bundle: Bundle, batches: list[int], repeat: int = 20, backends: list | None = None
) -> list[dict]:
    """Median latency per backend, part (image, dna, fusion, specimen) and batch size.

    ``backends`` defaults to every backend the bundle can run here (ONNX Runtime INT8 and fp32,
    TensorRT when its engines match this device); a training checkpoint passes its torch one.
    """
    rng = np.random.default_rng(0)
    size = bundle.manifest.preprocess["image_size"]
    tok = tokenizer_from_dict(bundle.manifest.dna_tokenizer, root=bundle.root)
    rows = []
    for backend in backends if backends is not None else _backends(bundle):
        for batch in batches:
            pixels = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
            seqs = ["".join(rng.choice(list("ACGT"), 658)) for _ in range(batch)]
            ids, mask = tok.encode_batch(seqs)
            zi, zd = backend.embed_images(pixels), backend.embed_dna(ids, mask)
            for part, fn in _parts(backend, pixels, ids, mask, zi, zd).items():
                ms = _time(fn, repeat)
                rows.append(
                    {
                        "backend": backend.describe(),
                        "part": part,
                        "batch": batch,
                        "ms_per_batch": ms,
                        "ms_per_specimen": ms / batch,
                        "specimens_per_second": 1000.0 * batch / ms,
                    }
                )
    return rows


def read_sets(bundle: Bundle, n: int = 96, seed: int = 0) -> dict[str, list[str]]:
    """Reads made from the bundle's own reference barcodes: the read sets DNA speed depends
    on (a known read is answered from a close hit; a far one is aligned to more candidates)."""
    from hir_edge.degrade import degrade_dna_seeded, get_preset

    if bundle.references is None or bundle.references.barcodes is None:
        return {}
    barcodes = [b.decode() if isinstance(b, bytes) else str(b) for b in bundle.references.barcodes]
    barcodes = [b for b in barcodes if len(b) >= 300]
    rng = np.random.default_rng(seed)
    picked = [barcodes[i] for i in rng.choice(len(barcodes), min(n, len(barcodes)), False)]
    paper = get_preset("paper").dna
    return {
        "known": picked,
        "paper": [degrade_dna_seeded(b, paper, seed, i) for i, b in enumerate(picked)],
        "150 bp": [b[100:250] for b in picked],
        "unrelated": ["".join(rng.permutation(list(b))) for b in picked],  # no relative
    }


def run_read_benchmark(bundle: Bundle, backend, batch: int = 32, workers: int = 1) -> list[dict]:
    """Reads per second of the whole identification (embedding, alignment, answer) by read
    set, as ``identify`` runs it: with ``workers`` > 1, in worker processes that identify whole
    batches (runtime/parallel.py), else in this process."""
    from hir_edge.dna.qc import clean_read
    from hir_edge.runtime.identifier import Identifier
    from hir_edge.runtime.parallel import BatchPool, WorkerSettings
    from hir_edge.runtime.schema import Specimen

    rows = []
    identifier = Identifier(bundle, backend)
    pool = None
    if workers > 1:
        precision = getattr(backend, "precision", "int8")
        pool = BatchPool(WorkerSettings(bundle=bundle.root, precision=precision), workers)
    how = f", {workers} workers" if pool is not None else ""
    answer = pool.map if pool is not None else (lambda batches: map(identifier.identify, batches))
    try:
        for name, reads in read_sets(bundle).items():
            specimens = []
            for i, raw in enumerate(reads):
                seq, qc = clean_read(raw, orient=True)
                specimens.append(Specimen(f"{name}{i}", seq, qc))
            batches = [specimens[k : k + batch] for k in range(0, len(specimens), batch)]
            list(answer(batches[:1] * max(2, 2 * workers)))  # warm-up: workers, sessions
            start = time.perf_counter()
            list(answer(batches))
            seconds = time.perf_counter() - start
            rows.append(
                {
                    "backend": backend.describe() + how,
                    "part": f"reads: {name}",
                    "batch": batch,
                    "ms_per_batch": 1000.0 * seconds * batch / len(specimens),
                    "ms_per_specimen": 1000.0 * seconds / len(specimens),
                    "specimens_per_second": len(specimens) / seconds,
                }
            )
    finally:
        if pool is not None:
            pool.close()
        identifier.close()
    return rows
