"""From token ids to vectors (Chapter 2): position encodings and the bigram baseline."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sinusoidal_positions(T: int, C: int, base: float = 10_000.0) -> torch.Tensor:
    """The fixed position encodings of *Attention Is All You Need* (Vaswani et al., 2017).

    PE[t, 2i] = sin(t / base^(2i/C)) and PE[t, 2i+1] = cos(t / base^(2i/C)): each pair of
    columns is a clock running at its own speed, from one turn every 2π positions (i = 0) to
    one turn every 2π·base positions. Returns a (T, C) tensor; C must be even.
    """
    if C % 2:
        raise ValueError(f"C must be even for sin/cos pairs, got {C}")
    position = torch.arange(T, dtype=torch.float32).unsqueeze(1)  # (T, 1)
    frequency = torch.exp(-math.log(base) * torch.arange(0, C, 2, dtype=torch.float32) / C)
    angles = position * frequency  # (T, C/2)
    pe = torch.empty(T, C)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles)
    return pe


class BigramLanguageModel(nn.Module):
    """Predict the next token from the current one alone: the baseline every model must beat.

    A full V×V table of next-token scores would hold 50257² ≈ 2.5 billion numbers for GPT-2's
    vocabulary, so the table is factored through an embedding of width C: look up the token's
    vector (V -> C), then score every possible next token (C -> V).
    """

    def __init__(self, vocab_size: int, n_embd: int) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=True)
        nn.init.normal_(self.wte.weight, std=0.02)
        nn.init.normal_(self.lm_head.weight, std=0.02)
        nn.init.zeros_(self.lm_head.bias)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = self.lm_head(self.wte(idx))  # (B, T, C) -> (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss
