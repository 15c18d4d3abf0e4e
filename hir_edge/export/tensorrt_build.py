"""TensorRT engines from the bundle's Q/DQ ONNX, built on the device that will run them.

Engines are not portable between GPUs or TensorRT versions, so the bundle ships ONNX and an
engine is built where it runs (``hir-edge export --engine --bundle B`` on the Jetson). Each
engine gets an optimisation profile over the batch axis, INT8 from the explicit Q/DQ scales,
FP16 for the layers left in float where the GPU has fast FP16 (TensorRT 10; TensorRT 11 takes
precision from the network's types and has no such flags), and a timing cache kept beside it so
a rebuild takes seconds. The engine is tagged with the GPU name, compute capability and
TensorRT version; the runtime refuses a mismatching engine instead of running it.

Without TensorRT (a laptop, CI) the stage says so and prints the ``trtexec`` command to run on
the device instead. This module is written against the documented TensorRT 10 Python API and
kept thin; it cannot be exercised on a machine without TensorRT.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

OPT_BATCH = 8


def _shapes(spec_inputs: dict[str, list], batch: int) -> dict[str, tuple[int, ...]]:
    return {
        name: tuple(batch if d == "batch" else int(d) for d in dims)
        for name, dims in spec_inputs.items()
    }


def trtexec_command(
    onnx_path: Path,
    engine_path: Path,
    spec_inputs: dict[str, list],
    precision: str,
    max_batch: int = 64,
) -> str:
    """The equivalent ``trtexec`` line, to run on the target device."""

    def fmt(batch: int) -> str:
        return ",".join(
            f"{n}:{'x'.join(map(str, s))}" for n, s in _shapes(spec_inputs, batch).items()
        )

    flags = "--int8 --fp16" if precision == "int8" else "--fp16"
    return (
        f"trtexec --onnx={onnx_path} --saveEngine={engine_path} {flags} "
        f"--minShapes={fmt(1)} --optShapes={fmt(OPT_BATCH)} --maxShapes={fmt(max_batch)} "
        f"--timingCacheFile={engine_path.with_suffix('.cache')}"
    )


def build_engine(
    onnx_path: Path,
    engine_path: Path,
    spec_inputs: dict[str, list],
    precision: str,
    max_batch: int = 64,
) -> dict:
    """Build and serialise one engine; returns its device tag."""
    import tensorrt as trt

    from hir_edge.errors import HirEdgeError
    from hir_edge.io import atomic_write_bytes
    from hir_edge.runtime.backends import engine_tag

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise HirEdgeError(f"{onnx_path}: TensorRT could not parse it ({errors})")
    config = builder.create_builder_config()
    if precision == "int8" and hasattr(trt.BuilderFlag, "INT8"):
        config.set_flag(trt.BuilderFlag.INT8)
    if hasattr(trt.BuilderFlag, "FP16") and getattr(builder, "platform_has_fast_fp16", True):
        config.set_flag(trt.BuilderFlag.FP16)  # fallback for layers without Q/DQ
    profile = builder.create_optimization_profile()
    lo, opt, hi = (_shapes(spec_inputs, b) for b in (1, OPT_BATCH, max_batch))
    for name in spec_inputs:
        profile.set_shape(name, lo[name], opt[name], hi[name])
    config.add_optimization_profile(profile)
    cache_path = engine_path.with_suffix(".cache")
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise HirEdgeError(f"{onnx_path}: TensorRT failed to build an engine (see its log above)")
    atomic_write_bytes(engine_path, bytes(serialized))
    atomic_write_bytes(cache_path, bytes(config.get_timing_cache().serialize()))
    return {**engine_tag(), "max_batch": max_batch}
