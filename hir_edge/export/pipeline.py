"""``hir-edge export``: a trained checkpoint in, a self-contained field bundle out.

Options are validated before any work; then the stages of :mod:`hir_edge.export.stages` run in
order, each logged with its tool, time and output size (ultralytics' exporter style):

1. prompt bank — every taxon's prompt embedded by the teacher's text tower (not shipped);
2. distillation (``--student``) — student encoders trained to reproduce the teacher;
3. ONNX — image encoder, DNA encoder, GatedFusion, checked against torch on real inputs;
4. INT8 (``--int8``) — ONNX Runtime QDQ graphs (and Model Optimizer's when installed);
5. reference library — the reference split through the shipped graphs;
6. calibration — temperatures, thresholds, novelty cut-offs and the placement of reads from
   taxa the library lacks, fitted on validation specimens;
7. reference library — every record of the data, once calibrated;
8. TensorRT (``--engine``) — engines built on this device, or the ``trtexec`` command for it;
9. bundle — manifest (provenance, checksums), model card, written atomically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hir_edge.data.hdf5 import list_splits
from hir_edge.dna.align import MIN_KMERS_CALLED, min_called_bases
from hir_edge.errors import ConfigError
from hir_edge.export.distill import DistillConfig
from hir_edge.export.stages import STAGES, ExportContext, has_barcodes, run_stage
from hir_edge.io import atomic_dir, human_size
from hir_edge.progress import Stopwatch
from hir_edge.runtime.scoring import ScoringSettings


@dataclass
class ExportOptions:
    """Arguments of ``hir-edge export`` (validated before any work starts)."""

    checkpoint: Path
    output: Path
    student: str | None = None
    int8: bool = False
    # With int8: also ship the fp32 graphs of the encoders (the INT8 ones are made and checked
    # from them either way). Off, the bundle carries one graph per part, not two.
    keep_fp32: bool = False
    calib_data: Path | None = None
    calib_split: str = "train"
    calib_samples: int = 512
    val_split: str = "val"
    # Field reads are not clean: degraded copies of the validation reads (this preset) join the
    # clean ones when the scoring is fitted, so the weights trust what survives noise.
    calibration_noise: str | None = "paper"
    # ... and so are windows of these many bases of each validation read: a short read's prompt
    # ranking is easily thrown off, and the fit must learn to trust its alignment instead. Two
    # lengths: calibrated on 150-bp windows alone, the placement held many 100-bp reads of
    # known species back at family or order (identify_bold.md, known species, 100 bp).
    calibration_fragments: tuple[int, ...] = (100, 150)
    # Labelled barcodes of taxa the library lacks: extra open-set reads for the placement fit
    # (hir_edge.export.open_set), never references.
    outgroups: Path | None = None
    # Where to keep the open-set rows the placement was fitted on (.npz), for study.
    placement_rows: Path | None = None
    reference_split: str | None = "train"
    # After calibration, the library holds every specimen of the calibration data (its
    # validation and test splits too): a user's every record is a reference. False keeps
    # only ``reference_split`` (what calibration saw).
    library_all: bool = True
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
    shortest = min_called_bases(ScoringSettings.kmer_k)  # what the field runtime aligns
    for fragment in options.calibration_fragments:
        if fragment >= shortest:
            continue
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


# --------------------------------------------------------------------------- the pipeline
def export_bundle(options: ExportOptions) -> dict:
    """Run every stage (:data:`hir_edge.export.stages.STAGES`); returns the manifest written."""
    import shutil

    from hir_edge.models import load_model
    from hir_edge.taxonomy import Taxonomy

    options = validate(options)
    total = Stopwatch()
    teacher = load_model(options.checkpoint).eval()
    taxonomy = Taxonomy.load(options.checkpoint / "taxonomy.json")
    calib_path = Path(options.calib_data)
    work = options.output.parent / f".{options.output.name}.work"
    if options.force and work.exists():
        shutil.rmtree(work)  # --force starts the distillation over too
    with atomic_dir(options.output, force=options.force) as out:
        ctx = ExportContext(
            options=options,
            teacher=teacher,
            taxonomy=taxonomy,
            calib_path=calib_path,
            out=out,
            work=work,
            with_dna=has_barcodes(calib_path, options.calib_split),
            quiet=options.quiet,
        )
        ctx.say(
            f"export {options.checkpoint} (preset {teacher.config.preset}, "
            f"d={teacher.embed_dim}, {sum(taxonomy.sizes().values())} taxa) → {options.output}; "
            f"calibration data {calib_path}"
        )
        for stage in STAGES:
            run_stage(stage, ctx)
    manifest = ctx.manifest
    size = sum(f["bytes"] for f in manifest["files"].values())
    usage = (
        "--fasta reads.fa --image photo.jpg" if "dna" in manifest["graphs"] else "--image photos/"
    )
    ctx.say(
        f"bundle written to {options.output} ({human_size(size)}) in {total}; next:\n"
        f"  hir-edge info {options.output}\n"
        f"  hir-edge identify --bundle {options.output} {usage}"
    )
    shutil.rmtree(work, ignore_errors=True)
    return manifest
