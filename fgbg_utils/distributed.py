"""DDP under torchrun: which rank this process is, and the few collective steps the loop needs
(agreeing on a flag, making buffers equal)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

from .runtime import choose_device


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def start_distributed(requested: str | None) -> Distributed:
    """Join the process group when torchrun set WORLD_SIZE > 1 (nccl on CUDA, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = choose_device(requested)
    if world <= 1:
        return Distributed(device=device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(rank=dist.get_rank(), world=world, device=device)


def any_rank(flag: bool, ranks: Distributed) -> bool:
    """True on every rank when it is true on one: time-based decisions must agree."""
    if not ranks.active:
        return flag
    value = torch.tensor([int(flag)], device=ranks.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def synchronize_buffers(model: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm statistics) to every rank: DDP broadcasts them at each
    forward, so after the last step the other ranks still hold their own."""
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)
