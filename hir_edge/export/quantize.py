"""INT8: explicit Q/DQ quantisation of the exported graphs.

* CPU (``*.int8.onnx``): ONNX Runtime static quantisation in QDQ format — symmetric INT8
  weights per output channel, UINT8 activations calibrated on real specimens (U8S8: the fast
  path of ONNX Runtime's x86 kernels, and at least as accurate as S8S8). Conv, MatMul with a
  weight and the embedding Gather are quantised; Softmax, LayerNorm, GELU, the attention bias,
  attention's activation-by-activation products (:func:`activation_products`), the projection
  head (Gemm: :data:`QUANTISED_OPS`) and the final normalisation stay in float. So do
  convolutions that see three or fewer input channels per group — an image stem (RGB) and the
  depthwise convolutions of an EfficientNet: each output channel there has 9 to 27 weights
  and little arithmetic to save, and quantising them degrades the embedding most (what the
  INT8 bundle keeps of its teacher is in benchmarks/results/moths.md). The image graph's
  weights take 7 bits (``reduce_range``): x86 CPUs without VNNI multiply U8 activations by S8
  weights in pairs summed into 16 bits (``vpmaddubsw``), which saturates on a convolution's
  large folded weights: on this project's AVX2 machine the EU-Moths image graph lost species
  Top-1 to it, where a CPU with VNNI, or an ARM one, would not have (``moths.md`` gives the
  shipped graph's cosine to fp32). The DNA encoder's products stay in range, so its weights
  keep 8 bits.
* TensorRT (``*.int8-trt.onnx``): TensorRT's explicit quantisation needs symmetric INT8
  activations (zero point 0). With ``nvidia-modelopt`` installed, NVIDIA Model Optimizer places
  the Q/DQ nodes at export (``modelopt.onnx.quantization.quantize``, which also quantises
  residual adds TensorRT can fuse). Without it the bundle carries only the CPU graph, and the
  TensorRT one is derived from it where the engine is built (:func:`symmetric_graph`: each
  UINT8 activation range widened to the symmetric INT8 range that covers it), so one INT8
  graph per part ships. Model Optimizer is imported lazily: installing it swaps onnxruntime
  for onnxruntime-gpu, so it lives in its own extra.

TensorRT 10.1 deprecated implicit INT8 calibrators and TensorRT 11 removed them, so neither path
uses one: the scales live in the ONNX file.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# Gather: the k-mer embedding table is most of a small DNA encoder (cosine vs fp32 unchanged
# at 0.9999 on the demo DNA encoder, file 1.00 → 0.72 MB). Not Gemm: in these graphs a Gemm is
# the projection head on the pooled vector, one small product per specimen, and quantising it
# alone took the test export's DNA embedding to cosine 0.955 against fp32.
QUANTISED_OPS = ("Conv", "MatMul", "Gather")


class _Feeds:
    """onnxruntime CalibrationDataReader over a list of input dicts."""

    def __init__(self, feeds: Sequence[dict[str, np.ndarray]]):
        self._feeds = list(feeds)
        self._iter: Iterator | None = None

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._iter is None:
            self._iter = iter(self._feeds)
        return next(self._iter, None)

    def rewind(self) -> None:
        self._iter = None


def quantize_onnxruntime(
    fp32_path: Path,
    int8_path: Path,
    feeds: Sequence[dict[str, np.ndarray]],
    method: str = "minmax",
    symmetric_activations: bool = False,
    reduce_range: bool = False,
) -> None:
    """Static QDQ INT8 calibrated on ``feeds`` (a list of input batches): U8S8 for the CPU,
    or symmetric S8S8 (``symmetric_activations``) for TensorRT; ``reduce_range``: weights in
    7 bits (see the module docstring)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not feeds:
        raise ValueError("INT8 calibration needs at least one batch of inputs")
    methods = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }
    reader = type("Reader", (_Feeds, CalibrationDataReader), {})(feeds)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        import onnx

        graph = onnx.load(str(prepared))
        kept_float = narrow_convolutions(graph) + activation_products(graph)
        quantize_static(
            str(prepared),
            str(int8_path),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8 if symmetric_activations else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(QUANTISED_OPS),
            nodes_to_exclude=kept_float,
            calibrate_method=methods[method],
            reduce_range=reduce_range,
            extra_options={
                "ActivationSymmetric": symmetric_activations,
                "WeightSymmetric": True,
            },
        )
    from hir_edge.export.onnx_graphs import compact_file

    compact_file(int8_path)


def narrow_convolutions(model, max_channels: int = 3) -> list[str]:
    """Names of the Conv nodes with at most ``max_channels`` input channels per group."""
    shapes = {init.name: tuple(init.dims) for init in model.graph.initializer}
    names = []
    for node in model.graph.node:
        if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in shapes:
            continue
        weight = shapes[node.input[1]]  # [out, in / groups, kh, kw]
        if len(weight) >= 2 and weight[1] <= max_channels:
            names.append(node.name)
    return names


