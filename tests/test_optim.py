"""Muon's Newton–Schulz orthogonalisation (tinygpt.optim), proven against the SVD and against
torch.optim.Muon on small matrices."""

import math

import pytest
import torch

from tinygpt.optim import CUBIC, QUINTIC, newton_schulz


@pytest.mark.parametrize("shape", [(6, 6), (4, 9), (9, 4)])
def test_the_cubic_iteration_converges_to_the_orthogonal_part(shape):
    """With the classic cubic coefficients, enough steps give exactly U V^T of the SVD."""
    G = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    U, _, Vh = torch.linalg.svd(G, full_matrices=False)
    X = newton_schulz(G, steps=60, coefficients=CUBIC)
    assert torch.allclose(X, U @ Vh, atol=1e-10)


def test_each_step_maps_the_singular_values_by_the_polynomial():
    """One step keeps the singular vectors and sends each singular value s to a s + b s^3 + c s^5
    (of the normalised matrix): the iteration acts on the spectrum alone."""
    G = torch.randn(5, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    s = torch.linalg.svdvals(G / G.norm())
    a, b, c = QUINTIC
    expected = (a * s + b * s**3 + c * s**5).abs().sort(descending=True).values
    assert torch.allclose(torch.linalg.svdvals(newton_schulz(G, steps=1)), expected, atol=1e-12)


def test_five_quintic_steps_bring_every_singular_value_near_one():
    """The default (Muon's) coefficients: after 5 steps every singular value lies in about
    [0.5, 1.5] although the gradient's spread a hundredfold (0.01 to 1). A singular value a
    thousand times below the largest is not raised that far in 5 steps (it ends near 0.44)."""
    gen = torch.Generator().manual_seed(3)
    U, _ = torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64, generator=gen))
    V, _ = torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64, generator=gen))
    G = U @ torch.diag(torch.logspace(-2, 0, 8, dtype=torch.float64)) @ V.T
    s = torch.linalg.svdvals(newton_schulz(G))
    assert s.min() > 0.5 and s.max() < 1.5
    G = U @ torch.diag(torch.logspace(-3, 0, 8, dtype=torch.float64)) @ V.T
    assert 0.3 < torch.linalg.svdvals(newton_schulz(G)).min() < 0.5


@pytest.mark.parametrize("shape", [(16, 16), (12, 32), (32, 12)])
def test_torch_muon_steps_by_the_orthogonalised_gradient(shape):
    """One step of torch.optim.Muon (no momentum, no weight decay) moves a weight by
    -lr * sqrt(max(1, rows / cols)) * newton_schulz(grad): our float64 iteration equals it to
    bfloat16's precision, the type torch iterates in."""
    gen = torch.Generator().manual_seed(2)
    weight = torch.nn.Parameter(torch.randn(*shape, generator=gen))
    grad = torch.randn(*shape, generator=gen)
    before = weight.detach().clone()
    lr = 0.01
    optimizer = torch.optim.Muon([weight], lr=lr, momentum=0.0, nesterov=False, weight_decay=0.0)
    weight.grad = grad.clone()
    optimizer.step()
    step = (before - weight.detach()).double()
    ours = lr * math.sqrt(max(1.0, shape[0] / shape[1])) * newton_schulz(grad.double())
    assert (step - ours).abs().max() <= 0.02 * ours.abs().max()
    assert torch.nn.functional.cosine_similarity(step.flatten(), ours.flatten(), dim=0) > 0.999


def test_a_tensor_that_is_not_a_matrix_is_refused():
    with pytest.raises(ValueError, match="needs a matrix"):
        newton_schulz(torch.ones(3))
