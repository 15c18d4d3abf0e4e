"""The export stages, one function each over one :class:`ExportContext` (ultralytics' exporter
style): ``run_stage`` logs the stage's tool and version as it starts, then its seconds, file and
size — or its error, and re-raises."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from hir_edge import __version__
from hir_edge.data.hdf5 import SpecimenStore, list_splits
from hir_edge.errors import HirEdgeError
from hir_edge.export.distill import DistillConfig
from hir_edge.export.library import (
    FieldInputs,
    batches,
    calibrate_scoring,
    field_inputs,
    spread_indices,
    write_references,
)
from hir_edge.export.manifest import build_manifest, finalize_manifest, model_card
from hir_edge.io import human_size
from hir_edge.runtime.bundle import MANIFEST, MODEL_CARD, PROMPTS, REFERENCES, TAXONOMY


@dataclass
class ExportContext:
    """What the stages share: the inputs, the bundle being written, and what each produced."""

    options: object  # ExportOptions
    teacher: object
    taxonomy: object
    calib_path: Path
    out: Path  # the bundle folder being written (renamed into place when complete)
    work: Path  # resumable scratch (distillation state)
    field_model: object = None
    banks: dict = field(default_factory=dict)
    graphs: dict = field(default_factory=dict)
    measurements: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)
    precision: str = "fp32"
    val: FieldInputs | None = None
    with_dna: bool = True
    lines: list[dict] = field(default_factory=list)
    quiet: bool = False

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr)


@dataclass(frozen=True)
class Stage:
    """One export stage: its name, the package whose version it logs, its work, and whether
    the options ask for it."""

    name: str
    tool: str
    run: Callable[[ExportContext], tuple[str, Path | None]]
    wanted: Callable[[ExportContext], bool] = lambda ctx: True


def _tool_version(package: str) -> str:
    try:
        return f"{package} {version(package)}"
    except PackageNotFoundError:
        return package


def run_stage(stage: Stage, ctx: ExportContext) -> None:
    """Run one stage with its start line and its done (or failed) line."""
    if not stage.wanted(ctx):
        return
    ctx.say(f"{stage.name}: starting with {_tool_version(stage.tool)}")
    start = time.perf_counter()
    try:
        detail, path = stage.run(ctx)
    except Exception as err:
        ctx.say(f"{stage.name}: failed after {time.perf_counter() - start:.1f}s ({err})")
        raise
    seconds = time.perf_counter() - start
    size = f" ({human_size(path.stat().st_size)})" if path is not None and path.exists() else ""
    where = f" → {path.name}{size}" if path is not None else ""
    ctx.lines.append({"stage": stage.name, "seconds": round(seconds, 2), "detail": detail})
    ctx.say(f"{stage.name}: done in {seconds:.1f}s{where}" + (f"; {detail}" if detail else ""))


def has_barcodes(path: Path, split: str) -> bool:
    """Does any specimen of ``path:split`` carry a barcode?"""
    with SpecimenStore(path, split) as store:
        return any(store.barcodes())


# --------------------------------------------------------------------------- the stages
def prompt_bank(ctx: ExportContext) -> tuple[str, Path]:
    """Every taxon's prompt embedded by the teacher's text tower (the tower is not shipped)."""
    import torch

    taxonomy = ctx.taxonomy
    with torch.no_grad():
        ctx.banks = {
            f"rank{lv}": ctx.teacher.embed_prompts(taxonomy.prompts(lv)).numpy()
            for lv in range(taxonomy.num_ranks)
        }
    np.savez(ctx.out / PROMPTS, **ctx.banks)
    taxonomy.save(ctx.out / TAXONOMY)
    ctx.field_model = ctx.teacher
    return f"{taxonomy.sizes()} taxa embedded by the teacher's text tower", ctx.out / PROMPTS


def distil(ctx: ExportContext) -> tuple[str, None]:
    """Student encoders trained to reproduce the teacher (``--student``)."""
    from hir_edge.export.distill import Distiller

    options, teacher = ctx.options, ctx.teacher
    config = DistillConfig(**{**asdict(options.distill), "student": options.student})
    distiller = Distiller(
        teacher, ctx.calib_path, options.calib_split, config, ctx.work, quiet=options.quiet
    )
    result = distiller.fit()
    ctx.field_model = student = distiller.student.eval()
    result["parameters"] = {
        "teacher": teacher.num_parameters(),
        "student": student.num_parameters(),
    }
    store = SpecimenStore(ctx.calib_path, options.val_split)
    agree = teacher_student_agreement(teacher, student, store, ctx.banks, ctx.taxonomy)
    result["agreement"] = agree
    ctx.measurements["distillation"] = result
    shown = "fused" if "fused" in agree and ctx.with_dna else "image"
    return (
        f"student {options.student} ({student.num_parameters()['total']:,} vs "
        f"{teacher.num_parameters()['total']:,} parameters); top-1 agreement with the teacher "
        f"on validation ({shown}): "
        + ", ".join(f"{r} {agree[shown][r]:.1f}%" for r in ctx.taxonomy.ranks),
        None,
    )


def export_onnx(ctx: ExportContext) -> tuple[str, Path]:
    """ONNX graphs of the field parts, checked against torch on real validation inputs."""
    import torch

    from hir_edge.export import onnx_graphs

    model, out = ctx.field_model, ctx.out
    store = SpecimenStore(ctx.calib_path, ctx.options.val_split)
    ctx.val = field_inputs(
        store, spread_indices(len(store), 256), model.preprocess, model.dna_tokenizer
    )
    pix, ids, mask = ctx.val.pixels, ctx.val.ids, ctx.val.mask
    meta = {
        "hir_edge_version": __version__,
        "preset": model.config.preset,
        "embed_dim": str(model.embed_dim),
        "taxa": json.dumps(ctx.taxonomy.sizes()),
    }
    parts = onnx_graphs.specs(model)
    if not ctx.with_dna:
        # No barcode to learn or calibrate from: a photo-only bundle (EU-Moths). Reads given
        # to it are refused rather than answered by an untrained DNA tower.
        parts = {k: v for k, v in parts.items() if k == "image"}
        ctx.say("no barcodes in the calibration data: a photo-only bundle")
    for part in parts:
        path = out / f"{part}.fp32.onnx"
        spec = onnx_graphs.export_graph(model, part, path, metadata=meta)
        ctx.graphs[part] = {
            "inputs": spec.inputs,
            "outputs": spec.outputs,
            "files": {"fp32": path.name},
        }
        if spec.token_multiple:
            ctx.graphs[part]["token_multiple"] = spec.token_multiple
    with torch.no_grad():
        zi = model.encode_image(torch.from_numpy(pix[:64])).numpy()
        zd = model.encode_dna(torch.from_numpy(ids[:64]), torch.from_numpy(mask[:64])).numpy()
    inputs = {"image": (pix[:64],), "dna": (ids[:64], mask[:64]), "fusion": (zi, zd)}
    parity = {
        part: onnx_graphs.parity(model, part, out / f"{part}.fp32.onnx", inputs[part])
        for part in ctx.graphs
    }
    ctx.measurements["onnx_parity"] = parity
    worst = min(p["min_cosine"] for p in parity.values())
    if worst < 0.9999:
        raise HirEdgeError(f"ONNX export does not match torch (min cosine {worst:.6f} < 0.9999)")
    return (
        "parity vs torch on real inputs: "
        + ", ".join(f"{k} min cos {v['min_cosine']:.6f}" for k, v in parity.items()),
        out / "image.fp32.onnx",
    )


def quantize_int8(ctx: ExportContext) -> tuple[str, Path]:
    """INT8 Q/DQ graphs calibrated on real specimens; the fp32 encoders leave the bundle
    unless ``--keep-fp32``."""
    from hir_edge.export import quantize

    options, out, model, graphs = ctx.options, ctx.out, ctx.field_model, ctx.graphs
    store = SpecimenStore(ctx.calib_path, options.calib_split)
    c_idx = spread_indices(len(store), options.calib_samples)
    c_in = field_inputs(store, c_idx, model.preprocess, model.dna_tokenizer)
    feeds = {
        "image": batches({"image": c_in.pixels}),
        "dna": batches({"input_ids": c_in.ids, "attention_mask": c_in.mask}),
    }
    held = {
        "image": batches({"image": ctx.val.pixels}),
        "dna": batches({"input_ids": ctx.val.ids, "attention_mask": ctx.val.mask}),
    }
    int8_report, trt_report = {}, {}
    for part in [p for p in ("image", "dna") if p in graphs]:
        fp32, target = out / f"{part}.fp32.onnx", out / f"{part}.int8.onnx"
        quantize.quantize_onnxruntime(fp32, target, feeds[part], reduce_range=part == "image")
        graphs[part]["files"]["int8"] = target.name
        int8_report[part] = quantize.int8_cosine(fp32, target, held[part])
        trt_target = out / f"{part}.int8-trt.onnx"
        if quantize.modelopt_available():
            quantize.quantize_modelopt(fp32, trt_target, feeds[part])
            graphs[part]["files"]["int8-trt"] = trt_target.name
        else:  # derived on the device (export --engine); measured here, not shipped
            quantize.symmetric_graph(target, trt_target)
            trt_report[part] = quantize.int8_cosine(fp32, trt_target, held[part])
            trt_target.unlink()
    ctx.measurements["int8_cosine"] = int8_report
    if trt_report:
        ctx.measurements["int8_trt_cosine"] = trt_report
    if not options.keep_fp32:
        for part in int8_report:
            (out / graphs[part]["files"].pop("fp32")).unlink()
    ctx.precision = "int8"
    trt = (
        "; TensorRT Q/DQ graphs by Model Optimizer"
        if quantize.modelopt_available()
        else "; the TensorRT graph is derived from it on the device (mean cos "
        + ", ".join(f"{k} {v['mean_cosine']:.4f}" for k, v in trt_report.items())
        + ")"
    )
    return (
        ", ".join(
            f"{k} cos vs fp32 mean {v['mean_cosine']:.4f} min {v['min_cosine']:.4f}"
            for k, v in int8_report.items()
        )
        + f" on {len(ctx.val.pixels)} held-out specimens, calibrated on {len(c_idx)}"
        + trt,
        out / "image.int8.onnx",
    )


def reference_library(ctx: ExportContext) -> tuple[str, Path | None]:
    """The calibration split's specimens through the shipped graphs, as references."""
    options = ctx.options
    ctx.manifest = build_manifest(
        options,
        ctx.teacher,
        ctx.field_model,
        ctx.taxonomy,
        ctx.graphs,
        ctx.calib_path,
        ctx.precision,
    )
    (ctx.out / MANIFEST).write_text(json.dumps(ctx.manifest, indent=1))
    if not options.reference_split:  # prompts alone: the bundle ships no references
        return "no reference split: prompts only", None
    count, _ = write_references(
        ctx.out, options, ctx.field_model, ctx.precision, ctx.calib_path, [options.reference_split]
    )
    return f"{count} {options.reference_split} specimens", ctx.out / REFERENCES


