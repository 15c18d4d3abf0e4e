"""Specimen data for training and evaluation: HDF5 files (CLIBD layout), metadata tables,
the torch Dataset and the taxonomy-aware batch sampler.

Names are imported on first use, so ``import hir_edge.data.metadata`` needs neither h5py
nor torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "Specimen": "hir_edge.data.hdf5",
    "SpecimenStore": "hir_edge.data.hdf5",
    "write_hdf5": "hir_edge.data.hdf5",
    "list_splits": "hir_edge.data.hdf5",
    "read_attrs": "hir_edge.data.hdf5",
    "describe": "hir_edge.data.hdf5",
    "MetadataRow": "hir_edge.data.metadata",
    "iter_metadata": "hir_edge.data.metadata",
    "read_metadata": "hir_edge.data.metadata",
    "PackSettings": "hir_edge.data.pack",
    "PackReport": "hir_edge.data.pack",
    "SpecimenDataset": "hir_edge.data.torch_dataset",
    "collate_specimens": "hir_edge.data.torch_dataset",
    "TaxonomyBatchSampler": "hir_edge.data.sampler",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hir_edge.data' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
