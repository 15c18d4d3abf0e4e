"""``hir-edge train``: one recipe, one run folder; torchrun for several GPUs or nodes."""

from __future__ import annotations

import click

from hir_edge.cli.common import force_option, output_option, quiet_option


@click.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="YAML recipe (see recipes/).",
)
@output_option(
    "Run folder: checkpoints, best model, metrics.jsonl, resolved config.",
    file_okay=False,
    as_path=False,
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe value, e.g. --set train.epochs=3 (repeatable).",
)
@click.option(
    "--resume", is_flag=True, help="Continue the run in --output from its last checkpoint."
)
@force_option("Start over in an existing run folder.")
@click.option(
    "--stop-after-epochs",
    type=click.IntRange(min=1),
    default=None,
    help="Stop after this many epochs (the schedule stays the recipe's); --resume continues.",
)
@quiet_option("No progress bar or summary.")
def train(config_path, output, overrides, resume, force, stop_after_epochs, quiet):
    """Train CLIBD, CLIBD-HiR or CLIBD-HiR-Fuse as the recipe says.

    \b
    One CPU process or one GPU:
      hir-edge train --config recipes/tiny-hir-fuse.yaml --output runs/tiny-hir-fuse
    4 GPUs on one node (the paper's setting):
      torchrun --nproc_per_node 4 -m hir_edge train \
        --config recipes/paper-bioclip-hir.yaml -o runs/paper-hir
    """
    from hir_edge.train.config import load_config
    from hir_edge.train.trainer import Trainer

    if resume and force:
        raise click.UsageError("--resume and --force exclude each other")
    config = load_config(config_path, list(overrides))
    Trainer(config, output, resume=resume, force=force, quiet=quiet).fit(stop_after_epochs)
