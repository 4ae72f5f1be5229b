"""A restricted vocabulary (Chapter 6): only the GPT-2 tokens the training split uses.

Tiny Shakespeare's training split uses 11,234 of GPT-2's 50,257 tokens, so most rows of a
50257-row embedding never see a gradient. Keeping only the tokens that occur (plus one
"unknown" bucket) shrinks the embedding and the output layer by 4.5×.

Losses stay comparable with a full-vocabulary model: a target outside the kept set costs
−log p(unk) + ln(number of GPT-2 tokens outside the set), i.e. the unknown bucket's probability
is split evenly over every token it stands for. That is the loss of a proper distribution over
all 50,257 GPT-2 tokens, so it can be compared with any model that predicts GPT-2 tokens.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class RestrictedVocab:
    """Map GPT-2 ids to a compact local range and back; the last local id is ``unk``."""

    def __init__(self, kept: torch.Tensor | list[int], full_size: int = 50257) -> None:
        kept = torch.as_tensor(kept, dtype=torch.long).unique(sorted=True)
        if len(kept) == 0 or kept[0] < 0 or kept[-1] >= full_size:
            raise ValueError(f"kept ids must be a non-empty set within [0, {full_size})")
        if len(kept) == full_size:
            raise ValueError("a restricted vocabulary must leave at least one token out")
        self.kept = kept  # (V - 1,) GPT-2 ids, sorted
        self.full_size = full_size
        self._local = torch.full((full_size,), self.unk_id, dtype=torch.long)
        self._local[kept] = torch.arange(len(kept))

    @classmethod
    def from_tokens(
        cls, ids: torch.Tensor, full_size: int = 50257, min_count: int = 1
    ) -> RestrictedVocab:
        """Keep every token that occurs at least ``min_count`` times in ``ids``.

        With ``min_count=2`` the tokens seen only once fall into the unknown bucket, so the
        model learns how often *some* rare token comes next instead of never predicting one.
        """
        counts = torch.bincount(ids, minlength=full_size)
        return cls(torch.nonzero(counts >= min_count).flatten(), full_size)

    @property
    def unk_id(self) -> int:
        return len(self.kept)

    @property
    def size(self) -> int:
        """The model's V: kept tokens plus the unknown bucket."""
        return len(self.kept) + 1

    @property
    def n_unknown(self) -> int:
        """How many GPT-2 tokens the unknown bucket stands for."""
        return self.full_size - len(self.kept)

    def to_local(self, ids: torch.Tensor) -> torch.Tensor:
        return self._local.to(ids.device)[ids]

    def to_global(self, local_ids: torch.Tensor) -> torch.Tensor:
        """Local ids back to GPT-2 ids; the unknown bucket has no single GPT-2 id."""
        if (local_ids == self.unk_id).any():
            raise ValueError("the unknown bucket does not map to a single GPT-2 token")
        return self.kept.to(local_ids.device)[local_ids]

    def nll(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-token negative log-likelihood in the full GPT-2 space.

        logits: (..., V) over local ids; targets: (...) *GPT-2* ids.
        """
        local = self.to_local(targets)
        nll = F.cross_entropy(logits.flatten(0, -2).float(), local.flatten(), reduction="none")
        unknown = (local.flatten() == self.unk_id).float()
        return (nll + unknown * math.log(self.n_unknown)).view(targets.shape)

    def state(self) -> dict:
        return {"kept": self.kept.tolist(), "full_size": self.full_size}

    @classmethod
    def from_state(cls, state: dict) -> RestrictedVocab:
        return cls(state["kept"], state["full_size"])

    def __repr__(self) -> str:
        return f"RestrictedVocab(size={self.size}, unknown stands for {self.n_unknown} tokens)"
