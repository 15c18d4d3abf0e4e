"""``hir-edge bench``: latency and throughput of a bundle per backend and precision."""

from __future__ import annotations

import click

from hir_edge.cli.common import bundle_option, force_option, output_option


@click.command()
@click.argument("bundle_arg", required=False, type=click.Path(exists=True))
@bundle_option
@click.option(
    "--batch",
    "batches",
    multiple=True,
    type=int,
    default=(1, 32),
    show_default=True,
    help="Batch sizes to time (repeatable).",
)
@click.option(
    "--repeat", default=20, show_default=True, type=click.IntRange(min=1), help="Timed runs each."
)
@output_option(
    "Also write the results as JSON here.", required=False, dir_okay=False, as_path=False
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="Device of the torch backend when BUNDLE is a training model folder (RUN/best).",
)
@force_option()
def bench(bundle_arg, bundle, batches, repeat, output, device, force):
    """Time image, DNA, fusion and whole-specimen inference (ms per specimen, specimens/s), and
    whole DNA identification by read set (known, paper-degraded, 150 bp, unrelated).

    A bundle is timed on each backend it can run here; a training model folder (RUN/best) is
    timed in torch, on the GPU with --device cuda.
    """
    import json
    from pathlib import Path

    from hir_edge.io import atomic_write_text, ensure_writable
    from hir_edge.runtime.backends import is_training_checkpoint, open_for_inference
    from hir_edge.runtime.benchmark import run_benchmark, run_read_benchmark
    from hir_edge.runtime.bundle import default_bundle

    if output:
        ensure_writable(output, force)  # before the timing, not after
    path = Path(bundle_arg or bundle or default_bundle())
    if is_training_checkpoint(path):
        b, torch_backend = open_for_inference(path, device=device)
        rows = run_benchmark(b, list(batches), repeat, backends=[torch_backend])
    else:
        b, cpu_backend = open_for_inference(path, "auto", "int8", "cpu")
        rows = run_benchmark(b, list(batches), repeat)
        if b.has_part("dna") and b.references is not None:
            from hir_edge.dna.align import default_workers

            rows += run_read_benchmark(b, cpu_backend, workers=default_workers())
    header = ("backend", "part", "batch", "ms/batch", "ms/specimen", "specimens/s")
    click.echo("{:<44} {:<16} {:>5} {:>9} {:>12} {:>12}".format(*header))
    for r in rows:
        click.echo(
            f"{r['backend']:<44} {r['part']:<16} {r['batch']:>5} {r['ms_per_batch']:>9.2f} "
            f"{r['ms_per_specimen']:>12.3f} {r['specimens_per_second']:>12.1f}"
        )
    if output:
        atomic_write_text(output, json.dumps({"bundle": str(b.root), "rows": rows}, indent=1))
