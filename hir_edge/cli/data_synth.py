"""``hir-edge data synth``: write a paired synthetic dataset. This module only parses."""

from __future__ import annotations

from pathlib import Path

import click

from hir_edge.cli.common import force_option, output_option, quiet_option
from hir_edge.data.synth.config import SynthConfig

_DEFAULTS = SynthConfig()

# option name -> SynthConfig field; an option the user did not give leaves --config's value.
_OVERRIDES = {
    "barcodes": "barcodes",
    "seed": "seed",
    "n_specimens": "n_specimens",
    "image_size": "image_size",
    "unseen_species_frac": "unseen_species_frac",
    "max_species": "max_species",
}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@output_option("Folder to write.")
@click.option(
    "--barcodes",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="BOLD export (v5 data package or older public TSV; COI-5P records) whose real "
    "taxonomy and DNA to use (one specimen per record). "
    "[default: a generated 'Demo' world with evolved barcodes]",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=_DEFAULTS.seed,
    show_default=True,
    help="Seeds names, traits, DNA, photos and splits.",
)
@click.option(
    "--n-specimens",
    type=click.IntRange(min=1),
    default=_DEFAULTS.n_specimens,
    show_default=True,
    help="Specimens in a generated world (ignored with --barcodes).",
)
@click.option(
    "--image-size",
    type=click.IntRange(min=16),
    default=_DEFAULTS.image_size,
    show_default=True,
    help="Side of the stored square photos, in pixels.",
)
@click.option(
    "--unseen-species-frac",
    type=click.FloatRange(0, 1),
    default=_DEFAULTS.unseen_species_frac,
    show_default=True,
    help="Share of species held out whole into a 'test_unseen' split (their genus stays).",
)
@click.option(
    "--max-species",
    type=click.IntRange(min=1),
    default=None,
    help="With --barcodes: keep a seeded random subset of this many species.  [default: all]",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="YAML/JSON file of generator settings (see README); options given here override it.",
)
@force_option("Replace an existing output folder.")
@quiet_option("No progress bar, no summary line.")
@click.pass_context
def synth(
    ctx: click.Context,
    output: Path,
    config_path: Path | None,
    force: bool,
    quiet: bool,
    **options,
) -> None:
    """Write a paired synthetic dataset (photos + COI barcodes + taxonomy) to a folder.

    The folder holds specimens.h5 (CLIBD/BIOSCAN HDF5 layout: train, val, test[, test_unseen]),
    metadata.tsv, taxonomy.json (training split) and synth.json (settings and counts).

    \b
    Examples:
      hir-edge data synth -o synth/                 # generated 'Demo' world
      hir-edge data synth -o bold10/ --barcodes ../shared/data/bold_coi/bold_coi_100sp.tsv \\
          --max-species 10
    """
    from hir_edge.data.synth import generate_dataset

    config = SynthConfig.from_file(config_path) if config_path else SynthConfig()
    changes = {}
    for option, field_name in _OVERRIDES.items():
        if ctx.get_parameter_source(option) != click.core.ParameterSource.DEFAULT:
            value = options[option]
            changes[field_name] = str(value) if isinstance(value, Path) else value
    if changes:
        config = config.replace(**changes)
    if config.barcodes is None and config.max_species is not None:
        click.echo("warning: --max-species only applies with --barcodes; ignored", err=True)
    generate_dataset(config, output, force=force, quiet=quiet)
