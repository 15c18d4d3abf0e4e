"""The optimiser and learning-rate schedule of a training run."""

from __future__ import annotations

import torch

from hir_edge.errors import ConfigError
from hir_edge.train.config import TrainSection


def optimizer_and_schedule(model, train: TrainSection, max_lr: float, total_steps: int):
    """AdamW over the trainable parameters (no decay on gains and biases; the image backbone
    at ``image_lr_scale``) and its OneCycle schedule (cosine, warm-up ``pct_start``)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("nothing to train: every parameter is frozen")
    groups = model.param_groups(train.weight_decay, train.image_lr_scale)
    if train.mode == "fusion-only":
        groups = [{"params": params, "weight_decay": train.weight_decay, "lr_scale": 1.0}]
    optimizer = torch.optim.AdamW(groups, lr=max_lr, betas=(0.9, 0.98), eps=1e-6)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=[max_lr * group["lr_scale"] for group in groups],
        total_steps=max(total_steps, 2),
        pct_start=train.pct_start,
        anneal_strategy="cos",
    )
    return optimizer, scheduler
