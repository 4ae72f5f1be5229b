"""Cross-entropy over the vocabulary without ever holding the (B·T, V) logits.

The output layer is the most expensive part of a small GPT: ``lm_head`` gives each of the
B·T positions V scores, and ``F.cross_entropy`` then makes several full passes over that
(B·T, V) matrix: log-softmax forward (whose output it keeps for backward), the gradient of the
picked targets, log-softmax backward. At the seed configuration (B·T 4096, V 50257) each such
matrix is 823 MB of fp32, far larger than any cache, and freshly allocated every step.

``linear_cross_entropy`` computes the same loss and the same gradients one chunk of positions
at a time. For each chunk it forms that chunk's logits once and, when gradients are wanted,
turns them *in place* into the gradient of the mean loss with respect to the logits,

    (softmax(logits) - onehot(target)) / n        (n = number of counted positions),

which it multiplies straight into the gradients of the hidden states (B·T, C) and of the
weight (V, C). Backward then only scales those two by the incoming gradient. Computing the
gradients in the forward pass is the idea of Liger Kernel's fused linear cross-entropy (Hsu et
al., 2024); Cut Cross-Entropy (Wijmans et al., 2025) also avoids the logits, with GPU kernels
that keep even a chunk of them out of main memory. This is a plain-PyTorch version; Appendix A
derives it and measures what it buys.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

CHUNK_ROWS = 1024  # positions whose logits are formed at a time: 206 MB of fp32 at V = 50257


def _loss_and_grads(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    ignore_index: int,
    chunk_rows: int,
    want_grad_hidden: bool,
    want_grad_weight: bool,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Mean loss of ``hidden @ weight.T`` (hidden (N, C), weight (V, C), targets (N,)), and the
    gradients asked for, all computed one chunk of positions at a time."""
    device_type = hidden.device.type
    # Under autocast the products run in the autocast dtype, like lm_head's would; the softmax,
    # the loss and the sums over chunks run in at least fp32.
    autocast_known = torch.amp.is_autocast_available(device_type)  # not on "meta"
    autocasting = autocast_known and torch.is_autocast_enabled(device_type)
    dtype = torch.get_autocast_dtype(device_type) if autocasting else hidden.dtype
    acc = torch.promote_types(dtype, torch.float32)
    # fp16's narrow exponent would flush the tiny entries softmax / n to zero, so its gradient
    # products run in fp32; bf16 has fp32's range and keeps the fast products.
    grad_dtype = acc if dtype == torch.float16 else dtype
    no_autocast = torch.autocast(device_type, enabled=False) if autocast_known else nullcontext()
    with no_autocast:
        h, w = hidden.to(dtype), weight.to(dtype)
        w_for_grads = w.to(grad_dtype)
        counted = targets != ignore_index  # (N,)
        count = counted.sum()
        safe_targets = targets.masked_fill(~counted, 0)  # any valid index: those rows count 0
        # An ignored row's softmax must vanish: subtracting +inf before exp makes it exactly 0.
        shift = torch.where(counted, count.clamp(min=1).to(acc).log(), torch.inf)  # (N,)
        minus_one_over_n = -counted.to(acc) / count.clamp(min=1)  # (N,)

        total = torch.zeros((), dtype=acc, device=hidden.device)
        grad_h = (
            torch.empty(h.shape, dtype=grad_dtype, device=h.device) if want_grad_hidden else None
        )
        grad_w = None
        if want_grad_weight:  # summed over chunks, so in at least fp32
            grad_w = torch.zeros(w.shape, dtype=acc, device=w.device)
        for start in range(0, h.size(0), chunk_rows):
            rows = slice(start, start + chunk_rows)
            logits = (h[rows] @ w.T).to(acc)  # (chunk, V)
            lse = torch.logsumexp(logits, dim=-1)  # (chunk,)
            picked = logits.gather(1, safe_targets[rows, None]).squeeze(1)  # (chunk,)
            # where, not a product with 0: an ignored row must not count even if it is not finite
            total += torch.where(counted[rows], lse - picked, 0.0).sum()
            if grad_h is not None or grad_w is not None:
                # d loss / d logits, built in the logits' own memory: softmax / n, then the
                # target's -1 / n. Ignored rows become exactly 0.
                g = logits.sub_((lse + shift[rows])[:, None]).exp_()
                g.scatter_add_(1, safe_targets[rows, None], minus_one_over_n[rows, None])
                g = g.to(grad_dtype)  # (chunk, V); the same tensor when the dtypes agree
                if grad_h is not None:
                    grad_h[rows] = g @ w_for_grads  # (chunk, C)
                if grad_w is not None:
                    if grad_dtype == acc:
                        grad_w.addmm_(g.T, h[rows].to(acc))  # (V, C), no temporary
                    else:
                        grad_w += g.T @ h[rows]
                del g
            del logits  # free this chunk before the next one is formed
    loss = total / count  # nan when nothing is counted, as F.cross_entropy
    if not autocasting:
        loss = loss.to(torch.promote_types(hidden.dtype, weight.dtype))  # as F.cross_entropy
    return (
        loss,
        None if grad_h is None else grad_h.to(hidden.dtype),
        None if grad_w is None else grad_w.to(weight.dtype),
    )


