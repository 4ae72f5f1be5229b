"""[ch9] Averaging: of the weights a run passes through (EMA), and of several models' predictions.

On a small corpus the weights at any one step have just been pulled towards the last batches they
saw; an average of the recent weights smooths that noise away, much as a lower learning rate
would, without slowing the training itself (Polyak and Juditsky, 1992; Izmailov et al., 2018).
The average is a second copy of the model that is only ever evaluated: after every optimizer step

    average <- decay * average + (1 - decay) * weights

so a weight's value k steps ago still counts with decay**k (decay 0.99 averages over roughly the
last 100 steps). Early on the average would be dominated by the random initial weights, so the
decay used at update n is ``min(decay, (1 + n) / (10 + n))``, as TensorFlow's
``ExponentialMovingAverage`` does with ``num_updates``.

``train`` evaluates, keeps as ``best.safetensors`` and scores the averaged weights when
``TrainConfig.ema_decay`` is set, and stores them in ``last.safetensors`` so a resumed run goes on
bit for bit.

``Ensemble`` averages the *probabilities* of K models trained apart (from different seeds). Each
member's mistakes are partly its own, so their mean puts more probability on the right token than
the typical member does: by Jensen's inequality, the ensemble's loss is never above its members'
mean loss (Dietterich, 2000; Lakshminarayanan et al., 2017).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F


class WeightAverage:
    """An EMA of ``model``'s parameters, held as a model of its own (``.model``)."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0  # optimizer steps averaged so far
        self.model = copy.deepcopy(model).eval()  # the averaged weights, ready to evaluate
        for param in self.model.parameters():
            param.requires_grad_(False)

    def decay_now(self) -> float:
        """The decay of the next update: smaller for the first steps (see the module's text)."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """Fold ``model``'s current parameters into the average (call after each step)."""
        keep = self.decay_now()
        for averaged, param in zip(self.model.parameters(), model.parameters(), strict=True):
            averaged.lerp_(param.detach(), 1.0 - keep)  # += (1 - keep) * (param - averaged)
        self.updates += 1

    def state(self) -> dict[str, torch.Tensor]:
        """The averaged weights, named as the model's (``GPT.weights()``)."""
        return self.model.weights()

    def load(self, weights: dict[str, torch.Tensor], updates: int) -> None:
        """Restore the average from a checkpoint."""
        self.model.load_weights(weights)
        self.updates = updates


class Ensemble(torch.nn.Module):
    """K models predicting together: the mean of their next-token probabilities.

    ``forward`` returns the log of that mean as the logits (already normalised, so a softmax or
    cross-entropy of them reads the ensemble's probabilities), and the loss when ``targets`` are
    given, so ``estimate_loss`` and ``full_validation`` score an ensemble like one model.
    """

    def __init__(self, members: Sequence[torch.nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one model")
        shapes = {(m.config.vocab_size, m.config.block_size) for m in members}
        if len(shapes) > 1:
            raise ValueError(f"members must share vocab_size and block_size, got {sorted(shapes)}")
        self.members = torch.nn.ModuleList(members)
        self.config = members[0].config  # vocab_size and block_size, for the callers

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, return_logits: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        log_probs = torch.stack(
            [F.log_softmax(member(idx)[0].float(), dim=-1) for member in self.members]
        )  # (K, B, T, V)
        logits = torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1)
        return logits, loss
