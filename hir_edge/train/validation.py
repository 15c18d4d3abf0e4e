"""Validation during training: the paper's protocol on the clean validation split."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from hir_edge.data.hdf5 import SpecimenStore
from hir_edge.evaluation.embed import CONDITIONS, embed_split, prompt_banks
from hir_edge.evaluation.protocol import paper_protocol
from hir_edge.taxonomy import Taxonomy


@torch.no_grad()
def validate(
    model,
    data_path: Path,
    split: str,
    taxonomy: Taxonomy,
    max_specimens: int,
    device: torch.device,
) -> dict:
    """Paper protocol on (an evenly spaced subset of) the clean validation split.

    Returns per setting (IT, DT, I+DT: GatedFusion when the model has one, else the normalised
    average) the Top-1 per rank, and ``metric``, their mean Global Top-1: what picks 'best'.
    """
    store = SpecimenStore(data_path, split)
    n = len(store)
    count = min(n, max_specimens)
    indices = np.linspace(0, n - 1, count).round().astype(int) if count else np.zeros(0, int)
    banks = prompt_banks(model, taxonomy)
    emb = embed_split(
        model, store, taxonomy, condition=CONDITIONS["clean"], indices=indices, device=device
    )
    store.close()
    masks = [taxonomy.label_mask(level) for level in range(taxonomy.num_ranks)]
    ranks = taxonomy.ranks

    def protocol(queries, valid):
        return paper_protocol(queries, banks, emb.labels, ranks, candidate_masks=masks, valid=valid)

    joint = emb.fused if emb.fused is not None else emb.average()
    settings = {
        "IT": protocol(emb.image, emb.has_image),
        "DT": protocol(emb.dna, emb.has_dna),
        "I+DT": protocol(joint, emb.has_image & emb.has_dna),
    }
    values = [r.cell("global", 1) for r in settings.values() if not math.isnan(r.cell("global", 1))]
    return {
        "metric": float(np.mean(values)) if values else float("nan"),
        "n": int(count),
        **{
            name: {rank: acc[1] for rank, acc in r.per_rank.items()} for name, r in settings.items()
        },
    }
