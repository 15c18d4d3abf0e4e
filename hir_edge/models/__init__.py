"""Encoders, GatedFusion and the preset registry (training-side: imports torch lazily).

from hir_edge.models import create_model, list_presets
model = create_model("tiny")
"""

from hir_edge.models.config import ModelConfig
from hir_edge.models.factory import (
    create_model,
    get_preset_config,
    list_presets,
    load_model,
    save_model,
)

__all__ = [
    "GatedFusion",
    "HirModel",
    "ModelConfig",
    "create_model",
    "get_preset_config",
    "list_presets",
    "load_model",
    "save_model",
]


def __getattr__(name: str):
    # torch-backed classes load on first use, so `import hir_edge.models` stays cheap.
    if name == "GatedFusion":
        from hir_edge.models.fusion import GatedFusion

        return GatedFusion
    if name == "HirModel":
        from hir_edge.models.hir_model import HirModel

        return HirModel
    raise AttributeError(name)
