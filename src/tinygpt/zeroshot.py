"""What a language model knows before any fine-tuning (Chapter 10): minimal pairs.

Show a language model two texts that differ only in word order, one as written and one with two
words swapped, and ask which it finds more likely: the one with the lower total loss,
$-\\sum_t \\log p(x_{t+1} \\mid x_{\\le t})$. That is how BLiMP (Warstadt et al., 2020) tests a
model's grammar. It needs no training and no head, only the model's own next-token losses; a
bigram model of the same training text, scored the same way, is the bar it must clear.

* ``token_losses``: each row's next-token losses, in nats (the first token has none).
* ``BigramModel``: counts of neighbouring tokens in a text, add-k smoothed towards the
  unigram distribution, scored the same way.
* ``pairwise_accuracy``: how often the text as written gets the lower score.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def token_losses(
    model: nn.Module, rows: list[list[int]], batch_size: int = 64
) -> list[torch.Tensor]:
    """For each row of model ids, the loss of every token given the ones before it: (len - 1,).

    Rows are padded on the right; with causal attention the padding cannot change a real
    token's loss, so each row's losses equal the row scored alone."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        longest = max(len(r) for r in chunk)
        idx = torch.tensor([r + [0] * (longest - len(r)) for r in chunk], device=device)  # (B, T)
        logits, _ = model(idx)  # (B, T, V)
        nll = F.cross_entropy(logits[:, :-1].transpose(1, 2).float(), idx[:, 1:], reduction="none")
        out += [nll[b, : len(r) - 1].cpu() for b, r in enumerate(chunk)]  # (B, T - 1) -> rows
    return out


class BigramModel:
    """p(b | a) from counts of neighbouring tokens, smoothed: (n(a, b) + k V p(b)) / (n(a) + k V),
    with p(b) the add-one unigram probability. Unseen pairs fall back to how common b is."""

    def __init__(self, ids: list[int], vocab_size: int, k: float = 0.1) -> None:
        tokens = torch.tensor(ids)
        pairs = tokens[:-1] * vocab_size + tokens[1:]  # one integer per (a, b)
        self.pair_ids, self.pair_counts = pairs.unique(return_counts=True)
        self.first_counts = torch.bincount(tokens[:-1], minlength=vocab_size).double()
        unigram = torch.bincount(tokens, minlength=vocab_size).double() + 1
        self.unigram = unigram / unigram.sum()  # (V,)
        self.vocab_size, self.k = vocab_size, k

    def pair_count(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        key = a * self.vocab_size + b
        at = torch.searchsorted(self.pair_ids, key).clamp(max=len(self.pair_ids) - 1)
        return torch.where(self.pair_ids[at] == key, self.pair_counts[at], 0).double()

    def token_losses(self, row: list[int]) -> torch.Tensor:
        """-log p(b | a) for each neighbouring pair of the row: (len - 1,)."""
        a, b = torch.tensor(row[:-1]), torch.tensor(row[1:])
        smoothing = self.k * self.vocab_size
        p = (self.pair_count(a, b) + smoothing * self.unigram[b]) / (
            self.first_counts[a] + smoothing
        )
        return -p.log()


def pairwise_accuracy(written: torch.Tensor, swapped: torch.Tensor) -> float:
    """The share of pairs whose text as written scores lower (a tie counts as half)."""
    wins = (written < swapped).double() + 0.5 * (written == swapped).double()
    return wins.mean().item()
