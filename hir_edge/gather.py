"""Embeddings gathered from every training process, so each computes the global-batch loss.

As open_clip's ClipLoss with ``gather_with_grad=True, local_loss=False``: the embeddings are
all-gathered *with gradients*, and DDP's gradient averaging then equals the single-process
gradient of the global batch. At world size 1 (or without torch.distributed) nothing moves.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class _AllGather(torch.autograd.Function):
    """all_gather whose backward sums every rank's gradient for this rank's slice.

    Each rank's loss sees every rank's embeddings, so the gradient of ``x`` on rank r is the sum
    over ranks of their gradient for slice r: an all-reduce, then this rank's slice.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.stack(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[dist.get_rank()]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every process along dim 0; gradients flow back to each source."""
    if _world_size() == 1:
        return x
    return _AllGather.apply(x).flatten(0, 1)


def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate labels or masks from every process (no gradient needed)."""
    if _world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)
