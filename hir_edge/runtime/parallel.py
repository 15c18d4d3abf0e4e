"""Whole batches identified in worker processes, so every core works on every step.

Aligning reads in worker processes while this process runs the encoders left the cores idle
whenever this process worked alone (ranking candidates, scoring, placing, formatting the
answers). Here each worker opens the bundle itself and identifies whole batches, one ONNX
Runtime thread each; this process reads the input, hands batches out in order and takes the
answers back in input order, a few batches ahead of the writer, so memory stays flat however
long the input. A batch gets the same answers in a worker as in this process: the same code
on the same bundle (benchmarks/dna_speed.py measures both).

Only for ONNX Runtime on the CPU: a GPU serves one process better than several.
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hir_edge.errors import HirEdgeError
from hir_edge.runtime.answer import Identification
from hir_edge.runtime.schema import Specimen

_WORKER = None  # this worker process's Identifier
SINGLE_THREADED = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass(frozen=True)
class WorkerSettings:
    """What a worker needs to open the bundle and answer as this process would; the
    answering options are :class:`~hir_edge.runtime.identifier.Identifier`'s."""

    bundle: Path
    precision: str = "int8"
    trusted_key: str | None = None
    top_k: int = 3
    min_confidence: float | None = None
    max_rank: str | None = None
    novel_divergence: float | None = None
    # which of the bundle's references to keep (None: all); a benchmark asks with part of the
    # library, as identify_bold.py does, so that no held-out read finds itself
    keep_references: tuple[bool, ...] | None = None
    index_cache: Path | None = None  # where the library's k-mer index is kept between runs

    def identifier(self, bundle, backend):
        """The Identifier that answers with these options: the workers' and the command's own."""
        from hir_edge.runtime.identifier import Identifier

        return Identifier(
            bundle,
            backend,
            self.top_k,
            self.min_confidence,
            self.max_rank,
            novel_divergence=self.novel_divergence,
            index_cache=self.index_cache,
        )


def _start(settings: WorkerSettings, parent: int) -> None:
    # Ctrl-C reaches the whole process group: the command stops the workers itself (the run
    # keeps its finished rows), so a worker must not die mid-batch printing a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _open(settings, parent)
    except Exception as exc:  # one line, then the command reports the broken pool
        print(f"hir-edge worker: {exc}", file=sys.stderr, flush=True)
        os._exit(1)


def _open(settings: WorkerSettings, parent: int) -> None:
    from hir_edge.dna.align import _exit_with_parent
    from hir_edge.runtime.backends import OnnxRuntimeBackend
    from hir_edge.runtime.bundle import open_bundle

    global _WORKER
    _exit_with_parent(parent)
    bundle = open_bundle(settings.bundle, trusted_key=settings.trusted_key)
    if settings.keep_references is not None:
        import numpy as np

        bundle.references = bundle.references.subset(np.array(settings.keep_references))
    backend = OnnxRuntimeBackend(bundle, settings.precision, device="cpu", threads=1)
    _WORKER = settings.identifier(bundle, backend)


def _identify(batch: list[Specimen]) -> list[Identification]:
    assert _WORKER is not None
    return _WORKER.identify(batch)


class BatchPool:
    """Worker processes identifying whole batches, answers in input order.

    Args:
        settings: how each worker opens the bundle and answers.
        workers: processes.
        ahead: batches in flight per worker (enough to keep it busy while answers are written).
    """

    def __init__(self, settings: WorkerSettings, workers: int, ahead: int = 2):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.workers = workers
        self.ahead = ahead
        # One BLAS thread per worker: the workers already fill the cores, and OpenBLAS threads
        # spinning between small matrix products only burn CPU the other worker needs. A
        # spawned worker reads these when it loads numpy, before any code of ours.
        self._environ = {key: os.environ.get(key) for key in SINGLE_THREADED}
        os.environ.update(SINGLE_THREADED)
        # spawn, not fork: ONNX Runtime's thread pools do not survive a fork
        self._pool = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start,
            initargs=(settings, os.getpid()),
        )

    def map(self, batches: Iterable[list[Specimen]]) -> Iterator[list[Identification]]:
        """Each batch's answers, in the order the batches come.

        Raises:
            HirEdgeError: a worker process died (killed, out of memory, or unable to open the
                bundle): one line, not the pool's traceback; the rows written so far stay.
        """
        from concurrent.futures.process import BrokenProcessPool

        pending: deque = deque()
        try:
            for batch in batches:
                pending.append(self._pool.submit(_identify, batch))
                if len(pending) >= self.workers * self.ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BrokenProcessPool:
            raise HirEdgeError(
                "a worker process stopped unexpectedly (killed, out of memory, or unable to "
                "open the bundle); rerun with --workers 1, or fewer workers"
            ) from None

    def close(self) -> None:
        """Stop the workers; batches not started are dropped (an interrupted run)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        for key, value in self._environ.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def first_then_rest(batches: Iterable[list]) -> tuple[list[list], Iterator]:
    """The first two batches (fewer: that is all there is) and an iterator over the rest: a
    run of one batch needs no worker processes."""
    iterator = iter(batches)
    return list(itertools.islice(iterator, 2)), iterator


__all__ = ["BatchPool", "WorkerSettings", "first_then_rest"]
