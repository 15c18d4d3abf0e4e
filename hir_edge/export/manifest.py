"""The bundle manifest (provenance, checksums) and its Markdown model card."""

from __future__ import annotations

import datetime as _dt
import json
import platform
from pathlib import Path

from hir_edge import __version__
from hir_edge.data.hdf5 import read_attrs
from hir_edge.io import atomic_write_text, sha256_file
from hir_edge.runtime.bundle import (
    FORMAT,
    MANIFEST,
    MODEL_CARD,
    PROMPTS,
    REFERENCES,
    TAXONOMY,
    Manifest,
)
from hir_edge.signing import SIGNATURE


def build_manifest(
    options, teacher, field_model, taxonomy, graphs, calib_path: Path, precision: str
) -> dict:
    attrs = read_attrs(calib_path)
    synth = attrs.get("synth") if isinstance(attrs.get("synth"), dict) else {}
    source = str(synth.get("source", "")) if synth else ""
    generated = source == "generated"
    dna_kind = "synthetic" if generated else ("real" if source.startswith("BOLD") else "unknown")
    image_kind = "synthetic" if synth else "unknown"
    image_source = "drawn photos (hir-edge data synth)" if synth else str(calib_path)
    packed = not synth and attrs.get("source")  # `hir-edge data pack`: a table of real photos
    if packed:
        image_kind, image_source = "real", f"photographs listed in {attrs['source']}"
        dna_kind, source = "real", f"barcodes listed in {attrs['source']}"
    if "dna" not in graphs:
        dna_kind, source = "none", "no barcodes in the training data: photos only"
    teacher_sha = sha256_file(options.checkpoint / "model.safetensors")
    run_config = None
    for folder in (options.checkpoint.parent, options.checkpoint.parent.parent):
        if (folder / "config.yaml").is_file():
            run_config = (folder / "config.yaml").read_text(encoding="utf-8")
            break
    return {
        "format": FORMAT,
        "name": options.name or options.output.stem,
        "description": options.description,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "hir_edge_version": __version__,
        "model": {
            "teacher_preset": teacher.config.preset,
            "student_preset": options.student,
            "embed_dim": field_model.embed_dim,
            "ranks": list(taxonomy.ranks),
            "taxa": taxonomy.sizes(),
            "parameters": field_model.num_parameters(),
            "default_precision": precision,
        },
        "preprocess": field_model.preprocess.to_dict(),
        "dna_tokenizer": field_model.config.dna.tokenizer,
        "graphs": graphs,
        "provenance": {
            "teacher_checkpoint": str(options.checkpoint),
            "teacher_sha256": teacher_sha,
            "training_run_config": run_config,
            "calibration_data": {"path": str(calib_path), "attrs": attrs},
            "branches": {
                "dna": {"kind": dna_kind, "source": source or str(calib_path)},
                "image": {"kind": image_kind, "source": image_source},
            },
            "export_command": " ".join(options.argv) if options.argv else None,
            "host": platform.platform(),
        },
        "files": {},  # filled by finalize_manifest once every file is written
    }


def bundle_files(root: Path, manifest: dict) -> list[str]:
    """The files a bundle consists of: the fixed ones, its graphs and its engines. Anything
    else lying in the folder is not part of it (and is not blessed with a checksum)."""
    names = {TAXONOMY, PROMPTS}
    names |= {name for name in (MODEL_CARD, REFERENCES) if (root / name).is_file()}
    for graph in manifest.get("graphs", {}).values():
        names |= set(graph["files"].values())
    for entry in manifest.get("engines", {}).values():
        names |= {info["file"] for info in entry.values()}
    return sorted(names)


def finalize_manifest(root: Path, manifest: dict) -> None:
    """Record the size and sha256 of every bundle file and write the manifest atomically, once
    it reads back as a :class:`~hir_edge.runtime.bundle.Manifest` (the one check of every
    manifest hir-edge writes)."""
    files = {}
    for rel in bundle_files(root, manifest):
        path = root / rel
        if not path.is_file():
            raise FileNotFoundError(f"{root}: bundle file {rel} was not written")
        files[rel] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    manifest["files"] = files
    Manifest.from_dict(json.loads(json.dumps(manifest, default=str)), root / MANIFEST)
    atomic_write_text(root / MANIFEST, json.dumps(manifest, indent=1, default=str))
    stale = root / SIGNATURE  # signed a manifest that no longer exists: sign again
    if stale.is_file():
        stale.unlink()


