"""One ``identify`` run: open the bundle, pick a backend, stream specimens, write, summarise."""

from __future__ import annotations

import contextlib
import itertools
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from hir_edge import __version__
from hir_edge.dna.io import ReadReport
from hir_edge.errors import HirEdgeError, InputError
from hir_edge.io import cache_folder
from hir_edge.progress import progress_bar
from hir_edge.runtime.backends import open_for_inference
from hir_edge.runtime.bundle import version_note
from hir_edge.runtime.identifier import Identifier
from hir_edge.runtime.inputs import (
    Problems,
    batched,
    expand_images,
    specimens_from_files,
    specimens_from_manifest,
)
from hir_edge.runtime.parallel import BatchPool, WorkerSettings, first_then_rest
from hir_edge.runtime.report import Writer
from hir_edge.runtime.schema import Specimen


@dataclass
class IdentifyRun:
    """Everything ``hir-edge identify`` was asked to do, and what happened."""

    bundle: Path | None
    reads: str | None
    images: list[str]
    sheet: str | None
    backend: str = "auto"
    precision: str = "int8"
    device: str = "auto"
    top_k: int = 3
    min_confidence: float | None = None
    novel_divergence: float | None = None  # share, e.g. 0.02
    trusted_key: str | None = None  # an Ed25519 public key the bundle must be signed with
    max_rank: str | None = None
    batch_size: int = 32
    workers: int = 1
    cache: str | None = None  # a folder for the k-mer index, "off", or None: the user's cache
    quiet: bool = False
    stats: dict = field(default_factory=dict)

    def _say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr)

    def _open(self):
        from hir_edge.runtime.bundle import default_bundle

        path = Path(self.bundle) if self.bundle else default_bundle()
        return open_for_inference(
            path, self.backend, self.precision, self.device, self.trusted_key, self._say
        )

    def execute(self, stream: IO[str], fmt: str) -> int:
        """Identify everything; returns the exit status (0 all identified, 1 some skipped).

        The bundle (a .tar's temporary folder), the alignment workers and the output are
        closed by one ExitStack, whatever ends the run; an interrupted run still ends its
        output (a JSON array is closed)."""
        with contextlib.ExitStack() as stack:
            return self._execute(stream, fmt, stack)

    def _execute(self, stream: IO[str], fmt: str, stack: contextlib.ExitStack) -> int:
        start = time.perf_counter()
        bundle, backend = self._open()
        stack.callback(bundle.close)
        self.stats.update(
            bundle=str(bundle.root), bundle_name=bundle.name, backend=backend.describe(), format=fmt
        )
        self._say(f"bundle {bundle.name} ({bundle.root}); backend: {backend.describe()}")
        note = version_note(bundle.manifest)
        if note:
            self._say(note)
        if self.reads and not bundle.has_part("dna"):
            raise HirEdgeError(
                f"bundle {bundle.name} identifies photos only (its training data had no "
                "barcodes): give --image alone, or a bundle with a DNA branch"
            )
        # This process reads, checks and writes; whole batches go to worker processes that
        # answer with the same settings when there is more than one (runtime/parallel.py).
        settings = WorkerSettings(
            bundle=Path(bundle.root),
            precision=self.precision,
            trusted_key=self.trusted_key,
            top_k=self.top_k,
            min_confidence=self.min_confidence,
            max_rank=self.max_rank,
            novel_divergence=self.novel_divergence,
            index_cache=cache_folder(self.cache),
        )
        identifier = settings.identifier(bundle, backend)
        stack.callback(identifier.close)
        self.stats["novel_divergence_in_effect"] = identifier.scoring.novelty_divergence
        if identifier.synthetic_image_branch and self.images:
            self._say(
                "note: this bundle's image branch was trained on drawn photos (see its model card)"
            )
        orders = identifier.taxonomy.names(0)
        if len(orders) == 1 and self.images:  # a photo of another insect can still pass as one
            self._say(
                f"note: this bundle knows one order, {orders[0]}: a photo of another insect "
                f"that resembles its photos is answered as {orders[0]}"
            )
        problems, report = Problems(), ReadReport()
        images = expand_images(self.images)
        if self.sheet:
            specimens = specimens_from_manifest(
                Path(self.sheet),
                Path(self.reads) if self.reads else None,
                problems,
                report,
                identifier.decode_photo,
            )
        else:
            specimens = specimens_from_files(
                Path(self.reads) if self.reads else None,
                images,
                problems,
                report,
                identifier.decode_photo,
            )
        writer = Writer(stream, fmt, self.top_k)
        stack.callback(writer.close)
        counts = {"paired": 0, "dna": 0, "image": 0, "none": 0}
        bar = progress_bar(None, desc="identify", unit="specimen", quiet=self.quiet)
        stack.callback(bar.close)
        identified = 0
        seen = [0, 0]

        def checked():
            for batch in batched(specimens, self.batch_size):
                batch = _with_evidence(batch, identifier, problems)
                self._report(problems, report, seen)
                yield batch

        try:
            head, rest = first_then_rest(checked())
            pool = self._pool(settings, backend) if len(head) > 1 else None
            if pool is not None:
                stack.callback(pool.close)
                answers = pool.map(itertools.chain(head, rest))
            else:
                answers = (identifier.identify(batch) for batch in itertools.chain(head, rest))
            for results in answers:
                writer.write(results)
                for r in results:
                    key = (
                        "paired"
                        if len(r.modalities) == 2
                        else (r.modalities[0] if r.modalities else "none")
                    )
                    counts[key] += 1
                identified += len(results)
                bar.update(len(results))
        except KeyboardInterrupt:
            self._say(f"interrupted after {identified} specimens")
            raise
        self._report(problems, report, seen)
        seconds = time.perf_counter() - start
        skipped = len(problems) + report.n_skipped
        self.stats.update(
            identified=identified,
            skipped=skipped,
            counts=counts,
            seconds=round(seconds, 3),
            specimens_per_second=round(identified / seconds, 2) if seconds else None,
        )
        self._say(
            f"identified {identified} specimens ({counts['paired']} paired, "
            f"{counts['dna']} read only, {counts['image']} photo only) in {seconds:.1f}s "
            f"({identified / max(seconds, 1e-9):.1f}/s); {skipped} skipped"
        )
        return 1 if skipped else 0

    def _pool(self, settings: WorkerSettings, backend) -> BatchPool | None:
        """Worker processes for whole batches: with ``workers`` > 1, for a bundle run by ONNX
        Runtime on the CPU (None otherwise)."""
        from hir_edge.runtime.backends import OnnxRuntimeBackend

        if self.workers < 2 or not isinstance(backend, OnnxRuntimeBackend):
            return None
        if backend.providers != ["CPUExecutionProvider"]:
            return None
        return BatchPool(settings, self.workers)

    def _report(self, problems: Problems, report: ReadReport, seen: list[int]) -> None:
        """Print the skipped inputs not printed yet (``seen`` counts per list, updated here)."""
        for k, errors in enumerate((report.errors, problems.errors)):
            for err in errors[seen[k] :]:
                print(f"skipped: {err}", file=sys.stderr)
            seen[k] = len(errors)

    def write_log(self, path: str, force: bool) -> None:
        """A JSON record of the run: version, command line, bundle, backend, counts, times."""
        from hir_edge.io import atomic_write_text, ensure_writable

        ensure_writable(path, force)
        record = {
            "hir_edge_version": __version__,
            "command": sys.argv,
            **self.stats,
            "settings": {
                "top_k": self.top_k,
                "min_confidence": self.min_confidence,
                "novel_divergence": self.novel_divergence,
                "max_rank": self.max_rank,
                "precision": self.precision,
            },
        }
        atomic_write_text(path, json.dumps(record, indent=1))


def _with_evidence(batch: list[Specimen], identifier: Identifier, problems: Problems) -> list:
    """The specimens of ``batch`` that carry evidence; a read-only specimen whose read is
    unusable is skipped as a bad record (one with a photo is identified from the photo)."""
    kept = []
    for specimen in batch:
        why = identifier.unusable_read(specimen.sequence)
        if why and specimen.image is None:
            problems.add(InputError(specimen.source, why, record=specimen.id, line=specimen.line))
        else:
            kept.append(specimen)
    return kept