def activation_products(model) -> list[str]:
    """Names of the MatMul nodes whose inputs are both activations (no weight): attention's
    scores and weighted values. They stay in float: quantising them puts a quantise-dequantise
    pair on every [batch, heads, T, T] tensor, which on the CPU costs more than the INT8 product
    saves."""
    weights = {init.name for init in model.graph.initializer}
    return [
        node.name
        for node in model.graph.node
        if node.op_type == "MatMul" and not any(name in weights for name in node.input)
    ]


def symmetric_graph(int8_path: Path, out_path: Path) -> int:
    """A copy of a U8S8 QDQ graph whose activations are symmetric INT8 (what TensorRT reads).

    Each UINT8 activation quantiser (scale s, zero point z: range [−z·s, (255−z)·s]) becomes an
    INT8 one with zero point 0 and the scale max(z, 255−z)·s/127 that covers the same range;
    weights are already symmetric INT8. Returns the number of quantisers changed.
    """
    import onnx
    from onnx import TensorProto, numpy_helper

    model = onnx.load(str(int8_path))
    inits = {init.name: init for init in model.graph.initializer}
    _fold_unsigned_constants(model, inits)
    changed = set()
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or len(node.input) < 3:
            continue
        scale_name, zero_name = node.input[1], node.input[2]
        zero = inits.get(zero_name)
        if zero is None or zero.data_type != TensorProto.UINT8 or zero_name in changed:
            continue
        if scale_name in changed:
            raise ValueError(f"{int8_path}: scale {scale_name} is shared by two zero points")
        z = numpy_helper.to_array(zero).astype(np.float64)
        s = numpy_helper.to_array(inits[scale_name]).astype(np.float64)
        wide = np.maximum(z, 255.0 - z) * s / 127.0
        inits[scale_name].CopyFrom(numpy_helper.from_array(wide.astype(np.float32), scale_name))
        inits[zero_name].CopyFrom(numpy_helper.from_array(np.zeros_like(z, np.int8), zero_name))
        changed |= {zero_name, scale_name}
    onnx.save(model, str(out_path))
    return len(changed) // 2


def _fold_unsigned_constants(model, inits: dict) -> None:
    """Dequantize stored UINT8 tensors (an embedding table quantised for Gather) into float
    constants: TensorRT reads only zero-centred INT8, and such a table is data, not maths."""
    from onnx import TensorProto, numpy_helper

    keep = []
    for node in model.graph.node:
        data = inits.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if data is None or data.data_type != TensorProto.UINT8 or len(node.input) < 3:
            keep.append(node)
            continue
        q = numpy_helper.to_array(data).astype(np.float32)
        scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
        zero = numpy_helper.to_array(inits[node.input[2]]).astype(np.float32)
        if scale.ndim == 1:  # per channel along the node's axis (default 1)
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1) % q.ndim
            shape = [1] * q.ndim
            shape[axis] = -1
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        model.graph.initializer.append(numpy_helper.from_array((q - zero) * scale, node.output[0]))
    del model.graph.node[:]
    model.graph.node.extend(keep)
    used = {name for node in model.graph.node for name in node.input}
    unused = [init for init in model.graph.initializer if init.name not in used]
    for init in unused:
        model.graph.initializer.remove(init)
        inits.pop(init.name, None)


def modelopt_available() -> bool:
    try:
        import modelopt.onnx.quantization  # noqa: F401
    except ImportError:
        return False
    return True


def quantize_modelopt(
    fp32_path: Path, int8_path: Path, feeds: Sequence[dict[str, np.ndarray]]
) -> None:
    """NVIDIA Model Optimizer's INT8 Q/DQ placement for TensorRT (needs ``hir-edge[modelopt]``)."""
    from modelopt.onnx.quantization import quantize

    names = list(feeds[0])
    calibration = {name: np.concatenate([f[name] for f in feeds]) for name in names}
    quantize(
        onnx_path=str(fp32_path),
        quantize_mode="int8",
        calibration_data=calibration,
        calibration_method="max",
        output_path=str(int8_path),
        calibration_eps=["cpu"],
    )
    from hir_edge.export.onnx_graphs import compact_file

    compact_file(int8_path)


def int8_cosine(
    fp32_path: Path, int8_path: Path, feeds: Sequence[dict[str, np.ndarray]]
) -> dict[str, float]:
    """Cosine between the fp32 and INT8 graphs' first output on held-out inputs."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    fp32 = ort.InferenceSession(str(fp32_path), options, providers=["CPUExecutionProvider"])
    int8 = ort.InferenceSession(str(int8_path), options, providers=["CPUExecutionProvider"])
    cos = []
    for feed in feeds:
        a, b = fp32.run(None, feed)[0], int8.run(None, feed)[0]
        cos.append((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12))
    values = np.concatenate(cos)
    return {
        "mean_cosine": float(values.mean()),
        "min_cosine": float(values.min()),
        "p01_cosine": float(np.quantile(values, 0.01)),
    }