def calibration(ctx: ExportContext) -> tuple[str, None]:
    """Temperatures, vote weights, thresholds, novelty cut-offs and the read placement model,
    fitted on validation specimens through the shipped graphs."""
    options = ctx.options
    scoring = calibrate_scoring(ctx.out, options, ctx.field_model, ctx.precision, ctx.calib_path)
    scoring["calibrated_on"] = {
        "thresholds": f"split {options.val_split!r} of {ctx.calib_path.name}",
        "library_then": f"split {options.reference_split!r}",
    }
    if options.outgroups is not None and "placement" in scoring:
        scoring["calibrated_on"]["outgroups"] = options.outgroups.name
    ctx.manifest["scoring"] = scoring
    shown = next((m for m in ("fused", "dna", "image") if m in scoring["validation"]), None)
    accuracy = scoring["validation"].get(shown, {}).get("path_accuracy")
    placed = (
        " and placement of reads from taxa taken out of the library"
        if "placement" in scoring
        else ""
    )
    return (
        f"thresholds for {options.target_precision:.0%} precision{placed}; validation path "
        f"accuracy ({shown}): {accuracy}",
        None,
    )


def full_library(ctx: ExportContext) -> tuple[str, Path]:
    """Every record of the calibration data becomes a reference, once calibrated (with
    ``library_all`` off, the calibration's own references stay), and each reference's radii
    are aligned into the library: the placement reads them, and ``identify`` never aligns
    them."""
    options = ctx.options
    every = list_splits(ctx.calib_path) if options.library_all else [options.reference_split]
    count, radii = write_references(
        ctx.out,
        ctx.options,
        ctx.field_model,
        ctx.precision,
        ctx.calib_path,
        every,
        embedded=ctx.options.reference_split,
        radii_scoring=ctx.manifest["scoring"],
    )
    ctx.manifest["scoring"]["calibrated_on"]["library_shipped"] = every
    note = ""
    if radii is not None:
        medians = ", ".join(
            f"{np.median(known):.3f}" if len(known := radii[~np.isnan(radii[:, lv]), lv]) else "-"
            for lv in range(radii.shape[1])
        )  # "-": a rank with one taxon (a library of one order) has no radius
        note = f"; radii (median identity to the nearest other taxon per rank) {medians}"
    what = "every record is a reference" if ctx.options.library_all else "references"
    return f"{what}: {count} specimens of {', '.join(every)}{note}", (ctx.out / REFERENCES)


