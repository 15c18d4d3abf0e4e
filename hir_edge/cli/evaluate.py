"""``hir-edge eval``: the paper's tables and the rest, for one trained model."""

from __future__ import annotations

import click

from hir_edge.cli.common import force_option, output_option, quiet_option


@click.command("eval")
@click.option(
    "--checkpoint",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="A model folder: RUN/best or RUN/checkpoints/step-N.",
)
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="HDF5 file in the BIOSCAN/CLIBD layout.",
)
@click.option("--split", default="test", show_default=True, help="Query split.")
@click.option(
    "--val-split",
    default="val",
    show_default=True,
    help="Split for temperature and threshold fitting ('' to skip).",
)
@click.option(
    "--keys-split",
    default="train",
    show_default=True,
    help="Reference split of the CLIBD nearest-neighbour protocol ('' to skip).",
)
@click.option(
    "--unseen-split",
    default="test_unseen",
    show_default=True,
    help="Open-set split, used when the file has it.",
)
@click.option(
    "--preset",
    default="paper",
    show_default=True,
    help="Degradation preset of the noisy conditions (none, mild, paper, severe).",
)
@click.option("--seed", default=0, show_default=True, help="Degradation seed.")
@click.option("--max-specimens", type=int, default=None, help="Evaluate an evenly spaced subset.")
@click.option("--batch-size", default=64, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option(
    "--cache",
    "cache_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Cache embeddings here (keyed by model, data, split, condition, preset, seed).",
)
@output_option(
    "Report folder: report.md, results.json, results.csv.", file_okay=False, as_path=False
)
@force_option("Overwrite an existing report folder.")
@quiet_option("No progress bar or summary.")
def evaluate(
    checkpoint,
    data,
    split,
    val_split,
    keys_split,
    unseen_split,
    preset,
    seed,
    max_specimens,
    batch_size,
    device,
    cache_dir,
    output,
    force,
    quiet,
):
    """Top-1/Top-5 per rank and Global (IT, DT, I+DT Avg, I+DT Fusion; Clean and Noisy),
    CLIBD's nearest-reference protocol, hierarchical consistency, mistake severity,
    calibration and abstention."""
    from hir_edge.degrade import get_preset
    from hir_edge.evaluation.report import write_report
    from hir_edge.evaluation.runner import EvalOptions, Evaluator
    from hir_edge.io import ensure_writable_folder
    from hir_edge.progress import Stopwatch, summary

    clock = Stopwatch()
    try:
        get_preset(preset)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--preset") from None
    ensure_writable_folder(output, force=force)
    options = EvalOptions(
        split=split,
        val_split=val_split or None,
        keys_split=keys_split or None,
        unseen_split=unseen_split or None,
        preset=preset,
        seed=seed,
        max_specimens=max_specimens,
        batch_size=batch_size,
        device=device,
        cache_dir=cache_dir,
        quiet=quiet,
    )
    results = Evaluator(checkpoint, data, options).run()
    out = write_report(results, output, force=force)
    fused = results["paper"].get("I+DT Fusion", results["paper"].get("I+DT Avg", {}))
    glob = {c: r["accuracy"]["global"]["top1"] for c, r in fused.items()}
    summary(
        f"evaluated {checkpoint} on {data}:{split} in {clock} → {out}/report.md; "
        f"I+DT Global Top-1: " + ", ".join(f"{c} {v:.1f}" for c, v in glob.items()),
        quiet,
    )
