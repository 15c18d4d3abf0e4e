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
    if tensorrt_available() and bundle.manifest.get("engines"):
        precision = bundle.manifest["model"].get("default_precision", "fp32")
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
    size = bundle.manifest["preprocess"]["image_size"]
    tok = tokenizer_from_dict(bundle.manifest["dna_tokenizer"], root=bundle.root)
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
