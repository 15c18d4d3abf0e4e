"""``hir-edge degrade``: write degraded copies of reads or photos (METHOD.md §5).

This module only parses; the reading, degradation and image code is imported inside each command.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from hir_edge.cli.common import force_option, output_option, quiet_option

if TYPE_CHECKING:
    from hir_edge.degrade import DegradationPreset

_OPTIONAL_RATE = click.FloatRange(0.0, 1.0)


def _preset_option(ctx: click.Context, param: click.Parameter, value: str) -> DegradationPreset:
    from hir_edge.degrade import get_preset

    try:
        return get_preset(value)
    except ValueError as err:
        raise click.BadParameter(str(err), ctx=ctx, param=param) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def degrade() -> None:
    """Degrade DNA reads or photos the way the paper's robustness evaluation does."""


@degrade.command()
@click.argument("reads", type=click.Path(path_type=Path))
@output_option("FASTA file to write (gzipped when it ends in .gz).")
@click.option(
    "--preset",
    default="paper",
    show_default=True,
    callback=_preset_option,
    help="Named severity: none, mild, paper or severe.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Run seed; read i is degraded with its own stream (seed, i).",
)
@click.option(
    "--p-sub",
    type=_OPTIONAL_RATE,
    default=None,
    show_default="from --preset",
    help="Substitution probability per base.",
)
@click.option(
    "--p-n",
    type=_OPTIONAL_RATE,
    default=None,
    show_default="from --preset",
    help="Probability per position of masking to N.",
)
@click.option(
    "--p-indel",
    type=_OPTIONAL_RATE,
    default=None,
    show_default="from --preset",
    help="Indel probability per position (half insertions, half deletions).",
)
@click.option(
    "--dropout",
    type=_OPTIONAL_RATE,
    default=None,
    show_default="from --preset",
    help="Length of the one N run, as a fraction of the read.",
)
@click.option(
    "--truncate",
    type=_OPTIONAL_RATE,
    default=None,
    show_default="from --preset",
    help="Fraction of the read removed from its 3' end.",
)
@force_option("Overwrite the output file.")
@quiet_option("No preset line, no summary line (skipped records are still reported).")
@click.pass_context
def dna(
    ctx: click.Context,
    reads: Path,
    output: Path,
    preset: DegradationPreset,
    seed: int,
    p_sub: float | None,
    p_n: float | None,
    p_indel: float | None,
    dropout: float | None,
    truncate: float | None,
    force: bool,
    quiet: bool,
) -> None:
    """Degrade every read of READS (FASTA, FASTQ or TSV/CSV) and write them as FASTA.

    Reads are cleaned and put on the coding strand first; then substitution, N masking,
    indels, one N dropout run and tail truncation are applied in that order. Each header
    records the values and the seed, e.g.

    \b
      >BIOUG123-45 degraded preset=paper p_sub=0.03 p_n=0.03 p_indel=0.01
      dropout=0.1 truncate=0.1 seed=0 index=12   (one line)

    Exit code 1 when some records were skipped (each is reported on stderr).
    """
    from hir_edge.degrade import degrade_dna_seeded
    from hir_edge.dna.io import ReadReport, read_sequences, write_fasta
    from hir_edge.io import ensure_writable
    from hir_edge.progress import Stopwatch, progress, summary

    preset = preset.with_values(
        p_sub=p_sub, p_n=p_n, p_indel=p_indel, dropout_frac=dropout, truncate_frac=truncate
    )
    ensure_writable(output, force)
    if not quiet:
        click.echo(f"{preset.describe()} seed={seed}", err=True)
    clock = Stopwatch()
    report = ReadReport()
    records = read_sequences(reads, report=report)
    noise = preset.dna
    values = (
        f"preset={preset.name} p_sub={noise.p_sub:g} p_n={noise.p_n:g} "
        f"p_indel={noise.p_indel:g} dropout={noise.dropout_frac:g} "
        f"truncate={noise.truncate_frac:g} seed={seed}"
    )
    shown = 0

    def degraded():
        nonlocal shown
        for read in progress(records, desc="degrade", unit="read", quiet=quiet):
            shown = _echo_new_errors(report.errors, shown)
            sequence = degrade_dna_seeded(read.sequence, noise, seed, read.index)
            yield read.id, sequence, f"degraded {values} index={read.index}"
        shown = _echo_new_errors(report.errors, shown)

    written = write_fasta(degraded(), output, force=force)
    summary(
        f"{written} reads written to {output} in {clock}; {report.n_skipped} skipped",
        quiet=quiet,
    )
    if report.n_skipped:
        ctx.exit(1)


@degrade.command()
@click.argument("source", type=click.Path(path_type=Path))
@output_option(
    "Image file to write (its suffix sets the format), or a folder when SOURCE is a folder."
)
@click.option(
    "--kernel",
    "-k",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Side of the k×k averaging kernel, in pixels of the image as stored "
    "(1 = no blur; 5 is the 'paper' preset).",
)
@click.option(
    "--format",
    "image_format",
    type=click.Choice(["same", "png"]),
    default="same",
    show_default=True,
    help="For a folder: keep each file's format, or write PNG.",
)
@force_option("Overwrite the output file or folder.")
@quiet_option("No summary line (unreadable images are still reported).")
@click.pass_context
def image(
    ctx: click.Context,
    source: Path,
    output: Path,
    kernel: int,
    image_format: str,
    force: bool,
    quiet: bool,
) -> None:
    """Blur SOURCE (an image, or a folder of images) with a k×k box filter.

    The blur is applied here at each image's own resolution, so k pixels on a 2880×2160 camera
    frame is far milder than k pixels at model input size. `hir-edge eval` blurs at model input
    resolution (224 px) instead, where a kernel means the same whatever the camera. Images
    are written upright (EXIF orientation applied) in RGB; metadata is not copied. Files in
    sub-folders keep their relative paths. Exit code 1 when some images could not be read.
    """
    from hir_edge.degrade import blur_file, image_format_for
    from hir_edge.errors import InputError
    from hir_edge.images import image_files
    from hir_edge.io import atomic_dir, ensure_writable
    from hir_edge.progress import Stopwatch, progress, summary

    clock = Stopwatch()
    if source.is_dir():
        files = image_files(source)
        if not files:
            raise InputError(source, "holds no image files (.jpg, .png, .tif, .webp, …)")
        failed = 0
        with atomic_dir(output, force=force) as tmp:
            for path in progress(files, desc="blur", unit="image", quiet=quiet):
                relative = path.relative_to(source)
                if image_format == "png":
                    relative = relative.with_suffix(".png")
                try:
                    blur_file(path, tmp / relative, kernel)
                except InputError as err:
                    click.echo(f"skipped: {err}", err=True)
                    failed += 1
        written = len(files) - failed
        summary(
            f"{written} images blurred (k={kernel}) into {output} in {clock}; {failed} skipped",
            quiet=quiet,
        )
        if failed:
            ctx.exit(1)
        return
    ensure_writable(output, force)
    try:
        image_format_for(output)  # refuse an unknown suffix before decoding anything
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="'--output'") from None
    blur_file(source, output, kernel)
    summary(f"1 image blurred (k={kernel}) to {output} in {clock}", quiet=quiet)


def _echo_new_errors(errors: list, shown: int) -> int:
    for error in errors[shown:]:
        click.echo(f"skipped: {error}", err=True)
    return len(errors)
