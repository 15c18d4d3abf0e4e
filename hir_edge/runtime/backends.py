"""Inference backends: TensorRT engines, ONNX Runtime (CUDA or CPU), or torch for research.

Each backend turns model inputs into normalised embeddings: ``embed_images`` (pixels
[B, 3, S, S] float32), ``embed_dna`` (token ids and mask [B, T] int64) and ``fuse`` (two [B, d]
embeddings → fused [B, d] and gate [B, d]). ``select_backend("auto")`` picks the fastest one
this machine can run and says which. Nothing here imports torch unless the torch backend is
asked for.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from hir_edge.errors import BundleError, HirEdgeError
from hir_edge.runtime.bundle import Bundle, open_bundle

log = logging.getLogger(__name__)

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")
PRECISIONS = ("int8", "fp32")


class Backend(Protocol):
    name: str
    precision: str

    def embed_images(self, pixels: np.ndarray) -> np.ndarray: ...

    def embed_dna(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray: ...

    def fuse(self, image: np.ndarray, dna: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]: ...

    def describe(self) -> str: ...


# --------------------------------------------------------------------------- ONNX Runtime
class OnnxRuntimeBackend:
    """ONNX Runtime sessions over the bundle's graphs (INT8 by default, fp32 on request).

    The fusion head is always run in fp32: it is two small matrix products, where INT8 saves
    nothing and costs accuracy.
    """

    name = "onnxruntime"

    def __init__(
        self,
        bundle: Bundle,
        precision: str = "int8",
        device: str = "auto",
        threads: int | None = None,
    ):
        import onnxruntime as ort

        if precision not in PRECISIONS:
            raise HirEdgeError(f"unknown precision {precision!r}; choose int8 or fp32")
        self.bundle = bundle
        self.precision = precision
        available = ort.get_available_providers()
        use_cuda = device in ("auto", "cuda") and "CUDAExecutionProvider" in available
        if device == "cuda" and not use_cuda:
            raise HirEdgeError(
                "--device cuda: this onnxruntime has no CUDA provider (install onnxruntime-gpu)"
            )
        self.providers = (["CUDAExecutionProvider"] if use_cuda else []) + ["CPUExecutionProvider"]
        self.options = ort.SessionOptions()
        self.options.log_severity_level = 3
        # Each session (image, DNA, fusion) has its own thread pool; pools that spin-wait after
        # a run take the cores from the next session's run. Measured on 2 cores, paired
        # specimens through the INT8 graphs: 1.6-2x faster per specimen without spinning.
        self.options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            self.options.intra_op_num_threads = threads
        self._ort = ort
        self._sessions: dict[str, object] = {}
        self.fallbacks: set[str] = set()  # parts run in fp32 because no graph at `precision`

    def _session(self, part: str):
        if part not in self._sessions:
            precision = "fp32" if part == "fusion" else self.precision
            path = self.bundle.graph_path(part, precision)
            if path is None and precision == "int8":  # an fp32-only bundle: run fp32, say so
                path = self.bundle.graph_path(part, "fp32")
                if part != "fusion":
                    self.fallbacks.add(part)
            if path is None and self.bundle.graph_path(part, "int8") is not None:
                raise BundleError(
                    f"{self.bundle.root}: the bundle ships its {part} graph in INT8 only "
                    "(exported without --keep-fp32); use --precision int8"
                )
            if path is None:
                raise BundleError(f"{self.bundle.root}: the bundle has no {part} graph")
            self._sessions[part] = self._ort.InferenceSession(
                str(path), self.options, providers=self.providers
            )
        return self._sessions[part]

    def embed_images(self, pixels: np.ndarray) -> np.ndarray:
        return self._session("image").run(
            None, {"image": np.ascontiguousarray(pixels, np.float32)}
        )[0]

    # Reads per DNA-encoder run: the attention scores of 16 padded reads stay in cache where
    # 32 do not (faster per read on this machine's 2 cores); any size from 2 up gives the
    # same embeddings bit for bit.
    DNA_CHUNK = 16
    # A graph whose token axis can be cut (``token_multiple``) runs each read at its own length
    # rounded up to this many merged tokens: the padding of a 150-bp read is most of a 704-token
    # input, and a read always runs at the same length, so its embedding never depends on the
    # other reads of its batch.
    TOKEN_BUCKET = 16

    def embed_dna(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        graph = self.bundle.manifest.graphs.get("dna")
        multiple = graph.token_multiple if graph is not None else None
        if not multiple or not len(input_ids):
            return self._embed_dna_chunks(input_ids, attention_mask)
        full, step = input_ids.shape[1], multiple * self.TOKEN_BUCKET
        # past the last unmasked token the input says nothing: masked out of attention, the
        # merge and the pooling
        last = full - np.argmax(attention_mask[:, ::-1] > 0, axis=1)
        last[~(attention_mask > 0).any(axis=1)] = 1
        cut = np.minimum(-(-last // step) * step, full)
        out: np.ndarray | None = None
        for length in np.unique(cut):
            rows = np.flatnonzero(cut == length)
            part = self._embed_dna_chunks(input_ids[rows, :length], attention_mask[rows, :length])
            if out is None:
                out = np.empty((len(input_ids), part.shape[1]), part.dtype)
            out[rows] = part
        return out

    def _embed_dna_chunks(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        if len(input_ids) > self.DNA_CHUNK:
            step = self.DNA_CHUNK
            return np.concatenate(
                [
                    self._embed_dna_chunks(input_ids[i : i + step], attention_mask[i : i + step])
                    for i in range(0, len(input_ids), step)
                ]
            )
        # A lone read is run as two identical rows: ONNX Runtime's INT8 product of one row
        # takes another kernel, which rounds a few reads one quantum differently: a read's
        # answer would then depend on whether it came alone.
        lone = len(input_ids) == 1
        feed = {
            "input_ids": np.repeat(input_ids, 2, axis=0) if lone else input_ids,
            "attention_mask": np.repeat(attention_mask, 2, axis=0) if lone else attention_mask,
        }
        feed = {name: value.astype(np.int64) for name, value in feed.items()}
        out = self._session("dna").run(None, feed)[0]
        return out[:1] if lone else out

    def fuse(self, image: np.ndarray, dna: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """GatedFusion, or the normalised mean (and no gate) for a bundle without the head."""
        if not self.bundle.has_part("fusion"):
            avg = image + dna
            return avg / np.maximum(np.linalg.norm(avg, axis=1, keepdims=True), 1e-12), None
        feed = {
            "image_embedding": image.astype(np.float32),
            "dna_embedding": dna.astype(np.float32),
        }
        fused, gate = self._session("fusion").run(None, feed)
        return fused, gate

    def describe(self) -> str:
        device = "CUDA" if self.providers[0] == "CUDAExecutionProvider" else "CPU"
        missing = [
            p
            for p in ("image", "dna")
            if self.bundle.has_part(p) and self.bundle.graph_path(p, self.precision) is None
        ]
        note = f" ({', '.join(missing)} in fp32: no {self.precision} graph)" if missing else ""
        return f"ONNX Runtime {self._ort.__version__} on {device}, {self.precision}{note}"


# --------------------------------------------------------------------------- TensorRT
def engine_tag() -> dict:
    """What an engine is tied to: this GPU, its compute capability, this TensorRT."""
    import tensorrt as trt
    from cuda.bindings import runtime as cudart  # cuda-python

    err, props = cudart.cudaGetDeviceProperties(0)
    if int(err) != 0:
        raise HirEdgeError("TensorRT is installed but no CUDA device could be queried")
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return {
        "gpu": name.strip("\x00"),
        "compute_capability": f"{props.major}.{props.minor}",
        "tensorrt": trt.__version__,
    }


def engine_files(bundle: Bundle, precision: str) -> dict[str, Path]:
    """Engines in the bundle for ``precision`` whose tag matches this device (else an error)."""
    engines = bundle.manifest.engines
    if not engines:
        return {}
    tag = engine_tag()
    out = {}
    for part, entry in engines.items():
        if precision not in entry:
            continue
        info = entry[precision]
        built = {k: info["tag"].get(k) for k in ("gpu", "compute_capability", "tensorrt")}
        if built != tag:
            raise BundleError(
                f"{bundle.root}: the {part} engine was built for {info['tag']} but this machine is "
                f"{tag}; rebuild it here with: hir-edge export --engine --bundle {bundle.root}"
            )
        out[part] = bundle.root / info["file"]
    return out


class TensorRTBackend:
    """TensorRT engines built on this device from the bundle's Q/DQ ONNX (``export --engine``)."""

    name = "tensorrt"

    def __init__(self, bundle: Bundle, precision: str = "int8"):
        import tensorrt as trt
        from cuda.bindings import runtime as cudart

        self.bundle, self.precision = bundle, precision
        files = engine_files(bundle, precision)
        if not files:
            raise HirEdgeError(
                f"{bundle.root}: no TensorRT engine for {precision}; build one on this device "
                f"with: hir-edge export --engine --bundle {bundle.root}"
            )
        self._trt, self._cudart = trt, cudart
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engines = {
            p: runtime.deserialize_cuda_engine(f.read_bytes()) for p, f in files.items()
        }
        self._contexts = {p: e.create_execution_context() for p, e in self._engines.items()}
        # A part without an engine runs in ONNX Runtime; batches are cut to the engine's profile.
        self._onnx = OnnxRuntimeBackend(bundle, precision, "auto")
        self.max_batch = {
            p: int(bundle.manifest.engines[p][precision]["tag"].get("max_batch", 64)) for p in files
        }

    def _run(self, part: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        trt, cudart = self._trt, self._cudart
        engine, context = self._engines[part], self._contexts[part]
        buffers, outputs = [], {}
        try:
            for i in range(engine.num_io_tensors):
                name = engine.get_tensor_name(i)
                if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                    array = np.ascontiguousarray(feeds[name])
                    if not context.set_input_shape(name, array.shape):
                        raise HirEdgeError(
                            f"TensorRT {part} engine rejects input {name} {array.shape}"
                        )
                    err, ptr = cudart.cudaMalloc(array.nbytes)
                    _check_cuda(err, "cudaMalloc")
                    cudart.cudaMemcpy(
                        ptr,
                        array.ctypes.data,
                        array.nbytes,
                        cudart.cudaMemcpyKind.cudaMemcpyHostToDevice,
                    )
                    buffers.append(ptr)
                    context.set_tensor_address(name, ptr)
            for i in range(engine.num_io_tensors):
                name = engine.get_tensor_name(i)
                if engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
                    shape = tuple(context.get_tensor_shape(name))
                    host = np.empty(shape, dtype=trt.nptype(engine.get_tensor_dtype(name)))
                    err, ptr = cudart.cudaMalloc(host.nbytes)
                    _check_cuda(err, "cudaMalloc")
                    buffers.append(ptr)
                    context.set_tensor_address(name, ptr)
                    outputs[name] = (host, ptr)
            _, stream = cudart.cudaStreamCreate()
            context.execute_async_v3(stream)
            cudart.cudaStreamSynchronize(stream)
            cudart.cudaStreamDestroy(stream)
            for host, ptr in outputs.values():
                cudart.cudaMemcpy(
                    host.ctypes.data, ptr, host.nbytes, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
                )
        finally:
            for ptr in buffers:
                cudart.cudaFree(ptr)
        return [host for host, _ in outputs.values()]

    def _chunked(self, part: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        n = len(next(iter(feeds.values())))
        step = self.max_batch[part]
        parts = [
            self._run(part, {k: v[i : i + step] for k, v in feeds.items()})
            for i in range(0, n, step)
        ]
        return [np.concatenate(outs) for outs in zip(*parts)]

    def embed_images(self, pixels: np.ndarray) -> np.ndarray:
        if "image" not in self._engines:
            return self._onnx.embed_images(pixels)
        return self._chunked("image", {"image": pixels.astype(np.float32)})[0]

    def embed_dna(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        if "dna" not in self._engines:
            return self._onnx.embed_dna(input_ids, attention_mask)
        feeds = {
            "input_ids": input_ids.astype(np.int64),
            "attention_mask": attention_mask.astype(np.int64),
        }
        return self._chunked("dna", feeds)[0]

    def fuse(self, image: np.ndarray, dna: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if "fusion" not in self._engines:
            return self._onnx.fuse(image, dna)
        fused, gate = self._chunked("fusion", {"image_embedding": image, "dna_embedding": dna})
        return fused, gate

    def describe(self) -> str:
        return f"TensorRT {self._trt.__version__}, {self.precision} engines"


def _check_cuda(err, call: str) -> None:
    if int(err) != 0:
        raise HirEdgeError(f"CUDA error in {call}: {err}")


# --------------------------------------------------------------------------- torch
class TorchBackend:
    """A training checkpoint run in torch (research: compare against the exported graphs)."""

    name = "torch"

    def __init__(self, model, device: str = "cpu"):
        import torch

        self._torch = torch
        self.model = model.to(device).eval()
        self.device = device
        self.precision = "fp32"

    def _np(self, tensor) -> np.ndarray:
        return tensor.float().cpu().numpy()

    def embed_images(self, pixels: np.ndarray) -> np.ndarray:
        with self._torch.no_grad():
            return self._np(self.model.encode_image(self._torch.from_numpy(pixels).to(self.device)))

    def embed_dna(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        t = self._torch
        with t.no_grad():
            return self._np(
                self.model.encode_dna(
                    t.from_numpy(input_ids).to(self.device),
                    t.from_numpy(attention_mask).to(self.device),
                )
            )

    def fuse(self, image: np.ndarray, dna: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = self._torch
        with t.no_grad():
            fused, gate = self.model.fuse(
                t.from_numpy(image).to(self.device), t.from_numpy(dna).to(self.device)
            )
        return self._np(fused), None if self.model.fusion is None else self._np(gate)

    def describe(self) -> str:
        return f"torch {self._torch.__version__} on {self.device}, fp32 (research)"


# --------------------------------------------------------------------------- selection
def tensorrt_available() -> bool:
    try:
        import tensorrt  # noqa: F401
        from cuda.bindings import runtime  # noqa: F401
    except ImportError:
        return False
    return True


def select_backend(
    bundle: Bundle,
    backend: str = "auto",
    precision: str = "int8",
    device: str = "auto",
    threads: int | None = None,
) -> Backend:
    """The backend asked for, or with ``auto`` the fastest available: TensorRT engines matching
    this GPU, then ONNX Runtime on CUDA, then ONNX Runtime on the CPU."""
    if backend not in BACKENDS:
        raise HirEdgeError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "tensorrt" or (
        backend == "auto" and device != "cpu" and tensorrt_available() and bundle.manifest.engines
    ):
        try:
            return TensorRTBackend(bundle, precision)
        except (HirEdgeError, ImportError) as err:
            if backend == "tensorrt":
                raise
            log.info("TensorRT not used: %s", err)
    if backend == "torch":
        raise HirEdgeError(
            "the torch backend runs a training checkpoint: pass its folder as --bundle"
        )
    if threads is None and os.environ.get("OMP_NUM_THREADS"):
        threads = int(os.environ["OMP_NUM_THREADS"])
    return OnnxRuntimeBackend(bundle, precision, device, threads)


def is_training_checkpoint(path: Path) -> bool:
    """A model folder written by training (RUN/best), not an exported bundle."""
    return (Path(path) / "model_config.json").is_file()


def open_for_inference(
    path: Path,
    backend: str = "auto",
    precision: str = "int8",
    device: str = "auto",
    trusted_key: str | None = None,
    say: Callable[[str], None] | None = None,
) -> tuple[Bundle, Backend]:
    """The bundle at ``path`` and the backend that runs it: what ``identify`` and ``bench``
    both open. A training checkpoint runs in torch at full precision; ``say`` (a function of
    one line) hears when that makes ``backend``/``precision`` moot."""
    if is_training_checkpoint(path):
        from hir_edge.runtime.checkpoint_bundle import bundle_from_checkpoint

        if say is not None and (backend not in ("auto", "torch") or precision != "int8"):
            say(
                f"note: {path} is a training checkpoint, run with torch at full precision; "
                "--backend and --precision apply to exported bundles only"
            )
        return bundle_from_checkpoint(path, device)
    bundle = open_bundle(path, trusted_key=trusted_key)
    return bundle, select_backend(bundle, backend, precision, device)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))
