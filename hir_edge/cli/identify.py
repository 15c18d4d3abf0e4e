"""``hir-edge identify``: the field command. Parses options only; the work is in
:mod:`hir_edge.runtime` (which never imports torch)."""

from __future__ import annotations

import click

from hir_edge.cli.common import (
    bundle_option,
    force_option,
    open_output,
    output_option,
    quiet_option,
)


def _default_workers() -> int:
    from hir_edge.dna.align import default_workers  # numpy + Biopython: only when asked

    return default_workers()


@click.command()
@click.option(
    "--fasta",
    "reads",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
    default=None,
    help="Reads: FASTA or FASTQ (plain or .gz), or a BOLD/BIOSCAN TSV/CSV export; - reads "
    "standard input.",
)
@click.option(
    "--image",
    "images",
    multiple=True,
    type=click.Path(),
    help="A photo or a folder of photos (repeatable). Paired with reads by file stem.",
)
@click.option(
    "--manifest",
    "sheet",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="CSV/TSV sheet: specimen_id with sequence_id, sequence and/or image.",
)
@bundle_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "tsv", "csv", "json", "jsonl"]),
    default=None,
    help="Output format [default: table on a terminal, tsv when piped].",
)
@output_option(
    "Write results here instead of stdout (atomically).",
    required=False,
    dir_okay=False,
    as_path=False,
)
@click.option(
    "--top-k", default=3, show_default=True, type=click.IntRange(min=1), help="Taxa per rank."
)
@click.option(
    "--min-confidence",
    type=click.FloatRange(0, 1, min_open=True),
    default=None,
    help="One confidence threshold for every rank [default: the bundle's fitted ones].",
)
@click.option(
    "--novel-above",
    "novel_above",
    type=click.FloatRange(0, 30, min_open=True),
    default=None,
    metavar="PERCENT",
    help="Flag a read as of a species absent from the references when its estimated "
    "divergence from the best hit exceeds this [default: the bundle's, 2]. Higher names more "
    "deep lineages of known species and more absent species wrongly "
    "(benchmarks/results/novelty_rules.md).",
)
@click.option(
    "--rank",
    "max_rank",
    type=click.Choice(["order", "family", "genus", "species"]),
    default=None,
    help="Never assign deeper than this rank.",
)
@click.option(
    "--backend",
    type=click.Choice(["auto", "tensorrt", "onnxruntime", "torch"]),
    default="auto",
    show_default=True,
)
@click.option("--precision", type=click.Choice(["int8", "fp32"]), default="int8", show_default=True)
@click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True
)
@click.option(
    "--batch-size",
    default=32,
    show_default=True,
    type=click.IntRange(min=1),
    help="Specimens per inference batch.",
)
@click.option(
    "--workers",
    default=_default_workers,
    show_default="CPU cores, at most 8",
    type=click.IntRange(min=1),
    help="Processes identifying whole batches in parallel (ONNX Runtime on the CPU; started "
    "only when the input holds more than one batch).",
)
@click.option(
    "--log",
    "log_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write a JSON provenance log of the run here.",
)
@click.option(
    "--trusted-key",
    type=click.Path(exists=True, dir_okay=False),
    envvar="HIR_EDGE_TRUSTED_KEY",
    default=None,
    help="Run only a bundle signed with this Ed25519 key's private half (a PEM public key; "
    "env HIR_EDGE_TRUSTED_KEY).",
)
@click.option(
    "--cache",
    envvar="HIR_EDGE_CACHE",
    default=None,
    metavar="DIR|off",
    help="Keep the library's k-mer index here between runs, as a BLAST database is built once "
    "(default: $XDG_CACHE_HOME/hir-edge, else ~/.cache/hir-edge; env HIR_EDGE_CACHE); off: "
    "count it every run.",
)
@force_option("Overwrite --output / --log files.")
@quiet_option("No progress bar or summary line.")
def identify(**options):
    """Identify specimens from COI reads, photos, or both — offline.

    \b
      hir-edge identify --fasta reads.fa --image bug.jpg
      hir-edge identify --fasta run.fastq.gz --image photos/ --format tsv -o ids.tsv

    Exit status: 0 every specimen identified, 1 some inputs skipped (each reported on
    stderr), 2 usage or input errors, 3 a bad bundle, 4 the system refused, 130/143
    interrupted/terminated.
    """
    from hir_edge.io import ensure_writable
    from hir_edge.runtime.run import IdentifyRun

    # the options that shape the output stay here; the rest are the run's own fields
    fmt, output, log_path, force = (options.pop(k) for k in ("fmt", "output", "log_path", "force"))
    novel_above = options.pop("novel_above")
    options["novel_divergence"] = None if novel_above is None else novel_above / 100.0
    options["images"] = list(options["images"])
    reads, images, sheet = options["reads"], options["images"], options["sheet"]
    if reads is None and not images and sheet is None:
        raise click.UsageError("give reads (--fasta), photos (--image) or a --manifest sheet")
    if sheet is not None and images:
        raise click.UsageError("with --manifest the photos are listed in the sheet: drop --image")
    for path in (output, log_path):
        if path is not None and path != "-":
            ensure_writable(path, force)  # fail now, not after the whole run
    run = IdentifyRun(**options)
    with open_output(output, force) as (stream, is_tty):
        status = run.execute(stream, fmt or ("table" if is_tty else "tsv"))
    if log_path:
        run.write_log(log_path, force)
    raise SystemExit(status)
