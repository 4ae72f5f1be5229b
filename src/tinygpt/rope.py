"""Rotary position embedding, RoPE (Su et al., 2021; Chapter 8).

Instead of adding a position vector to the input, RoPE rotates each query and key: the head's
hs numbers are read as hs/2 two-dimensional pairs, and pair i at position t is rotated by the
angle t·θ_i, with θ_i = base^(-2i/hs). A dot product between a query rotated by t·θ and a key
rotated by s·θ depends only on (t - s)·θ: attention sees *relative* positions.

Which numbers form a pair is a convention. This module uses the **half-split** layout of
GPT-NeoX and Hugging Face's Llama: pair i is (x[i], x[i + hs/2]). The original paper and Meta's
Llama code pair neighbours, (x[2i], x[2i+1]) (**interleaved**); ``interleaved_to_half_split``
converts between them, and the two give the same attention scores once q and k are permuted
alike.
"""

from __future__ import annotations

import torch
from torch import nn


def rope_inverse_frequencies(head_size: int, base: float = 10_000.0) -> torch.Tensor:
    """θ_i = base^(-2i/hs) for i = 0 .. hs/2 - 1: fast rotations first, slow ones last."""
    if head_size % 2:
        raise ValueError(f"RoPE rotates pairs of numbers: head_size must be even, got {head_size}")
    return 1.0 / base ** (torch.arange(0, head_size, 2, dtype=torch.float32) / head_size)


def rope_cos_sin(
    positions: torch.Tensor, head_size: int, base: float = 10_000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of every position's angles, (T, hs) each, laid out for the half-split pairs."""
    angles = positions.float()[:, None] * rope_inverse_frequencies(head_size, base)  # (T, hs/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, hs): pair i uses the same angle twice
    return angles.cos(), angles.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) on the two halves: a 90° turn of every pair."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each pair of x (..., T, hs) by its position's angle: x·cos + rotate_half(x)·sin."""
    return (x * cos + rotate_half(x) * sin).to(x.dtype)


def interleaved_to_half_split(x: torch.Tensor) -> torch.Tensor:
    """Reorder the last dimension from neighbour pairs (0,1),(2,3).. to halves (0,hs/2),(1,..)."""
    return torch.cat([x[..., 0::2], x[..., 1::2]], dim=-1)


class RotaryEmbedding(nn.Module):
    """cos and sin for any positions, on the model's device. Holds no parameters: the angles
    are fixed, so the only state is the θ_i (a buffer, left out of checkpoints)."""

    def __init__(self, head_size: int, base: float = 10_000.0) -> None:
        super().__init__()
        self.register_buffer(
            "inv_freq", rope_inverse_frequencies(head_size, base), persistent=False
        )

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """positions (T,) -> cos, sin, each (T, hs) in float32 (angles lose digits in 16 bits)."""
        angles = positions.float()[:, None] * self.inv_freq  # (T, hs/2)
        angles = torch.cat([angles, angles], dim=-1)  # (T, hs)
        return angles.cos(), angles.sin()
