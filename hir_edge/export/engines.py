"""Add TensorRT engines to an existing bundle, on the device that will run them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hir_edge.errors import HirEdgeError
from hir_edge.export.manifest import finalize_manifest
from hir_edge.export.tensorrt_build import build_engine, trtexec_command
from hir_edge.progress import Stopwatch
from hir_edge.runtime.backends import tensorrt_available
from hir_edge.runtime.bundle import MANIFEST, open_bundle


def derive_tensorrt_graphs(root: Path, graphs: dict) -> bool:
    """Write the symmetric INT8 graph TensorRT reads beside each CPU INT8 graph that has none
    (:func:`hir_edge.export.quantize.symmetric_graph`) and list it in ``graphs``; True when
    one was added (the manifest must then be finalised again)."""
    from hir_edge.export.quantize import symmetric_graph

    added = False
    for part, graph in graphs.items():
        files = graph["files"]
        if "int8" in files and "int8-trt" not in files:
            target = f"{part}.int8-trt.onnx"
            symmetric_graph(root / files["int8"], root / target)
            files["int8-trt"] = target
            added = True
    return added


def engine_source(graph: dict, precision: str) -> str:
    """The ONNX file an engine of ``precision`` is built from: the symmetric Q/DQ graph for
    INT8 (a part with none, the small fusion head, is built from its fp32 graph)."""
    files = graph["files"]
    if precision == "int8":
        return files.get("int8-trt") or files["fp32"]
    return files.get(precision) or files["fp32"]


def add_engines(bundle_path: Path, device_name: str | None = None, quiet: bool = False) -> dict:
    """Build one engine per graph (INT8 when the bundle has it), tag it, update the manifest.

    Without TensorRT this raises with the ``trtexec`` commands that do the same on the device.
    """
    bundle = open_bundle(bundle_path)
    if bundle._tmp is not None:
        raise HirEdgeError(f"{bundle_path}: extract the .tar first; engines are added to a folder")
    manifest = bundle.manifest.to_dict()  # the form finalize_manifest checks and writes
    precision = bundle.manifest.model.default_precision
    root = bundle.root
    if precision == "int8" and derive_tensorrt_graphs(root, manifest["graphs"]):
        finalize_manifest(root, manifest)
    if not tensorrt_available():
        lines = []
        for part, graph in manifest["graphs"].items():
            source = engine_source(graph, precision)
            lines.append(
                trtexec_command(
                    Path(source),
                    Path("engines") / f"{part}.{precision}.plan",
                    graph["inputs"],
                    precision,
                )
            )
        raise HirEdgeError(
            "TensorRT is not installed here (pip install 'hir-edge[trt]', or JetPack's "
            "python3-libnvinfer); "
            "the same engines can be built in the bundle folder with:\n  " + "\n  ".join(lines)
        )
    clock = Stopwatch()
    engines = {}
    (root / "engines").mkdir(exist_ok=True)
    for part, graph in manifest["graphs"].items():
        source = engine_source(graph, precision)
        target = root / "engines" / f"{part}.{precision}.plan"
        tag = build_engine(root / source, target, graph["inputs"], precision)
        if device_name:
            tag = {**tag, "device_name": device_name}
        engines[part] = {precision: {"file": f"engines/{target.name}", "tag": tag, "onnx": source}}
        if not quiet:
            print(f"tensorrt {part}: built from {source} → {target.name} ({tag})", file=sys.stderr)
    manifest["engines"] = engines
    finalize_manifest(root, manifest)
    if not quiet:
        print(f"engines added to {root} in {clock}; next: hir-edge bench {root}", file=sys.stderr)
    return json.loads((root / MANIFEST).read_text())
