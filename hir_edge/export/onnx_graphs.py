"""ONNX graphs of the three field parts: image encoder, DNA encoder, GatedFusion.

Exported with torch's current (dynamo) exporter at opset 18, which ONNX Runtime and
TensorRT 10 both parse (opset 20's fused Gelu is avoided: it decomposes to Erf at 18). Each
graph ends in the L2 normalisation, so the runtime compares embeddings with a plain dot product.
The batch axis is dynamic. The DNA graph's token axis is recorded at the tokenizer's
max_length, so a TensorRT engine needs one optimisation profile axis only; the project's own
encoder also takes any multiple of its merge width below it (``token_multiple``), which ONNX
Runtime uses to run a short read without its padding.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

OPSET = 18
log = logging.getLogger(__name__)


class ImageGraph(nn.Module):
    """image [B, 3, S, S] (normalised pixels) → image_embedding [B, d] (unit norm)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(image)


class DnaGraph(nn.Module):
    """input_ids, attention_mask [B, T] int64 → dna_embedding [B, d] (unit norm)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model.encode_dna(input_ids, attention_mask)


class FusionGraph(nn.Module):
    """image_embedding, dna_embedding [B, d] → fused_embedding [B, d], gate [B, d]."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image_embedding: torch.Tensor, dna_embedding: torch.Tensor):
        return self.model.fuse(image_embedding, dna_embedding)


@dataclass(frozen=True)
class GraphSpec:
    """Names and shapes of one exported graph (recorded in the bundle manifest).

    ``token_multiple``: the DNA graph's token axis also takes any multiple of it up to the
    shape given (None: fixed), so the field runtime can cut a short read's padding.
    """

    name: str
    inputs: dict[str, list]  # input name -> shape with "batch" for the dynamic axis
    outputs: dict[str, list]
    token_multiple: int | None = None


def token_multiple(model) -> int | None:
    """The project's DNA encoder masks padding out of attention, the merge and pooling, so its
    token axis can be cut at any multiple of the merge width; other towers keep a fixed one."""
    from hir_edge.models.dnabert2 import DNABert2Model

    backbone = getattr(getattr(model, "dna", None), "backbone", None)
    if not isinstance(backbone, DNABert2Model):
        return None
    return backbone.merge.kernel_size[0] if backbone.merge is not None else 1


def specs(model) -> dict[str, GraphSpec]:
    d = model.embed_dim
    size = model.preprocess.image_size
    tokens = model.dna_tokenizer.max_length
    out = {
        "image": GraphSpec(
            "image", {"image": ["batch", 3, size, size]}, {"image_embedding": ["batch", d]}
        ),
        "dna": GraphSpec(
            "dna",
            {"input_ids": ["batch", tokens], "attention_mask": ["batch", tokens]},
            {"dna_embedding": ["batch", d]},
            token_multiple(model),
        ),
    }
    if model.fusion is not None:
        out["fusion"] = GraphSpec(
            "fusion",
            {"image_embedding": ["batch", d], "dna_embedding": ["batch", d]},
            {"fused_embedding": ["batch", d], "gate": ["batch", d]},
        )
    return out


def _example(spec: GraphSpec, batch: int = 2) -> tuple[torch.Tensor, ...]:
    tensors = []
    for name, shape in spec.inputs.items():
        dims = [batch if s == "batch" else s for s in shape]
        if name in ("input_ids", "attention_mask"):
            tensors.append(torch.ones(dims, dtype=torch.long))
        else:
            tensors.append(torch.nn.functional.normalize(torch.randn(dims), dim=-1))
    return tuple(tensors)


def export_graph(model, part: str, path: Path, metadata: dict[str, str] | None = None) -> GraphSpec:
    """Export one part of ``model`` (eval mode) to ONNX at ``path`` and check it."""
    import onnx

    spec = specs(model)[part]
    module = {"image": ImageGraph, "dna": DnaGraph, "fusion": FusionGraph}[part](model).eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    dynamic = {name: {0: batch} for name in spec.inputs}
    if spec.token_multiple:  # DNA: any multiple of the merge width up to max_length
        tokens = spec.inputs["input_ids"][1]
        groups = torch.export.Dim("groups", min=2, max=tokens // spec.token_multiple)
        dynamic = {name: {0: batch, 1: spec.token_multiple * groups} for name in spec.inputs}
    # The exporter narrates each step on stdout and warns about axis names; the stage's own
    # one-line log is what the user needs, so that chatter is kept out of the terminal.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            _example(spec),
            str(path),
            input_names=list(spec.inputs),
            output_names=list(spec.outputs),
            dynamic_shapes=dynamic,
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    graph = onnx.load(str(path))
    for key, value in (metadata or {}).items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.checker.check_model(graph)
    compact(graph)
    onnx.save(graph, str(path))
    return spec


def compact(graph) -> None:
    """Drop what a runtime never reads: per-node stack traces and doc strings, and the
    intermediate shape annotations (``value_info``, re-inferred on load). On the tiny models
    that is 40% of an INT8 file."""
    for node in graph.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    del graph.graph.value_info[:]


def compact_file(path: Path) -> None:
    import onnx

    graph = onnx.load(str(path))
    compact(graph)
    onnx.save(graph, str(path))


def parity(model, part: str, path: Path, inputs: tuple[np.ndarray, ...]) -> dict[str, float]:
    """Cosine and max abs difference between ONNX Runtime and torch on the same inputs."""
    import onnxruntime as ort

    spec = specs(model)[part]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = dict(zip(spec.inputs, inputs))
    got = session.run(None, feed)[0]
    module = {"image": ImageGraph, "dna": DnaGraph, "fusion": FusionGraph}[part](model).eval()
    with torch.no_grad():
        ref = module(*(torch.from_numpy(x) for x in inputs))
        ref = (ref[0] if isinstance(ref, tuple) else ref).numpy()
    cos = (got * ref).sum(axis=1) / (
        np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1) + 1e-12
    )
    return {"min_cosine": float(cos.min()), "max_abs_diff": float(np.abs(got - ref).max())}
