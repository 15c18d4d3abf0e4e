"""GatedFusion: the lightweight image–DNA fusion head of CLIBD-HiR-Fuse (METHOD.md §3, Eq. 10).

A per-dimension gate g ∈ (0,1)^d, predicted from both embeddings, mixes them:
``z_F = normalise(g ⊙ z_I + (1 − g) ⊙ z_D)``. The mean gate tells a user how much each
modality weighed in the answer (high: the photo; low: the barcode).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GatedFusion(nn.Module):
    """Concat → Linear(2d→h) → ReLU → Dropout → Linear(h→d) → Sigmoid gate.

    Args:
        dim: embedding dimension d of both inputs.
        hidden_dim: width h of the gate MLP.
        dropout: dropout between the two linear layers (training only).
    """

    def __init__(self, dim: int, hidden_dim: int = 512, dropout: float = 0.1):
        super().__init__()
        self.dim = dim
        self.gate = nn.Sequential(
            nn.Linear(2 * dim, hidden_dim),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, dim),
            nn.Sigmoid(),
        )

    def forward(
        self, z_image: torch.Tensor, z_dna: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Fuse two L2-normalised [B, d] embeddings.

        Returns:
            (fused, gate): the L2-normalised fused embedding [B, d] and the gate [B, d]
            (the weight of the image embedding per dimension).
        """
        gate = self.gate(torch.cat([z_image, z_dna], dim=-1))
        fused = gate * z_image + (1.0 - gate) * z_dna
        return F.normalize(fused, dim=-1), gate
