"""The optimisers: AdamW with weight decay on matrices only (Chapter 6), Muon beside AdamW
(Chapter 9), and Muon's orthogonalised update written out (Jordan et al., 2024).

For a weight matrix, Muon replaces the (momentum-averaged) gradient ``G = U S V^T`` by roughly
its orthogonal part ``U V^T``: every direction the gradient points in gets a step of the same
size, however large or small its singular value. ``U V^T`` is approximated without an SVD by a
few Newton–Schulz iterations, which use only matrix products. The package trains with
``torch.optim.Muon``; ``newton_schulz`` is the same iteration in plain PyTorch, in float64, so a
test can prove that the optimizer does what the equations say (``tests/test_optim.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from tinygpt.config import TrainConfig

# The quintic's coefficients from Keller Jordan's Muon (and torch.optim.Muon's defaults): chosen
# for a steep slope at zero, so small singular values grow fast; the result is U S' V^T with
# S' roughly in [0.5, 1.5] after 5 steps, rather than exactly U V^T.
QUINTIC = (3.4445, -4.7750, 2.0315)
# The classic cubic iteration X <- 1.5 X - 0.5 X X^T X: slower, but it converges to U V^T.
CUBIC = (1.5, -0.5, 0.0)


def newton_schulz(
    G: torch.Tensor, steps: int = 5, coefficients=QUINTIC, eps: float = 1e-7
) -> torch.Tensor:
    """Approximately ``U V^T`` for ``G = U S V^T``, by iterating
    ``X <- a X + b (X X^T) X + c (X X^T)^2 X`` from ``X = G / ||G||_F``.

    Each step maps every singular value s of X to ``a s + b s^3 + c s^5`` and keeps the singular
    vectors. Dividing by the Frobenius norm first puts every singular value in (0, 1], where the
    iteration pushes them towards 1. A tall matrix is iterated as its transpose, so that the
    Gram matrix ``X X^T`` is the smaller of the two.
    """
    if G.dim() != 2:
        raise ValueError(f"newton_schulz needs a matrix, got a tensor of shape {tuple(G.shape)}")
    a, b, c = coefficients
    tall = G.size(0) > G.size(1)
    X = G.mT if tall else G
    X = X / X.norm().clamp(min=eps)
    for _ in range(steps):
        gram = X @ X.mT  # (m, m), m = the smaller side
        X = a * X + (b * gram + c * gram @ gram) @ X
    return X.mT if tall else X


def configure_optimizer(
    model: torch.nn.Module, config: TrainConfig, device: torch.device
) -> torch.optim.Optimizer:
    """AdamW with weight decay on matrices (≥ 2-D) only: biases and norm gains are not
    shrunk towards zero, which would only fight the normalisation they implement."""
    if config.optimizer == "muon":  # [ch9]
        return configure_muon(model, config, device)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        groups,
        lr=config.learning_rate,
        betas=(config.beta1, config.beta2),
        fused=device.type == "cuda",  # [chA]
    )


class MuonAdamW:
    """Chapter 9: Muon for the blocks' weight matrices, AdamW for everything else, as one
    optimizer (``step``, ``zero_grad``, ``param_groups`` and a torch-style ``state_dict``).

    Muon orthogonalises each matrix's momentum (``tinygpt.optim`` writes the iteration out):
    every direction of a matrix's update gets the same step. That suits the hidden matrices,
    not the embedding (a lookup table: each row sees only its own token's gradient) or the
    gains. ``match_rms_adamw`` scales Muon's step to the size of an AdamW step (Liu et al.,
    2025), so one learning rate and one schedule drive both halves.
    """

    def __init__(self, muon: torch.optim.Muon, adamw: torch.optim.AdamW) -> None:
        self.muon, self.adamw = muon, adamw

    @property
    def param_groups(self) -> list[dict]:
        """Both optimizers' groups (train_step sets each one's lr), read afresh each time:
        loading a state dict replaces an optimizer's group dicts."""
        return self.muon.param_groups + self.adamw.param_groups

    def step(self) -> None:
        self.muon.step()
        self.adamw.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.muon.zero_grad(set_to_none=set_to_none)
        self.adamw.zero_grad(set_to_none=set_to_none)

    def _muon_params(self) -> int:
        return sum(len(group["params"]) for group in self.muon.param_groups)

    def state_dict(self) -> dict:
        """One torch-style state dict: Muon's parameters are numbered first, then AdamW's."""
        muon, adamw, n = self.muon.state_dict(), self.adamw.state_dict(), self._muon_params()
        state = {**muon["state"], **{i + n: s for i, s in adamw["state"].items()}}
        groups = muon["param_groups"] + [
            {**g, "params": [i + n for i in g["params"]]} for g in adamw["param_groups"]
        ]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, saved: dict) -> None:
        n, split = self._muon_params(), len(self.muon.param_groups)
        self.muon.load_state_dict({
            "state": {i: s for i, s in saved["state"].items() if i < n},
            "param_groups": saved["param_groups"][:split],
        })  # fmt: skip
        self.adamw.load_state_dict({
            "state": {i - n: s for i, s in saved["state"].items() if i >= n},
            "param_groups": [
                {**g, "params": [i - n for i in g["params"]]} for g in saved["param_groups"][split:]
            ],
        })  # fmt: skip


def configure_muon(model: torch.nn.Module, config: TrainConfig, device: torch.device) -> MuonAdamW:
    """Muon on the blocks' 2-D weights (attention and MLP); AdamW on embeddings, gains, biases."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    hidden = [p for n, p in named if p.dim() == 2 and n.startswith("transformer.h.")]
    hidden_ids = {id(p) for p in hidden}
    rest = [p for n, p in named if id(p) not in hidden_ids]
    muon = torch.optim.Muon(
        hidden,
        lr=config.learning_rate,
        weight_decay=config.weight_decay,
        momentum=0.95,
        adjust_lr_fn="match_rms_adamw",
    )
    adamw = torch.optim.AdamW(
        [
            {"params": [p for p in rest if p.dim() >= 2], "weight_decay": config.weight_decay},
            {"params": [p for p in rest if p.dim() < 2], "weight_decay": 0.0},
        ],
        lr=config.learning_rate,
        betas=(config.beta1, config.beta2),
        fused=device.type == "cuda",  # [chA]
    )
    return MuonAdamW(muon, adamw)
