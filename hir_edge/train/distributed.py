"""Process group and device set-up: one CPU process, one GPU, or N GPUs under ``torchrun``.

``torchrun`` (one node or several, e.g. from SLURM) sets RANK, WORLD_SIZE and LOCAL_RANK;
without them the run is a single process. NCCL is used on CUDA, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass
class DistEnv:
    """Where this process runs and who it is among the others."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    """``auto`` → this process's GPU when CUDA exists, else the CPU; never a hard-coded cuda:0."""
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        from hir_edge.errors import ConfigError

        raise ConfigError(
            f"train.device={preference!r} but CUDA is not available here; use auto or cpu"
        )
    return device


def setup(preference: str = "auto") -> DistEnv:
    """Initialise the process group when launched by torchrun; a no-op for one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(preference, local_rank)
    if world > 1 and not dist.is_initialized():
        backend = os.environ.get("HIR_EDGE_DIST_BACKEND") or _default_backend(device, world)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend, rank=rank, world_size=world, timeout=timedelta(minutes=30))
    return DistEnv(rank, world, local_rank, device)


def _default_backend(device: torch.device, world: int) -> str:
    """NCCL across GPUs; gloo on CPU, and when ranks share a GPU (NCCL refuses duplicate GPUs)."""
    if device.type != "cuda":
        return "gloo"
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    return "nccl" if per_node <= torch.cuda.device_count() else "gloo"


def teardown(env: DistEnv) -> None:
    if env.distributed and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(value, env: DistEnv):
    """Send a picklable value from rank 0 to every rank."""
    if not env.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast runs natively here: a CUDA device, or a CPU with bf16 instructions
    (AVX512-BF16 or AMX, through oneDNN). There ``precision: auto`` trains in bf16 autocast, the
    weights and optimizer staying fp32 (benchmarks/results/tiny_recipe.md has the time it
    takes); elsewhere it stays fp32, since emulated bf16 is slower than fp32."""
    if device.type == "cuda":
        return True
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def compute_precision(precision: str, device: torch.device) -> str:
    """What ``train.precision`` means on ``device``: "bf16 autocast" or "fp32"."""
    bf16 = precision == "bf16" or (precision == "auto" and native_bf16(device))
    return "bf16 autocast" if bf16 else "fp32"
