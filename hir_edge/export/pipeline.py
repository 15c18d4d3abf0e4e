"""``hir-edge export``: a trained checkpoint in, a self-contained field bundle out.

Stages, each logged with its time and output size (ultralytics' exporter style):

1. prompt bank — every taxon's prompt embedded by the teacher's text tower (not shipped);
2. distillation (``--student``) — student encoders trained to reproduce the teacher;
3. ONNX — image encoder, DNA encoder, GatedFusion, checked against torch on real inputs;
4. INT8 (``--int8``) — ONNX Runtime QDQ for the CPU (+ Model Optimizer Q/DQ when installed);
5. reference library — embeddings of the labelled reference specimens, through the shipped graphs;
6. calibration — temperatures, thresholds and novelty cut-offs fitted on validation specimens;
7. TensorRT (``--engine``) — engines built on this device, or the ``trtexec`` command for it;
8. bundle — manifest (provenance, checksums), model card, written atomically.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from hir_edge import __version__
from hir_edge.align import MIN_KMERS_CALLED, min_called_bases
from hir_edge.data.hdf5 import SpecimenStore, list_splits
from hir_edge.errors import ConfigError, HirEdgeError
from hir_edge.export.distill import DistillConfig
from hir_edge.export.library import (
    batches,
    calibrate_scoring,
    field_inputs,
    spread_indices,
    write_references,
)
from hir_edge.export.manifest import build_manifest, finalize_manifest, model_card
from hir_edge.io import atomic_dir, human_size
from hir_edge.progress import Stopwatch
from hir_edge.runtime.bundle import MANIFEST, MODEL_CARD, PROMPTS, REFERENCES, TAXONOMY
from hir_edge.runtime.identifier import ScoringSettings


@dataclass
class ExportOptions:
    """Arguments of ``hir-edge export`` (validated before any work starts)."""

    checkpoint: Path
    output: Path
    student: str | None = None
    int8: bool = False
    calib_data: Path | None = None
    calib_split: str = "train"
    calib_samples: int = 512
    val_split: str = "val"
    # Field reads are not clean: degraded copies of the validation reads (this preset) join the
    # clean ones when the scoring is fitted, so the weights trust what survives noise.
    calibration_noise: str | None = "paper"
    # ... and so are windows of this many bases of each validation read: a short read's prompt
    # ranking is easily thrown off, and the fit must learn to trust its alignment instead.
    calibration_fragment: int | None = 150
    reference_split: str | None = "train"
    max_references: int | None = None
    engine: bool = False
    device_name: str | None = None
    name: str | None = None
    description: str = ""
    target_precision: float = 0.95
    distill: DistillConfig = field(default_factory=DistillConfig)
    force: bool = False
    quiet: bool = False
    argv: list[str] = field(default_factory=list)


@dataclass
class StageLog:
    """One line per stage: what, how long, what it wrote."""

    quiet: bool = False
    lines: list[dict] = field(default_factory=list)

    def done(
        self, stage: str, clock: Stopwatch, detail: str = "", path: Path | None = None
    ) -> None:
        size = ""
        if path is not None and path.exists():
            size = f" ({human_size(path.stat().st_size)})"
        where = f" → {path.name}{size}" if path is not None else ""
        line = f"{stage}: done in {clock.seconds:.1f}s{where}" + (f"; {detail}" if detail else "")
        self.lines.append({"stage": stage, "seconds": round(clock.seconds, 2), "detail": detail})
        if not self.quiet:
            print(line, file=sys.stderr)

    def note(self, message: str) -> None:
        if not self.quiet:
            print(message, file=sys.stderr)


# --------------------------------------------------------------------------- validation
def run_data_path(checkpoint: Path) -> Path | None:
    """The training data of the run a checkpoint came from (RUN/config.yaml), if it can be found."""
    for folder in (checkpoint.parent, checkpoint.parent.parent):
        config = folder / "config.yaml"
        if config.is_file():
            from hir_edge.train.config import load_config

            cfg = load_config(config)
            if cfg.data.path and Path(cfg.data.path).is_file():
                return Path(cfg.data.path)
            if cfg.data.synth is not None:
                candidate = Path(cfg.data.synth.out) / "specimens.h5"
                if candidate.is_file():
                    return candidate
    return None


def validate(options: ExportOptions) -> ExportOptions:
    """Check every argument before work: fail in a second, not after a distillation."""
    from hir_edge.io import OutputExistsError
    from hir_edge.models import get_preset_config

    ckpt = Path(options.checkpoint)
    if not (ckpt / "model_config.json").is_file() or not (ckpt / "taxonomy.json").is_file():
        raise ConfigError(
            f"--checkpoint {ckpt}: not a model folder (give RUN/best or RUN/checkpoints/step-N)"
        )
    if options.output.exists() and not options.force:
        raise OutputExistsError(options.output)
    if options.student is not None:
        cfg = get_preset_config(options.student)
        if cfg.role != "student":
            raise ConfigError(
                f"--student {options.student!r} is a {cfg.role} preset; students: edge-s, edge-m"
            )
    fragment = options.calibration_fragment
    shortest = min_called_bases(ScoringSettings.kmer_k)  # what the field runtime aligns
    if fragment is not None and fragment < shortest:
        raise ConfigError(
            f"--calib-fragment {fragment}: a read needs {shortest} called bases to be aligned "
            f"({MIN_KMERS_CALLED} k-mers of {ScoringSettings.kmer_k}); give 0 for no fragments "
            "or a longer window"
        )
    calib = options.calib_data or run_data_path(ckpt)
    if calib is None:
        raise ConfigError(
            "--calib-data is needed: the training data of this checkpoint could not be found "
            "(it calibrates INT8, distils the student and fits the field thresholds)"
        )
    calib = Path(calib)
    if not calib.is_file():
        raise ConfigError(f"--calib-data {calib}: no such file")
    splits = list_splits(calib)
    for name, split in (("--calib-split", options.calib_split), ("--val-split", options.val_split)):
        if split not in splits:
            raise ConfigError(f"{name} {split!r} is not in {calib} (it has: {', '.join(splits)})")
    if options.reference_split and options.reference_split not in splits:
        raise ConfigError(f"reference split {options.reference_split!r} is not in {calib}")
    if options.val_split in (options.calib_split, options.reference_split):
        raise ConfigError(
            f"--val-split {options.val_split!r} is also the calibration/reference split: the field "
            "thresholds would be fitted on specimens the bundle already knows; use a held-out split"
        )
    if options.calib_samples < 8:
        raise ConfigError(f"--calib-samples must be at least 8, got {options.calib_samples}")
    options.calib_data = calib
    return options


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


# --------------------------------------------------------------------------- the pipeline
def export_bundle(options: ExportOptions) -> dict:
    """Run every stage; returns the manifest written."""
    import torch

    from hir_edge.export import onnx_graphs, quantize
    from hir_edge.models import load_model
    from hir_edge.taxonomy import Taxonomy

    options = validate(options)
    total = Stopwatch()
    log = StageLog(options.quiet)
    teacher = load_model(options.checkpoint).eval()
    taxonomy = Taxonomy.load(options.checkpoint / "taxonomy.json")
    calib_path = Path(options.calib_data)
    log.note(
        f"export {options.checkpoint} (preset {teacher.config.preset}, d={teacher.embed_dim}, "
        f"{sum(taxonomy.sizes().values())} taxa) → {options.output}; calibration data {calib_path}"
    )
    measurements: dict = {}
    work = options.output.parent / f".{options.output.name}.work"
    if options.force and work.exists():
        import shutil

        shutil.rmtree(work)  # --force starts the distillation over too

    with atomic_dir(options.output, force=options.force) as out:
        # 1. prompt bank ------------------------------------------------------
        clock = Stopwatch()
        with torch.no_grad():
            banks = {
                f"rank{lv}": teacher.embed_prompts(taxonomy.prompts(lv)).numpy()
                for lv in range(taxonomy.num_ranks)
            }
        np.savez(out / PROMPTS, **banks)
        taxonomy.save(out / TAXONOMY)
        log.done(
            "prompt bank",
            clock,
            f"{taxonomy.sizes()} taxa embedded by the teacher's text tower",
            out / PROMPTS,
        )

        # 2. distillation -----------------------------------------------------
        field_model = teacher
        if options.student:
            from hir_edge.export.distill import Distiller

            clock = Stopwatch()
            config = DistillConfig(**{**asdict(options.distill), "student": options.student})
            distiller = Distiller(
                teacher, calib_path, options.calib_split, config, work, quiet=options.quiet
            )
            measurements["distillation"] = distiller.fit()
            field_model = distiller.student.eval()
            measurements["distillation"]["parameters"] = {
                "teacher": teacher.num_parameters(),
                "student": field_model.num_parameters(),
            }
            agree = teacher_student_agreement(
                teacher, field_model, SpecimenStore(calib_path, options.val_split), banks, taxonomy
            )
            measurements["distillation"]["agreement"] = agree
            fused = agree.get("fused", agree["dna"])
            log.done(
                "distillation",
                clock,
                f"student {options.student} "
                f"({field_model.num_parameters()['total']:,} vs "
                f"{teacher.num_parameters()['total']:,} parameters); top-1 agreement with the "
                "teacher on validation (fused): "
                + ", ".join(f"{r} {fused[r]:.1f}%" for r in taxonomy.ranks),
            )

        # 3. ONNX ---------------------------------------------------------------
        clock = Stopwatch()
        val_store = SpecimenStore(calib_path, options.val_split)
        val_idx = spread_indices(len(val_store), 256)
        val_in = field_inputs(val_store, val_idx, field_model.preprocess, field_model.dna_tokenizer)
        pix, ids, mask = val_in.pixels, val_in.ids, val_in.mask
        graphs: dict[str, dict] = {}
        meta = {
            "hir_edge_version": __version__,
            "preset": field_model.config.preset,
            "embed_dim": str(field_model.embed_dim),
            "taxa": json.dumps(taxonomy.sizes()),
        }
        parity = {}
        for part in onnx_graphs.specs(field_model):
            path = out / f"{part}.fp32.onnx"
            spec = onnx_graphs.export_graph(field_model, part, path, metadata=meta)
            graphs[part] = {
                "inputs": spec.inputs,
                "outputs": spec.outputs,
                "files": {"fp32": path.name},
            }
        with torch.no_grad():
            zi = field_model.encode_image(torch.from_numpy(pix[:64])).numpy()
            zd = field_model.encode_dna(
                torch.from_numpy(ids[:64]), torch.from_numpy(mask[:64])
            ).numpy()
        parity["image"] = onnx_graphs.parity(
            field_model, "image", out / "image.fp32.onnx", (pix[:64],)
        )
        parity["dna"] = onnx_graphs.parity(
            field_model, "dna", out / "dna.fp32.onnx", (ids[:64], mask[:64])
        )
        if "fusion" in graphs:
            parity["fusion"] = onnx_graphs.parity(
                field_model, "fusion", out / "fusion.fp32.onnx", (zi, zd)
            )
        measurements["onnx_parity"] = parity
        worst = min(p["min_cosine"] for p in parity.values())
        if worst < 0.9999:
            raise HirEdgeError(
                f"ONNX export does not match torch (min cosine {worst:.6f} < 0.9999)"
            )
        log.done(
            "onnx",
            clock,
            "parity vs torch on real inputs: "
            + ", ".join(f"{k} min cos {v['min_cosine']:.6f}" for k, v in parity.items()),
            out / "image.fp32.onnx",
        )

        # 4. INT8 ---------------------------------------------------------------
        if options.int8:
            clock = Stopwatch()
            calib_store = SpecimenStore(calib_path, options.calib_split)
            c_idx = spread_indices(len(calib_store), options.calib_samples)
            c_in = field_inputs(
                calib_store, c_idx, field_model.preprocess, field_model.dna_tokenizer
            )
            feeds = {
                "image": batches({"image": c_in.pixels}),
                "dna": batches({"input_ids": c_in.ids, "attention_mask": c_in.mask}),
            }
            held = {
                "image": batches({"image": pix}),
                "dna": batches({"input_ids": ids, "attention_mask": mask}),
            }
            int8_report = {}
            for part in ("image", "dna"):
                target = out / f"{part}.int8.onnx"
                quantize.quantize_onnxruntime(out / f"{part}.fp32.onnx", target, feeds[part])
                graphs[part]["files"]["int8"] = target.name
                int8_report[part] = quantize.int8_cosine(
                    out / f"{part}.fp32.onnx", target, held[part]
                )
                trt_target = out / f"{part}.int8-trt.onnx"
                if quantize.modelopt_available():
                    quantize.quantize_modelopt(out / f"{part}.fp32.onnx", trt_target, feeds[part])
                else:
                    quantize.quantize_onnxruntime(
                        out / f"{part}.fp32.onnx",
                        trt_target,
                        feeds[part],
                        symmetric_activations=True,
                    )
                graphs[part]["files"]["int8-trt"] = trt_target.name
            measurements["int8_cosine"] = int8_report
            mo = (
                "; TensorRT Q/DQ graphs by Model Optimizer"
                if quantize.modelopt_available()
                else "; TensorRT Q/DQ graphs by ONNX Runtime (nvidia-modelopt not installed)"
            )
            log.done(
                "int8",
                clock,
                ", ".join(
                    f"{k} cos vs fp32 mean {v['mean_cosine']:.4f} min {v['min_cosine']:.4f}"
                    for k, v in int8_report.items()
                )
                + f" on {len(pix)} held-out specimens, calibrated on {len(c_idx)}"
                + mo,
                out / "image.int8.onnx",
            )
        precision = "int8" if options.int8 else "fp32"

        # 5. reference library --------------------------------------------------
        manifest = build_manifest(
            options, teacher, field_model, taxonomy, graphs, calib_path, precision
        )
        (out / MANIFEST).write_text(json.dumps(manifest, indent=1))
        if options.reference_split:
            clock = Stopwatch()
            write_references(out, options, field_model, precision, calib_path)
            log.done(
                "reference library", clock, f"{options.reference_split} specimens", out / REFERENCES
            )

        # 6. calibration ---------------------------------------------------------
        clock = Stopwatch()
        scoring = calibrate_scoring(out, options, field_model, precision, calib_path)
        manifest["scoring"] = scoring
        log.done(
            "calibration",
            clock,
            "thresholds for {:.0%} precision; validation path accuracy (fused): {}".format(
                options.target_precision,
                scoring["validation"]
                .get("fused", scoring["validation"].get("dna", {}))
                .get("path_accuracy"),
            ),
        )

        # 7. TensorRT -------------------------------------------------------------
        if options.engine:
            clock = Stopwatch()
            manifest["engines"], notes = _engines(out, graphs, precision)
            log.done("tensorrt", clock, notes)
        else:
            manifest["engines"] = {}

        # 8. bundle ------------------------------------------------------------------
        clock = Stopwatch()
        manifest["measurements"] = measurements
        manifest["export_log"] = log.lines
        (out / MODEL_CARD).write_text(model_card(manifest), encoding="utf-8")
        finalize_manifest(out, manifest)
        log.done("bundle", clock, f"{len(manifest['files'])} files checksummed", out / MANIFEST)

    size = sum(f["bytes"] for f in manifest["files"].values())
    log.note(
        f"bundle written to {options.output} ({human_size(size)}) in {total}; next:\n"
        f"  hir-edge info {options.output}\n"
        f"  hir-edge identify --bundle {options.output} --fasta reads.fa --image photo.jpg"
    )
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return manifest


def _engines(out: Path, graphs: dict, precision: str) -> tuple[dict, str]:
    from hir_edge.export.tensorrt_build import build_engine, trtexec_command
    from hir_edge.runtime.backends import tensorrt_available

    commands, engines = [], {}
    for part, graph in graphs.items():
        source = (
            graph["files"].get("int8-trt")
            or graph["files"].get(precision)
            or graph["files"]["fp32"]
        )
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
    if commands:
        return (
            {},
            "TensorRT is not installed here; on the device, in the bundle folder, run:\n  "
            + "\n  ".join(commands),
        )
    return engines, f"{len(engines)} engines for {next(iter(engines.values()))[precision]['tag']}"
