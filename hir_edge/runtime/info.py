"""What a bundle is and what this machine can run it with (``hir-edge info`` and ``bench``)."""

from __future__ import annotations

from dataclasses import asdict

from hir_edge.io import human_size
from hir_edge.runtime.bundle import MODEL_CARD, Bundle
from hir_edge.signing import SIGNATURE


def bundle_summary(b: Bundle) -> dict:
    """The manifest's facts a user asks about, in plain types (``info --json``)."""
    m = b.manifest
    return {
        "name": b.name,
        "path": str(b.root),
        "format": m.format,
        "created": m.created or None,
        "hir_edge_version": m.hir_edge_version,
        "model": asdict(m.model),
        "size": human_size(b.size_bytes()),
        "graphs": {p: g.files for p, g in m.graphs.items()},
        "engines": {p: {k: v["tag"] for k, v in e.items()} for p, e in m.engines.items()},
        "references": None if b.references is None else len(b.references.ids),
        "branches": m.provenance.get("branches"),
        "scoring": {k: m.scoring.get(k) for k in ("target_precision", "thresholds", "novelty")},
        "signed": (b.root / SIGNATURE).is_file(),
        "backends_here": available_backends(b),
    }


def bundle_text(b: Bundle, summary: dict) -> str:
    """The model card, then one line per fact: what ``hir-edge info`` prints."""
    import json

    m = b.manifest
    lines = []
    card = b.root / MODEL_CARD
    if card.is_file():
        lines += [card.read_text(encoding="utf-8").rstrip(), ""]
    lines.append(
        f"bundle: {b.root} ({summary['size']}, format {m.format}, hir-edge "
        f"{m.hir_edge_version}{', signed' if summary['signed'] else ''})"
    )
    lines.append(f"taxa: {m.model.taxa}; reference specimens: {summary['references'] or 0}")
    for part, files in summary["graphs"].items():
        sizes = ", ".join(
            f"{p} {human_size((b.root / f).stat().st_size)}" for p, f in files.items()
        )
        lines.append(f"graph {part}: {sizes}")
    lines.append(
        "engines: "
        + (
            json.dumps(summary["engines"])
            if summary["engines"]
            else "none (build on the device with hir-edge export --engine --bundle ...)"
        )
    )
    lines.append("backends here: " + "; ".join(summary["backends_here"]))
    return "\n".join(lines)


def available_backends(bundle: Bundle) -> list[str]:
    """One line per usable backend/precision, in the order ``--backend auto`` tries them."""
    import onnxruntime as ort

    from hir_edge.runtime.backends import engine_files, tensorrt_available

    out = []
    if tensorrt_available() and bundle.manifest.engines:
        try:
            precision = bundle.manifest.model.default_precision
            if engine_files(bundle, precision):
                out.append(f"tensorrt ({precision} engines match this GPU)")
        except Exception as err:  # a mismatching engine: say why it will not run
            out.append(f"tensorrt: not usable ({err})")
    providers = ort.get_available_providers()
    precisions = sorted(
        {p for part in ("image", "dna") for p in bundle.precisions(part)} - {"int8-trt"}
    )
    for provider in providers:
        if provider in ("CUDAExecutionProvider", "CPUExecutionProvider"):
            device = "CUDA" if provider.startswith("CUDA") else "CPU"
            out.append(f"onnxruntime {ort.__version__} on {device} ({', '.join(precisions)})")
    return out