class _LinearCrossEntropy(torch.autograd.Function):
    """The autograd wrapper: the forward pass returns the loss and keeps its two gradients."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, ignore_index, chunk_rows):
        loss, grad_h, grad_w = _loss_and_grads(
            hidden,
            weight,
            targets,
            ignore_index,
            chunk_rows,
            ctx.needs_input_grad[0],
            ctx.needs_input_grad[1],
        )
        ctx.save_for_backward(grad_h, grad_w)
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        if torch.is_grad_enabled():  # backward(create_graph=True): a second derivative
            raise RuntimeError(
                "linear_cross_entropy has no second derivative: its gradients are computed in "
                "the forward pass as plain numbers. Use F.cross_entropy(F.linear(...)) instead."
            )
        grad_h, grad_w = ctx.saved_tensors  # the loss is a scalar: scaling is the chain rule
        return (
            None if grad_h is None else grad_h * grad_loss,
            None if grad_w is None else grad_w * grad_loss,
            None,
            None,
            None,
        )


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    ignore_index: int = -1,
    chunk_rows: int = CHUNK_ROWS,
) -> torch.Tensor:
    """Mean cross-entropy of the logits ``hidden @ weight.T`` against ``targets``.

    hidden (..., C), weight (V, C), targets (...) with the same leading shape; positions whose
    target is ``ignore_index`` are left out of the mean. Equal, loss and gradients, to
    ``F.cross_entropy(F.linear(hidden, weight).flatten(0, -2), targets.flatten(),
    ignore_index=ignore_index)``, but the logits are formed ``chunk_rows`` positions at a time
    and dropped again, so at most one chunk of them (chunk_rows, V) exists, plus its
    low-precision copy under autocast. First derivatives only: the gradients are computed in
    the forward pass, so a second derivative (``create_graph=True``) raises an error.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    if hidden.shape[:-1] != targets.shape:
        raise ValueError(
            f"targets of shape {tuple(targets.shape)} do not match hidden states of shape "
            f"{tuple(hidden.shape)}: one target per position is needed"
        )
    if weight.dim() != 2 or weight.size(1) != hidden.size(-1):
        raise ValueError(
            f"weight of shape {tuple(weight.shape)} does not map width {hidden.size(-1)} "
            f"to a vocabulary: expected (V, {hidden.size(-1)})"
        )
    hidden, targets = hidden.reshape(-1, hidden.size(-1)), targets.reshape(-1)  # (N, C), (N,)
    if not torch.is_grad_enabled():  # evaluation: the loss alone, no gradient work
        return _loss_and_grads(hidden, weight, targets, ignore_index, chunk_rows, False, False)[0]
    return _LinearCrossEntropy.apply(hidden, weight, targets, ignore_index, chunk_rows)
