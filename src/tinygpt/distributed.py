"""Data-parallel training on several processes (Appendix A): PyTorch DistributedDataParallel.

Launched by ``torchrun --nproc_per_node=N -m tinygpt train ...``, every process (a *rank*) holds
a full copy of the model, reads its own random batches, and computes its own gradients; during
``backward`` DDP averages the gradients of all ranks (an all-reduce), so every rank takes the same
optimizer step and the copies stay identical. N ranks of batch B train like one process with
batch N·B. NCCL connects GPUs; gloo connects CPU processes.

Without torchrun (no ``WORLD_SIZE`` in the environment) nothing here does anything: one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class DistContext:
    """Who this process is: its rank among ``world_size`` and the device it trains on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0  # rank within this machine: which GPU to use

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, metrics and progress."""
        return self.rank == 0


def setup(device: torch.device) -> tuple[DistContext, torch.device]:
    """Join the process group torchrun describes in the environment, if any.

    Returns this process's context and its device: on CUDA, rank r of a machine uses GPU r.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistContext(), device
    ctx = DistContext(
        rank=int(os.environ["RANK"]),
        world_size=world_size,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )
    if device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return ctx, device


def wrap(model: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """The model DDP-wrapped when there are several ranks (gradients averaged in backward)."""
    if not ctx.enabled:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def any_rank(flag: bool, ctx: DistContext) -> bool:
    """True on every rank if it is True on any: ranks must agree on when to stop, or the ones
    still training would wait forever for the others' gradients."""
    if not ctx.enabled:
        return flag
    tensor = torch.tensor([int(flag)], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def cleanup(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
