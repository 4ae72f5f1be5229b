"""Cross-entropy over the vocabulary without ever holding the (N, V) logits.

The output layer is the most expensive part of a small GPT: ``lm_head`` gives each of the
N = B·T positions V scores, and ``F.cross_entropy`` then makes several full passes over that
(N, V) matrix: log-softmax forward (whose output it keeps for backward), the gradient of the
picked targets, log-softmax backward. At the seed configuration (N 4096, V 50257) each such
matrix is 823 MB of fp32, far larger than any cache, and freshly allocated every step.

``linear_cross_entropy`` computes the same loss and the same gradients chunk by chunk of
rows. For each chunk it forms that chunk's logits once and, when gradients are wanted, turns
them *in place* into the gradient of the mean loss with respect to the logits,

    (softmax(logits) - onehot(target)) / n        (n = number of counted positions),

which it multiplies straight into the gradients of the hidden states (N, C) and of the weight
(V, C). Backward then only scales those two by the incoming gradient. The same idea drives
Liger Kernel's fused linear cross-entropy and Cut Cross-Entropy (Wijmans et al., 2024); this
is a plain-PyTorch version of it. Appendix A measures what it buys.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

CHUNK_ROWS = 1024  # rows of logits formed at a time: 206 MB of fp32 at V = 50257


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
    gradients asked for, all computed one chunk of rows at a time."""
    device_type = hidden.device.type
    # Under autocast the matmuls run in the autocast dtype, like lm_head's would; the softmax,
    # the loss and the weight's gradient sum run in at least fp32.
    autocast_known = torch.amp.is_autocast_available(device_type)  # not on "meta"
    if autocast_known and torch.is_autocast_enabled(device_type):
        dtype = torch.get_autocast_dtype(device_type)
    else:
        dtype = hidden.dtype
    acc = torch.promote_types(dtype, torch.float32)
    no_autocast = torch.autocast(device_type, enabled=False) if autocast_known else nullcontext()
    with no_autocast:
        h, w = hidden.to(dtype), weight.to(dtype)
        counted = targets != ignore_index  # (N,)
        count = counted.sum()
        safe_targets = targets.masked_fill(~counted, 0)  # any valid index: those rows count 0
        # An ignored row's softmax must vanish: subtracting +inf before exp makes it exactly 0.
        shift = torch.where(counted, count.clamp(min=1).to(acc).log(), torch.inf)  # (N,)
        minus_one_over_n = -counted.to(acc) / count.clamp(min=1)  # (N,)

        total = torch.zeros((), dtype=acc, device=hidden.device)
        grad_h = torch.empty_like(h) if want_grad_hidden else None
        grad_w = None
        if want_grad_weight:  # accumulated over chunks, so in at least fp32
            grad_w = torch.zeros(w.shape, dtype=acc, device=w.device)
        for start in range(0, h.size(0), chunk_rows):
            rows = slice(start, start + chunk_rows)
            logits = (h[rows] @ w.T).to(acc)  # (n, V)
            lse = torch.logsumexp(logits, dim=-1)  # (n,)
            picked = logits.gather(1, safe_targets[rows, None]).squeeze(1)  # (n,)
            total += ((lse - picked) * counted[rows]).sum()
            if grad_h is None and grad_w is None:
                continue
            # d loss / d logits, built in the logits' own memory: softmax / count, then the
            # target's -1 / count. No second (n, V) tensor is allocated.
            g = logits.sub_((lse + shift[rows])[:, None]).exp_()
            g.scatter_add_(1, safe_targets[rows, None], minus_one_over_n[rows, None])
            g = g.to(dtype)
            if grad_h is not None:
                grad_h[rows] = g @ w  # (n, C)
            if grad_w is not None:
                if dtype == acc:
                    grad_w.addmm_(g.T, h[rows])  # (V, C), accumulated without a temporary
                else:
                    grad_w += g.T @ h[rows]
    loss = total / count  # nan when nothing is counted, as F.cross_entropy
    return (
        loss,
        None if grad_h is None else grad_h.to(hidden.dtype),
        None if grad_w is None else grad_w.to(weight.dtype),
    )


class _LinearCrossEntropy(torch.autograd.Function):
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
        grad_h, grad_w = ctx.saved_tensors
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
    ignore_index=ignore_index)``, but only (chunk_rows, V) logits exist at any moment.
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
