"""Data-parallel training on several processes (Appendix A): PyTorch DistributedDataParallel.

Launched by ``torchrun --nproc_per_node=N -m tinygpt train ...``, every process (a *rank*) holds
a full copy of the model, reads its own random batches, and computes its own gradients; during
``backward`` DDP averages the gradients of all ranks (an all-reduce), so every rank takes the same
optimizer step and the copies stay identical. N ranks of batch B train like one process with
batch N·B. NCCL connects GPUs; gloo connects CPU processes.

Without torchrun (no ``WORLD_SIZE`` in the environment) nothing here does anything: one process.

``python -m torch.distributed.run --standalone --nproc_per_node=2 -m tinygpt.distributed OUT``
runs ``gradient_check``: Appendix A's proof that the averaged gradients are one process's.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from tinygpt.model import GPT, GPTConfig


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


def gradient_check(out: str | Path, per_rank: int = 3) -> None:
    """Run by torchrun: one DDP backward pass on this rank's ``per_rank`` windows of a fixed batch.

    Rank 0 then computes one process's gradients on all the ranks' windows together, from the
    same initial weights, and writes the largest difference (and the largest gradient, for
    scale) to ``out`` as JSON.
    """
    config = GPTConfig(vocab_size=61, block_size=12, n_layer=2, n_head=2, n_embd=16, dropout=0.0)
    ctx, device = setup(torch.device("cpu"))
    torch.manual_seed(0)
    model = GPT(config)
    ddp = wrap(model, ctx, device)
    data = torch.Generator().manual_seed(1)
    shape = (per_rank * ctx.world_size, config.block_size)
    x, y = (torch.randint(0, config.vocab_size, shape, generator=data) for _ in range(2))
    mine = slice(ctx.rank * per_rank, (ctx.rank + 1) * per_rank)  # this rank's windows only
    ddp(x[mine], y[mine])[1].backward()  # the all-reduce: every rank now holds the mean
    if ctx.is_main:
        torch.manual_seed(0)
        single = GPT(config)  # the same initial weights, in one process
        single(x, y)[1].backward()  # every window at once
        averaged = dict(model.named_parameters())
        diff = max(
            (averaged[n].grad - p.grad).abs().max().item() for n, p in single.named_parameters()
        )
        scale = max(p.grad.abs().max().item() for p in single.parameters())
        result = {"world_size": ctx.world_size, "max_abs_diff": diff, "max_grad": scale}
        Path(out).write_text(json.dumps(result))
    cleanup(ctx)


if __name__ == "__main__":
    gradient_check(sys.argv[1])
