"""Run a training checkpoint with torch as if it were a bundle (research: compare with exports).

The prompt bank is embedded by the checkpoint's own text tower; there is no reference library
and no fitted thresholds: the temperature is the model's contrastive 1/s and every rank's
threshold is 0.5. Only this module imports torch on the identify path, and only when asked.
"""

from __future__ import annotations

from pathlib import Path

from hir_edge.runtime.backends import TorchBackend
from hir_edge.runtime.bundle import FORMAT, Bundle, Manifest, ModelInfo
from hir_edge.taxonomy import Taxonomy


def bundle_from_checkpoint(folder: Path, device: str = "auto"):
    """(Bundle, TorchBackend) for a model folder written by training (RUN/best)."""
    import torch

    from hir_edge.models import load_model

    if device == "cuda" and not torch.cuda.is_available():
        from hir_edge.errors import HirEdgeError

        raise HirEdgeError("--device cuda: torch sees no CUDA device here")
    dev = "cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
    model = load_model(folder).to(dev).eval()
    taxonomy = Taxonomy.load(Path(folder) / "taxonomy.json")
    with torch.no_grad():
        banks = [
            model.embed_prompts(taxonomy.prompts(lv)).float().cpu().numpy()
            for lv in range(taxonomy.num_ranks)
        ]
    t = 1.0 / float(model.scale().item())
    n = taxonomy.num_ranks
    manifest = Manifest(
        format=FORMAT,
        name=f"checkpoint {folder}",
        model=ModelInfo(embed_dim=model.embed_dim, default_precision="fp32"),
        preprocess=model.preprocess.to_dict(),
        dna_tokenizer=model.config.dna.tokenizer,
        graphs={},
        scoring={
            "temperatures": {m: [t] * n for m in ("image", "dna", "fused")},
            "thresholds": {m: [0.5] * n for m in ("image", "dna", "fused")},
        },
        files={},
    )
    return Bundle(Path(folder), manifest, taxonomy, banks), TorchBackend(model, dev)