def tensorrt(ctx: ExportContext) -> tuple[str, None]:
    """Engines built here (``--engine``), or the ``trtexec`` commands for the device."""
    from hir_edge.export.engines import derive_tensorrt_graphs, engine_source
    from hir_edge.export.tensorrt_build import build_engine, trtexec_command
    from hir_edge.runtime.backends import tensorrt_available

    out, precision, graphs = ctx.out, ctx.precision, ctx.graphs
    if precision == "int8":
        derive_tensorrt_graphs(out, graphs)  # listed in the manifest the bundle stage writes
    commands, engines = [], {}
    for part, graph in graphs.items():
        source = engine_source(graph, precision)
        engine = out / "engines" / f"{part}.{precision}.plan"
        if tensorrt_available():
            engine.parent.mkdir(exist_ok=True)
            tag = build_engine(out / source, engine, graph["inputs"], precision)
            engines[part] = {
                precision: {"file": f"engines/{engine.name}", "tag": tag, "onnx": source}
            }
        else:
            commands.append(
                trtexec_command(
                    Path(source), Path("engines") / engine.name, graph["inputs"], precision
                )
            )
    ctx.manifest["engines"] = engines
    if commands:
        return (
            "TensorRT is not installed here; on the device, in the bundle folder, run:\n  "
            + "\n  ".join(commands),
            None,
        )
    return f"{len(engines)} engines for {next(iter(engines.values()))[precision]['tag']}", None