def model_card(manifest: dict) -> str:
    """The bundle's model card in Markdown: what it is, what it was trained on, how it measures."""
    m = manifest["model"]
    prov = manifest["provenance"]
    meas = manifest.get("measurements", {})
    b = prov["branches"]
    lines = [
        f"# {manifest['name']}",
        "",
        manifest.get("description") or "A hir-edge field bundle.",
        "",
        "## Model",
        f"- teacher preset `{m['teacher_preset']}`, "
        f"field model `{m['student_preset'] or m['teacher_preset']}` "
        f"({m['parameters']['total']:,} parameters), embedding dimension {m['embed_dim']}",
        f"- taxa: {m['taxa']}",
        f"- default precision: {m['default_precision']}",
        "",
        "## Training data",
        f"- DNA branch: {b['dna']['kind']} — {b['dna']['source']}",
        f"- image branch: {b['image']['kind']} — {b['image']['source']}",
        f"- teacher checkpoint sha256 {prov['teacher_sha256'][:16]}…",
        "",
        "## Measured at export",
    ]
    if "onnx_parity" in meas:
        lines.append(
            "- ONNX vs torch (min cosine): "
            + ", ".join(f"{k} {v['min_cosine']:.6f}" for k, v in meas["onnx_parity"].items())
        )
    if "int8_cosine" in meas:
        lines.append(
            "- INT8 vs fp32 (mean cosine): "
            + ", ".join(f"{k} {v['mean_cosine']:.4f}" for k, v in meas["int8_cosine"].items())
        )
    noise = manifest.get("scoring", {}).get("calibration_noise")
    scoring = manifest.get("scoring", {})
    one = scoring.get("calibration_fragment")  # bundles exported before several lengths
    fragments = scoring.get("calibration_fragments", [one] if one else [])
    copies = [f"their '{noise}'-degraded copies"] if noise else []
    if fragments:
        copies += [" and ".join(f"{n}-bp" for n in fragments) + " fragments of them"]
    for modality, v in manifest.get("scoring", {}).get("validation", {}).items():
        acc = ", ".join(f"{r} {a:.1f}%" for r, a in v["path_accuracy"].items() if a is not None)
        what = "; clean reads, " + " and ".join(copies) if copies and modality != "image" else ""
        lines.append(
            f"- validation ({modality}, n={v['n']}{what}): accuracy along the answer path {acc}"
        )
    calibrated = manifest.get("scoring", {}).get("calibrated_on")
    if calibrated:
        shipped = calibrated.get("library_shipped")
        lines.append(
            f"- thresholds calibrated on {calibrated['thresholds']}, with the library holding "
            f"{calibrated['library_then']}; "
            + (
                f"the shipped library holds every record: {', '.join(shipped)}"
                if shipped
                else f"the shipped library holds {calibrated['library_then']}"
            )
        )
        if calibrated.get("outgroups"):
            lines.append(
                "- read placement also fitted on outgroups: the barcodes of "
                f"{calibrated['outgroups']} whose taxa the library lacks (asked, never references)"
            )
    placement = manifest.get("scoring", {}).get("placement") or {}
    if "labelled_margin" in placement.get("features", ()):
        lines.append(
            "- read placement weighs a read's identity to its nearest reference against how far "
            "that reference's taxon reaches: its identity to the nearest barcode of another "
            "taxon at each rank, aligned at export over the shipped library (the calibration's "
            "over its own library, with each read's hidden taxon taken out)"
        )
    if placement.get("nested"):
        lines.append(
            "- read placement is nested: each rank's probability is raised to the highest of the "
            "finer ranks on the answer path (a read sure of its species is as sure of its order), "
            "and the thresholds were fitted on those probabilities"
        )
    open_set = manifest.get("scoring", {}).get("open_set")
    if open_set:
        lines += [
            "",
            "## Open-set calibration (reads of taxa the library lacks: hidden, or outgroups)",
            "",
            "| reads | n | answered at order / family / genus / species | right at that rank |",
            "|---|---|---|---|",
        ]
        for group, row in open_set.items():
            at = " / ".join(str(v) for v in row["answered_at"].values())
            right = row["precision_%"]
            lines.append(
                f"| {group.replace('|', ', ')} | {row['n']} | {at} | "
                + ("–" if right is None else f"{right:.1f}%")
                + " |"
            )
    lines += [
        "",
        "## Limits",
    ]
    if b["image"]["kind"] == "synthetic":
        lines.append(
            "- The image branch learned from procedurally drawn photos: it does not identify real "
            "photographs. `identify` warns when it is given one."
        )
    if b["dna"]["kind"] == "synthetic":
        lines.append(
            "- Every taxon is a generated demo taxon (names start with 'Demo'); this bundle "
            "demonstrates the pipeline and identifies nothing real."
        )
    if b["dna"]["kind"] == "none":
        lines.append(
            "- Photos only: the training data had no barcodes, so the bundle has no DNA branch "
            "and `identify` refuses reads."
        )
        return "\n".join(lines) + "\n"
    scoring = manifest.get("scoring", {})
    div = scoring.get("validation_read_divergence") or {}
    measured = (
        f" (validation reads of known species: median {100 * div['q50']:.2f}%, 99th percentile "
        f"{100 * div['q99']:.2f}%, {div['flagged_novel_%']:.1f}% flagged)"
        if div.get("q50") is not None
        else ""
    )
    lines.append(
        "- Species absent from the reference library cannot be named: a read whose estimated "
        f"divergence from its best barcode hit exceeds "
        f"{100 * scoring.get('novelty_divergence', 0.02):.1f}%{measured} is flagged as novel; "
        "so is a read of a lineage of a known species more than that far from all of its "
        "references. How far up its answer stops (genus, family, order or none) is decided by "
        "the open-set placement model above."
    )
    return "\n".join(lines) + "\n"
