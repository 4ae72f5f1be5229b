"""LoRA (Chapter 10; Hu et al., 2021): fine-tune a frozen model through low-rank adapters.

A frozen ``nn.Linear`` computes ``x W^T + b``. LoRA adds a trainable detour of rank r,

    y = x W^T + b + (alpha / r) * dropout(x) A^T B^T,     A: (r, in), B: (out, r),

so the weight the layer applies is ``W + (alpha / r) B A``. ``B`` starts at zero, so training
starts exactly at the pretrained model; ``A`` starts random (as PEFT does, Kaiming-uniform), so the
first gradient of ``B`` is not zero. Only ``A`` and ``B`` train: r (in + out) numbers instead of
in x out. ``merge`` folds ``B A`` into ``W`` for inference at no extra cost; ``unmerge`` takes it
out again.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update ``(alpha / r) B A``."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            raise ValueError(f"LoRA rank r must be a positive integer, got {r!r}")
        if not alpha > 0:
            raise ValueError(f"LoRA alpha must be positive, got {alpha!r}")
        self.base = base
        base.requires_grad_(False)
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features))  # (r, in)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))  # (out, r): starts at 0
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as nn.Linear and PEFT
        self.lora_dropout = nn.Dropout(dropout)
        self.merged = False

    def delta_weight(self) -> torch.Tensor:
        """(out, in): what the adapter adds to the frozen weight."""
        return self.scaling * self.lora_B @ self.lora_A

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)  # (..., out)
        if self.merged:
            return y  # B A is inside base.weight already
        return y + self.scaling * (self.lora_dropout(x) @ self.lora_A.T @ self.lora_B.T)

    @torch.no_grad()
    def merge(self) -> None:
        if not self.merged:
            self.base.weight += self.delta_weight()
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        if self.merged:
            self.base.weight -= self.delta_weight()
            self.merged = False


def add_lora(
    model: nn.Module,
    r: int,
    alpha: float,
    targets: tuple[str, ...] = ("c_attn",),
    dropout: float = 0.0,
) -> list[str]:
    """Freeze ``model`` and wrap every ``nn.Linear`` whose name ends in one of ``targets`` with
    a ``LoRALinear``. Returns the wrapped modules' names."""
    model.requires_grad_(False)
    wrapped = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if isinstance(child, nn.Linear) and child_name in targets:
                setattr(module, child_name, LoRALinear(child, r, alpha, dropout))
                wrapped.append(full)
    if not wrapped:
        raise ValueError(f"no nn.Linear named {', '.join(targets)} in the model")
    return wrapped


def lora_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapters' tensors: what a fine-tune needs to save."""
    return {k: v for k, v in model.state_dict().items() if ".lora_" in k}


def merge_all(model: nn.Module, merged: bool = True) -> None:
    for module in model.modules():
        if isinstance(module, LoRALinear):
            module.merge() if merged else module.unmerge()
