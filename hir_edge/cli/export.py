"""``hir-edge export``: distil, quantise and package a trained model into a field bundle."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hir_edge.cli.common import force_option, output_option, quiet_option


@click.command()
@click.option(
    "--checkpoint",
    type=click.Path(file_okay=False, path_type=Path),
    help="Trained model folder (RUN/best).",
)
@click.option(
    "--bundle",
    "bundle_in",
    type=click.Path(path_type=Path),
    default=None,
    help="With --engine only: build TensorRT engines for an existing bundle on this device.",
)
@click.option("--student", default=None, help="Distil into this student preset (edge-s, edge-m).")
@click.option(
    "--int8",
    is_flag=True,
    help="Ship INT8 (Q/DQ) graphs, calibrated on real specimens, instead of fp32 ones.",
)
@click.option(
    "--keep-fp32",
    is_flag=True,
    help="With --int8: ship the fp32 encoder graphs too (for --precision fp32 in the field).",
)
@click.option(
    "--calib-data",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="HDF5 specimens for calibration, distillation and thresholds "
    "[default: the checkpoint's training data].",
)
@click.option("--calib-split", default="train", show_default=True)
@click.option("--calib-samples", default=512, show_default=True, help="Specimens calibrating INT8.")
@click.option(
    "--val-split",
    default="val",
    show_default=True,
    help="Specimens for parity checks and the field thresholds.",
)
@click.option(
    "--calib-noise",
    default="paper",
    show_default=True,
    help="Degradation preset of the extra, degraded copies of the validation reads that the "
    "field thresholds are fitted on ('none': clean reads only).",
)
@click.option(
    "--calib-fragment",
    type=click.IntRange(min=0),
    multiple=True,
    default=(100, 150),
    show_default=True,
    help="Length of read fragments (a window of each validation read) that the field "
    "thresholds are also fitted on; repeat for several lengths (0: none).",
)
@click.option(
    "--outgroups",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Labelled barcodes of taxa the library lacks (a BOLD export of a wider region, say): "
    "asked too when the read placement is fitted, so that reads of absent genera and families "
    "are placed no deeper than such reads support. Never references.",
)
@click.option(
    "--placement-rows",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the open-set rows the read placement was fitted on (features, truth, "
    "read groups) to this .npz, to study the fit.",
)
@click.option(
    "--references/--no-references",
    default=True,
    show_default=True,
    help="Ship the calibration split's embeddings as a reference library.",
)
@click.option("--max-references", type=int, default=None, help="Cap the reference library.")
@click.option(
    "--distill-epochs",
    default=12,
    show_default=True,
    help="Distillation epochs.",
)
@click.option(
    "--engine", is_flag=True, help="Build TensorRT engines here (needs TensorRT and a GPU)."
)
@click.option(
    "--device-name", default=None, help="Label recorded with the engines (e.g. jetson-orin-nx)."
)
@click.option(
    "--name", default=None, help="Bundle name in its manifest [default: the output name]."
)
@click.option("--description", default="", help="One paragraph for the model card.")
@output_option("Bundle folder to write.", required=False)
@click.option(
    "--sign",
    "sign_key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Sign the bundle's manifest with this Ed25519 private key (PEM); with --bundle B, sign "
    "an existing bundle. identify --trusted-key checks it.",
)
@force_option("Replace an existing bundle (only once the new one is complete).")
@quiet_option()
def export(
    checkpoint,
    bundle_in,
    student,
    int8,
    keep_fp32,
    calib_data,
    calib_split,
    calib_samples,
    val_split,
    calib_noise,
    calib_fragment,
    outgroups,
    placement_rows,
    references,
    max_references,
    distill_epochs,
    engine,
    device_name,
    name,
    description,
    output,
    sign_key,
    force,
    quiet,
):
    """Distil (--student), quantise (--int8), export to ONNX and package a bundle.

    \b
      hir-edge export --checkpoint runs/tiny/best --student edge-s --int8 -o tiny.bundle
    On the field device, to add TensorRT engines to a bundle:
      hir-edge export --engine --bundle tiny.bundle
    To sign a bundle (the kits run it with identify --trusted-key team.pub):
      hir-edge export --sign team.key --bundle tiny.bundle
    """
    if bundle_in is not None:
        if not engine and sign_key is None:
            raise click.UsageError(
                "--bundle is for building engines on a device (--engine) or signing (--sign)"
            )
        if engine:
            from hir_edge.export.engines import add_engines

            add_engines(bundle_in, device_name=device_name, quiet=quiet)
        if sign_key is not None:
            _sign(bundle_in, sign_key, quiet)
        return
    if checkpoint is None or output is None:
        raise click.UsageError("--checkpoint and --output are required (or --engine --bundle B)")
    if calib_noise != "none":
        from hir_edge.degrade import get_preset

        try:
            get_preset(calib_noise)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--calib-noise") from None
    if int8 and student is None and not quiet:
        click.echo("note: --int8 without --student quantises the teacher itself", err=True)
    from hir_edge.export.distill import DistillConfig
    from hir_edge.export.pipeline import ExportOptions, export_bundle

    options = ExportOptions(
        checkpoint=checkpoint,
        output=output,
        student=student,
        int8=int8,
        keep_fp32=keep_fp32,
        calib_data=calib_data,
        calib_split=calib_split,
        calib_samples=calib_samples,
        val_split=val_split,
        calibration_noise=None if calib_noise == "none" else calib_noise,
        calibration_fragments=tuple(n for n in calib_fragment if n),
        outgroups=outgroups,
        placement_rows=placement_rows,
        reference_split=calib_split if references else None,
        max_references=max_references,
        engine=engine,
        device_name=device_name,
        name=name,
        description=description,
        distill=DistillConfig(epochs=distill_epochs),
        force=force,
        quiet=quiet,
        argv=sys.argv,
    )
    export_bundle(options)
    if sign_key is not None:
        _sign(output, sign_key, quiet)


def _sign(bundle: Path, key: Path, quiet: bool) -> None:
    from hir_edge.runtime.bundle import open_bundle
    from hir_edge.signing import sign_bundle

    if bundle.is_file():
        raise click.UsageError(f"{bundle}: sign the bundle folder, then pack it")
    open_bundle(bundle).close()  # sign only what verifies
    out = sign_bundle(bundle, key)
    if not quiet:
        click.echo(f"signed: {out}", err=True)
