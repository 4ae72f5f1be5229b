"""Muon's orthogonalised update, written out (issue 17's speedrun; Jordan et al., 2024).

For a weight matrix, Muon replaces the (momentum-averaged) gradient ``G = U S V^T`` by roughly
its orthogonal part ``U V^T``: every direction the gradient points in gets a step of the same
size, however large or small its singular value. ``U V^T`` is approximated without an SVD by a
few Newton–Schulz iterations, which use only matrix products. The package trains with
``torch.optim.Muon``; ``newton_schulz`` is the same iteration in plain PyTorch, in float64, so a
test can prove that the optimizer does what the equations say (``tests/test_optim.py``).
"""

from __future__ import annotations

import torch

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
