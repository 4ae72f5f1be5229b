"""linear_cross_entropy against the textbook F.cross_entropy(F.linear(...)), and inside GPT."""

import pytest
import torch
import torch.nn.functional as F

from tinygpt.loss import linear_cross_entropy
from tinygpt.model import GPT, GPTConfig


def textbook(hidden, weight, targets, ignore_index=-1):
    logits = F.linear(hidden, weight)
    return F.cross_entropy(logits.flatten(0, -2), targets.flatten(), ignore_index=ignore_index)


def loss_and_grads(fn, hidden, weight, targets, **kwargs):
    hidden = hidden.detach().clone().requires_grad_()
    weight = weight.detach().clone().requires_grad_()
    loss = fn(hidden, weight, targets, **kwargs)
    return (loss, *torch.autograd.grad(loss, (hidden, weight)))


def toy(B=3, T=7, C=16, V=50, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(B, T, C, generator=g, dtype=dtype)
    weight = torch.randn(V, C, generator=g, dtype=dtype) * 0.5
    targets = torch.randint(0, V, (B, T), generator=g)
    return hidden, weight, targets


@pytest.mark.parametrize("chunk_rows", [1, 4, 5, 21, 1024])
def test_equals_textbook_loss_and_gradients(chunk_rows):
    hidden, weight, targets = toy(dtype=torch.float64)
    targets[0, :2] = -1  # ignored positions are left out of the mean
    targets[2, 6] = -1
    ours = loss_and_grads(linear_cross_entropy, hidden, weight, targets, chunk_rows=chunk_rows)
    ref = loss_and_grads(textbook, hidden, weight, targets)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_gradcheck():
    hidden, weight, targets = toy(B=2, T=3, C=4, V=9, dtype=torch.float64)
    targets[1, 0] = -1
    hidden.requires_grad_()
    weight.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda h, w: linear_cross_entropy(h, w, targets, chunk_rows=2), (hidden, weight)
    )


def test_float32_and_a_custom_ignore_index():
    hidden, weight, targets = toy()
    targets[1, 3] = 7
    ours = loss_and_grads(linear_cross_entropy, hidden, weight, targets, ignore_index=7)
    ref = loss_and_grads(textbook, hidden, weight, targets, ignore_index=7)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_gradients_scale_with_the_incoming_gradient():
    hidden, weight, targets = toy()
    hidden.requires_grad_()
    (2.5 * linear_cross_entropy(hidden, weight, targets)).backward()
    expected = torch.autograd.grad(2.5 * textbook(hidden, weight, targets), hidden)[0]
    torch.testing.assert_close(hidden.grad, expected)


def test_only_the_inputs_that_need_a_gradient_get_one():
    hidden, weight, targets = toy()
    weight.requires_grad_()  # frozen hidden states, trainable weight
    loss = linear_cross_entropy(hidden, weight, targets)
    (grad_w,) = torch.autograd.grad(loss, weight)
    torch.testing.assert_close(grad_w, loss_and_grads(textbook, hidden, weight, targets)[2])


def test_without_grad_mode_only_the_loss_is_computed():
    hidden, weight, targets = toy()
    weight.requires_grad_()
    with torch.no_grad():
        loss = linear_cross_entropy(hidden, weight, targets)
    assert loss.grad_fn is None
    torch.testing.assert_close(loss, textbook(hidden, weight, targets))


def test_bf16_autocast_multiplies_in_bf16_like_the_textbook_under_autocast():
    hidden, weight, targets = toy(B=4, T=64, C=64, V=500)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = loss_and_grads(linear_cross_entropy, hidden, weight, targets)
        ref = loss_and_grads(textbook, hidden, weight, targets)
    fp32 = textbook(hidden, weight, targets)
    assert ours[0].dtype == torch.float32 and ours[1].dtype == torch.float32
    # the same bf16 products as lm_head under autocast: far closer to it than to fp32
    assert (ours[0] - ref[0]).abs() < 1e-5 < 1e-4 < (ours[0] - fp32).abs()
    for a, b in zip(ours[1:], ref[1:]):
        torch.testing.assert_close(a, b, rtol=2e-2, atol=1e-5)


def test_fp16_autocast_keeps_the_small_gradients():
    # A near-uniform softmax over V = 10,000 at n = 4,096 positions: softmax / n is about 2e-8,
    # below fp16's smallest number. The weight rows no target uses get only those entries, so
    # they would get no gradient at all if the gradient products ran in fp16.
    hidden, weight, _ = toy(B=1, T=4096, C=16, V=10_000)
    weight = weight * 0.01
    targets = torch.randint(0, 100, (1, 4096), generator=torch.Generator().manual_seed(1))
    with torch.autocast("cpu", dtype=torch.float16):
        ours = loss_and_grads(linear_cross_entropy, hidden, weight, targets)
    ref = loss_and_grads(textbook, hidden, weight, targets)
    grad_w, ref_grad_w = ours[2][100:], ref[2][100:]  # the rows no target uses
    assert (grad_w - ref_grad_w).norm() / ref_grad_w.norm() < 1e-2
    assert (ours[1] - ref[1]).norm() / ref[1].norm() < 1e-2


