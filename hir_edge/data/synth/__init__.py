"""Paired synthetic data (photos + COI barcodes + taxonomy) in the BIOSCAN/CLIBD layout.

Lets everything downstream — training, evaluation, export, the demo bundle — run without
BIOSCAN. Taxonomy and DNA are real (a BOLD TSV) or generated (a "Demo…" tree with barcodes
evolved along it); every specimen gets a procedurally drawn photo whose traits follow the
hierarchy. Only numpy and Pillow are needed to generate; writing the HDF5 needs h5py.
"""

from __future__ import annotations

from hir_edge.data.synth.config import SynthConfig
from hir_edge.data.synth.generate import SynthSummary, dataset_is_current, generate_dataset

__all__ = ["SynthConfig", "SynthSummary", "dataset_is_current", "generate_dataset"]