def finish_bundle(ctx: ExportContext) -> tuple[str, Path]:
    """Measurements, export log and model card into the manifest; every file checksummed."""
    manifest = ctx.manifest
    manifest.setdefault("engines", {})
    manifest["measurements"] = ctx.measurements
    manifest["export_log"] = ctx.lines
    (ctx.out / MODEL_CARD).write_text(model_card(manifest), encoding="utf-8")
    finalize_manifest(ctx.out, manifest)
    return f"{len(manifest['files'])} files checksummed", ctx.out / MANIFEST


STAGES = (
    Stage("prompt bank", "torch", prompt_bank),
    Stage("distillation", "torch", distil, lambda c: bool(c.options.student)),
    Stage("onnx", "onnx", export_onnx),
    Stage("int8", "onnxruntime", quantize_int8, lambda c: c.options.int8),
    Stage("reference library", "onnxruntime", reference_library),
    Stage("calibration", "onnxruntime", calibration),
    Stage(
        "reference library",
        "onnxruntime",
        full_library,
        lambda c: bool(c.options.reference_split),
    ),
    Stage("tensorrt", "tensorrt", tensorrt, lambda c: c.options.engine),
    Stage("bundle", "hir-edge", finish_bundle),
)


def teacher_student_agreement(
    teacher, student, store: SpecimenStore, banks: dict, taxonomy
) -> dict:
    """Per setting and rank, % of validation specimens with the same top-1 prompt for both."""
    import torch

    from hir_edge.export.distill import agreement

    idx = spread_indices(len(store), 512)
    out_t, out_s = {}, {}
    for model, out in ((teacher, out_t), (student, out_s)):
        x = field_inputs(store, idx, model.preprocess, model.dna_tokenizer)
        with torch.no_grad():
            zi = model.encode_image(torch.from_numpy(x.pixels))
            zd = model.encode_dna(torch.from_numpy(x.ids), torch.from_numpy(x.mask))
            out["image"], out["dna"] = zi.numpy(), zd.numpy()
            if model.fusion is not None:
                out["fused"] = model.fuse(zi, zd)[0].numpy()
    common = {k: out_t[k] for k in out_t if k in out_s}
    bank_list = [banks[f"rank{lv}"] for lv in range(taxonomy.num_ranks)]
    return agreement(common, {k: out_s[k] for k in common}, bank_list, taxonomy.ranks)