def test_bf16_inputs_give_a_bf16_loss_like_the_textbook():
    hidden, weight, targets = toy(dtype=torch.bfloat16)
    ours = linear_cross_entropy(hidden, weight, targets)
    assert ours.dtype == textbook(hidden, weight, targets).dtype == torch.bfloat16


def test_an_ignored_position_does_not_count_even_when_it_is_not_finite():
    hidden, weight, targets = toy()
    hidden[1, 2] = float("inf")
    targets[1, 2] = -1
    loss = linear_cross_entropy(hidden, weight, targets)
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, textbook(hidden, weight, targets))


def test_a_second_derivative_is_a_clear_error():
    hidden, weight, targets = toy()
    hidden.requires_grad_()
    loss = linear_cross_entropy(hidden, weight, targets)
    with pytest.raises(RuntimeError, match="no second derivative"):
        torch.autograd.grad(loss, hidden, create_graph=True)
    with pytest.raises(RuntimeError, match="no second derivative"):
        torch.autograd.functional.hessian(
            lambda h: linear_cross_entropy(h, weight, targets[0, :2]), hidden[0, :2].detach()
        )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_equals_the_textbook():
    hidden, weight, targets = (t.cuda() for t in toy(C=64, V=3000))
    targets[0, 0] = -1
    ours = loss_and_grads(linear_cross_entropy, hidden, weight, targets, chunk_rows=8)
    ref = loss_and_grads(textbook, hidden, weight, targets)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_nothing_counted_gives_nan_like_the_textbook():
    hidden, weight, _ = toy()
    targets = torch.full(hidden.shape[:-1], -1)
    assert torch.isnan(linear_cross_entropy(hidden, weight, targets))
    assert torch.isnan(textbook(hidden, weight, targets))


def test_no_vocabulary_sized_tensor_is_kept_for_backward():
    N, C, V = 64, 8, 1000
    hidden, weight, targets = toy(B=1, T=N, C=C, V=V)
    hidden.requires_grad_()
    weight.requires_grad_()

    def largest_saved(fn):
        sizes = [0]

        def pack(t):
            sizes.append(t.numel())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn(hidden, weight, targets)
        return max(sizes)

    assert largest_saved(textbook) >= N * V  # the control: the textbook keeps its logits
    assert largest_saved(linear_cross_entropy) == V * C  # ours keeps two gradients only


@pytest.mark.parametrize(
    "hidden_shape, weight_shape, targets_shape, chunk_rows, message",
    [
        ((2, 3, 8), (10, 8), (2, 4), 16, "do not match hidden states"),
        ((2, 3, 8), (10, 7), (2, 3), 16, "expected \\(V, 8\\)"),
        ((2, 3, 8), (10, 8), (2, 3), 0, "chunk_rows must be at least 1"),
    ],
)
def test_bad_input_gets_a_clear_error(
    hidden_shape, weight_shape, targets_shape, chunk_rows, message
):
    with pytest.raises(ValueError, match=message):
        linear_cross_entropy(
            torch.randn(hidden_shape),
            torch.randn(weight_shape),
            torch.zeros(targets_shape, dtype=torch.long),
            chunk_rows=chunk_rows,
        )


@pytest.mark.parametrize(
    "options",
    [
        {"tie_weights": True},
        {"tie_weights": False},
        {"pos_embedding": "rope", "n_kv_head": 1, "norm": "rmsnorm", "mlp": "swiglu"},
    ],
)
def test_gpt_loss_without_logits_equals_the_loss_from_logits(options):
    torch.manual_seed(0)
    config = GPTConfig(
        vocab_size=97, block_size=16, n_layer=2, n_head=2, n_embd=32, dropout=0.0, **options
    )
    model = GPT(config)
    x = torch.randint(0, 97, (4, 16))
    y = torch.randint(0, 97, (4, 16))
    y[0, :3] = -1
    logits, loss = model(x, y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    no_logits, fused = model(x, y, return_logits=False)
    fused_grads = torch.autograd.grad(fused, list(model.parameters()))
    assert logits.shape == (4, 16, 97) and no_logits is None
    torch.testing.assert_close(fused, loss, rtol=1e-6, atol=1e-6)
    for a, b in zip(fused_grads, grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_gpt_return_logits_false_needs_targets():
    model = GPT(GPTConfig(vocab_size=11, block_size=4, n_layer=1, n_head=1, n_embd=8))
    with pytest.raises(ValueError, match="needs targets"):
        model(torch.zeros(1, 4, dtype=torch.long), return_logits=False)
