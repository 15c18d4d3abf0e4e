"""``hir-edge data``: build and look into the HDF5 specimen files that training reads.

This module only parses; the HDF5 and image code is imported inside each command.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from hir_edge.cli.common import force_option, output_option, quiet_option

_MAX_LISTED_PROBLEMS = 20


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def data() -> None:
    """Pack specimen tables and photos into HDF5 (CLIBD layout), and inspect such files."""


@data.command()
@click.option(
    "--metadata",
    "-m",
    required=True,
    type=click.Path(path_type=Path),
    help="Specimen table: CSV/TSV (BIOSCAN-1M/5M, BOLD export, or image/order/…/split).",
)
@click.option(
    "--images",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder the table's image paths are relative to.  [default: the table's folder]",
)
@output_option("HDF5 file to write.")
@click.option(
    "--split-column",
    default=None,
    help="Column naming each record's split.  [default: 'split' when present]",
)
@click.option(
    "--default-split", default="train", show_default=True, help="Split of records that have none."
)
@click.option(
    "--fill-gaps",
    is_flag=True,
    default=False,
    help="Fill a missing rank above a known one with '<parent> incertae sedis' "
    "(e.g. EU-Moths: no family column).",
)
@click.option(
    "--max-image-side",
    type=click.IntRange(min=0),
    default=512,
    show_default=True,
    help="Shrink images whose longer side is larger, re-encoding them as JPEG "
    "(0 = keep sizes). Smaller JPEGs are stored byte for byte.",
)
@click.option(
    "--jpeg-quality",
    type=click.IntRange(1, 100),
    default=90,
    show_default=True,
    help="Quality of re-encoded JPEGs.",
)
@click.option(
    "--require-images",
    is_flag=True,
    default=False,
    help="Skip specimens whose image is missing or unreadable (default: keep them "
    "without an image).",
)
@click.option(
    "--val-fraction",
    type=click.FloatRange(0.0, 1.0, max_open=True),
    default=0.0,
    show_default=True,
    help="Move this share of each species' --val-from records into a 'val' split (the same "
    "records every time), to choose checkpoints and calibrate thresholds on; the test split "
    "is left alone.",
)
@click.option(
    "--val-from", default="train", show_default=True, help="Split the validation records come from."
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=min(8, os.cpu_count() or 1),
    show_default="CPU cores, at most 8",
    help="Threads reading and re-encoding images.",
)
@force_option("Overwrite the output file.")
@quiet_option("No progress bar, no summary line.")
def pack(
    metadata: Path,
    images: Path | None,
    output: Path,
    split_column: str | None,
    default_split: str,
    fill_gaps: bool,
    max_image_side: int,
    jpeg_quality: int,
    require_images: bool,
    val_fraction: float,
    val_from: str,
    workers: int,
    force: bool,
    quiet: bool,
) -> None:
    """Pack a specimen table (and its photos) into one HDF5 file, one group per split.

    \b
    Examples:
      hir-edge data pack -m eu_moths.tsv -o eu_moths.h5 --fill-gaps --val-fraction 0.15
      hir-edge data pack -m BIOSCAN_Insect_Dataset_metadata.tsv \\
          --images bioscan/images/cropped_256 --split-column large_diptera_family \\
          -o bioscan1m.h5
    """
    from hir_edge.data.pack import PackSettings
    from hir_edge.data.pack import pack as run_pack
    from hir_edge.progress import summary

    settings = PackSettings(
        metadata=metadata,
        output=output,
        images=images,
        split_column=split_column,
        default_split=default_split,
        fill_gaps=fill_gaps,
        max_image_side=max_image_side,
        jpeg_quality=jpeg_quality,
        require_images=require_images,
        val_fraction=val_fraction,
        val_from=val_from,
        workers=workers,
        force=force,
        quiet=quiet,
    )
    report = run_pack(settings)
    for problem in report.problems[:_MAX_LISTED_PROBLEMS]:
        click.echo(f"warning: {problem}", err=True)
    if len(report.problems) > _MAX_LISTED_PROBLEMS:
        click.echo(
            f"warning: … and {len(report.problems) - _MAX_LISTED_PROBLEMS} more problems",
            err=True,
        )
    counts = ", ".join(f"{name} {n}" for name, n in report.counts.items())
    summary(
        f"splits: {counts}; with image {report.with_image}, with barcode {report.with_barcode}",
        quiet=quiet,
    )
    summary(report.summary(), quiet=quiet)


@data.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Human-readable table or JSON.",
)
def inspect(path: Path, fmt: str) -> None:
    """Show the splits of an HDF5 specimen file: counts, taxa per rank, images, barcodes."""
    from hir_edge.data.hdf5 import describe
    from hir_edge.io import human_size
    from hir_edge.taxonomy import RANKS

    info = describe(path)
    if fmt == "json":
        click.echo(json.dumps(info, indent=1, ensure_ascii=False))
        return
    click.echo(f"{info['file']} ({human_size(info['size_bytes'])})")
    header = ["split", "specimens", "image", "barcode", *RANKS]
    rows = [header]
    for name, split in info["splits"].items():
        n = split["specimens"]

        def share(k: int, n: int = n) -> str:
            return f"{100.0 * k / n:.1f}%" if n else "-"

        rows.append(
            [name, str(n), share(split["with_image"]), share(split["with_barcode"])]
            + [_taxa_cell(split, r, share) for r in RANKS]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    click.echo(
        "taxa per rank (share of specimens labelled at that rank); '+N i.s.': 'incertae sedis' "
        "placeholders that --fill-gaps wrote for a missing rank above a known one (their "
        "specimens are in the share)"
    )
    for key, value in info["attrs"].items():
        click.echo(f"{key}: {json.dumps(value, ensure_ascii=False)}")


def _taxa_cell(split: dict, rank: str, share) -> str:
    """'143 (100.0%)', or '0 +1 i.s. (100.0%)' where placeholders fill the rank."""
    holders = split["placeholders"][rank]
    extra = f" +{holders} i.s." if holders else ""
    named = split["labelled"][rank] + split["filled"][rank]
    return f"{split['taxa'][rank]}{extra} ({share(named)})"


from hir_edge.cli.data_synth import synth  # noqa: E402

data.add_command(synth)
