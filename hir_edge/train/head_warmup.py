"""Fit the new parts on a frozen pretrained image backbone before fine-tuning it (LP-FT).

A pretrained image backbone starts useful, but the parts around it start random: the image
projection, the text tower that writes every taxon's prompt embedding, the logit scale. Fine-tuned
all at once, the first epochs spend the backbone's features against a random target, and the
backbone drifts while the head is still wrong (Kumar et al. 2022, "Fine-Tuning can Distort
Pretrained Features", ICLR: linear probing, then fine-tuning). Here the backbone's features of the
unaugmented training photos are computed once, and the projection, the text tower and the scale
are fitted on them for a few hundred cheap steps with the recipe's own objective (no image
backbone in the loop, so each step is cheap). Fine-tuning then starts from a head
that already ranks the prompts.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from hir_edge.images import PreprocessConfig, preprocess
from hir_edge.progress import progress_bar


def backbone_features(model, images: list, batch: int = 64, load=None) -> torch.Tensor:
    """Pooled features of the image tower's frozen trunk for photos: PIL images, or sources
    that ``load`` decodes one batch at a time (so thousands of photos are never all decoded
    at once)."""
    device = model.logit_scale.device
    trunk = model.visual.trunk
    was_training = trunk.training
    trunk.eval()
    pre: PreprocessConfig = model.preprocess
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            chunk = images[start : start + batch]
            if load is not None:
                chunk = [load(source) for source in chunk]
            pixels = np.stack([preprocess(im, pre) for im in chunk])
            x = torch.from_numpy(pixels).to(device).contiguous(memory_format=torch.channels_last)
            out.append(trunk(x).float())
    trunk.train(was_training)
    return torch.cat(out)


def warm_head(
    model,
    objective,
    features: torch.Tensor,
    labels: torch.Tensor,
    texts: list[str],
    text_levels: torch.Tensor,
    prompt_tokens: torch.Tensor | None,
    prompt_sizes: list[int] | None,
    prompt_candidates: list[torch.Tensor] | None,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
    quiet: bool = False,
) -> dict:
    """``steps`` AdamW steps (cosine-decayed ``lr``) on everything but the image trunk.

    Args:
        model: a HirModel with a pretrained timm image trunk (its ``visual.head`` and
            ``image_proj`` map trunk features to the shared space).
        objective: the recipe's :class:`~hir_edge.losses.HirObjective`.
        features: [N, C] trunk features of the training photos.
        labels, texts, text_levels: the specimens' label ids, prompt texts and the rank each
            text names.
        prompt_tokens, prompt_sizes, prompt_candidates: every taxon's prompt, for L_P (None
            when the recipe has no L_P).

    Returns:
        The mean loss of the first and last 20 steps and the seconds taken.
    """
    trunk_params = {id(p) for p in model.visual.trunk.parameters()}
    params = [p for p in model.parameters() if p.requires_grad and id(p) not in trunk_params]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(steps, 1))
    generator = torch.Generator().manual_seed(seed)
    device = features.device
    model.train()
    start, losses = time.perf_counter(), []
    bar = progress_bar(steps, desc="head warm-up", unit="step", quiet=quiet)
    for _ in range(steps):
        idx = torch.randperm(len(features), generator=generator)[:batch_size].to(device)
        image = F.normalize(model.image_proj(model.visual.head(features[idx])), dim=-1)
        batch_texts = [texts[int(i)] for i in idx]
        text = model.encode_text(model.tokenize_text(batch_texts).to(device))
        bank = None
        if prompt_tokens is not None:
            bank = list(torch.split(model.encode_text(prompt_tokens), prompt_sizes))
        parts = objective(
            model.scale(),
            image,
            None,
            text,
            labels[idx],
            text_levels=text_levels[idx],
            prompt_bank=bank,
            prompt_candidates=prompt_candidates if bank is not None else None,
        )
        optimizer.zero_grad(set_to_none=True)
        parts["loss"].backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        losses.append(float(parts["loss"].detach()))
        bar.update(1)
    bar.close()
    return {
        "steps": steps,
        "first_loss": float(np.mean(losses[:20])) if losses else float("nan"),
        "last_loss": float(np.mean(losses[-20:])) if losses else float("nan"),
        "seconds": time.perf_counter() - start,
    }


def warm_up(trainer) -> None:
    """LP-FT before a :class:`~hir_edge.train.trainer.Trainer`'s schedule: the features of its
    training photos, then :func:`warm_head`; rank 0's result is broadcast so every process
    starts fine-tuning from the same weights."""
    from hir_edge.errors import ConfigError
    from hir_edge.images import load_image

    cfg, model = trainer.config, trainer.model
    if not model.pretrained_convnet:
        raise ConfigError(
            "train.head_warmup_steps needs a pretrained convolutional image tower "
            "(clip.image_weights, e.g. the tiny-lite0 preset)"
        )
    base = trainer.dataset.base
    rows = np.flatnonzero(base.store.image_lengths() > 0).tolist()  # no image bytes read
    rows = [rows[int(j)] for j in np.linspace(0, len(rows) - 1, min(len(rows), 20000))]
    labels = base.labels()[rows]
    lineages = base.store.lineages()
    texts = [base.text(lineages[i], tuple(labels[n])) for n, i in enumerate(rows)]
    known = labels >= 0
    levels = np.where(known.any(1), known.shape[1] - 1 - np.argmax(known[:, ::-1], 1), -1)
    clock = time.perf_counter()
    features = backbone_features(model, [base.store.image_bytes(i) for i in rows], load=load_image)
    device = trainer.env.device
    result = warm_head(
        model,
        trainer.objective,
        features,
        torch.from_numpy(labels).to(device),
        texts,
        torch.from_numpy(levels).to(device),
        trainer.prompt_tokens,
        trainer.prompt_sizes,
        trainer.prompt_candidates,
        steps=cfg.train.head_warmup_steps,
        lr=trainer.max_lr,
        batch_size=cfg.train.batch_size,
        seed=cfg.train.seed,
        quiet=trainer.quiet or not trainer.env.is_main,
    )
    if trainer.env.distributed:
        for param in model.parameters():
            torch.distributed.broadcast(param.data, src=0)
    trainer._log({"step": 0, "head_warmup": result})
    trainer._say(
        f"head warm-up: {result['steps']} steps on the frozen backbone's features of "
        f"{len(rows)} photos in {time.perf_counter() - clock:.0f}s; loss "
        f"{result['first_loss']:.3f} → {result['last_loss']:.3f}"
    )
