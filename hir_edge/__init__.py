"""hir-edge: hierarchy-aware taxonomic identification from specimen photos, COI barcodes, or both.

Importing the package is light (no torch); the training and export stacks load on demand.
"""

__version__ = "0.1.0"

from hir_edge.taxonomy import MISSING, RANKS, Taxonomy

__all__ = ["MISSING", "RANKS", "Taxonomy", "__version__"]
