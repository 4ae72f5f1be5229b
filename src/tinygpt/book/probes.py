"""Looking inside a model: read what its layers compute without changing the model's code."""

from __future__ import annotations


def attention_maps(model, idx):
    """Every layer's attention weights for the token ids ``idx`` (B, T).

    Returns a list with one (B, nh, T, T) tensor per layer: row t of head h holds how much query
    t attends to each key. A model with its own ``attention_maps(idx)`` method (Chapter 4's
    attention-only model) is asked directly. For a ``tinygpt`` GPT, a forward pre-hook on each
    ``block.attn`` records the tensor that block's attention receives (the output of ``ln_1``);
    ``attn.attention_weights`` then turns it into weights, exactly as the forward pass does.
    The model runs in eval mode without gradients; its training mode is restored and the hooks
    removed afterwards, even on error.
    """
    import torch

    if hasattr(model, "attention_maps"):
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                return model.attention_maps(idx)
        finally:
            model.train(was_training)
    blocks = list(model.transformer.h)
    inputs: list = [None] * len(blocks)

    def recorder(i: int):
        def hook(module, args):
            inputs[i] = args[0]  # the (B, T, C) input of block i's attention

        return hook

    handles = [block.attn.register_forward_pre_hook(recorder(i)) for i, block in enumerate(blocks)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(idx)
            return [block.attn.attention_weights(x) for block, x in zip(blocks, inputs)]
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)


WIRINGS = ("pre-norm", "post-norm", "no residual")


def rewire_blocks(model, wiring: str):
    """Change, in place, how every block of a ``tinygpt`` GPT connects its two sublayers.

    ``"pre-norm"`` is GPT-2's wiring and the package's, x + f(LN(x)); ``"post-norm"`` is the
    original Transformer's, LN(x + f(x)); ``"no residual"`` drops the additions, f(LN(x)). The
    weights stay as they are, so the three can be compared on the same initialisation. Returns
    the model.
    """
    import types

    # The model calls block(x, cache, layer, rope); these wirings train without cache or RoPE.
    def pre_norm(block, x, *_):
        x = x + block.attn(block.ln_1(x))
        return x + block.mlp(block.ln_2(x))

    def post_norm(block, x, *_):
        x = block.ln_1(x + block.attn(x))
        return block.ln_2(x + block.mlp(x))

    def no_residual(block, x, *_):
        return block.mlp(block.ln_2(block.attn(block.ln_1(x))))

    forwards = dict(zip(WIRINGS, (pre_norm, post_norm, no_residual)))
    if wiring not in forwards:
        raise ValueError(f"wiring must be one of {', '.join(map(repr, WIRINGS))}, got {wiring!r}")
    for block in model.transformer.h:
        block.forward = types.MethodType(forwards[wiring], block)
    return model


def block_gradient_norms(model, idx, targets) -> list[float]:
    """The gradient norm of each block's parameters, first block first, after one backward pass
    of the loss on ``(idx, targets)``: how much of the learning signal reaches each depth."""
    import torch

    model.zero_grad(set_to_none=True)
    _, loss = model(idx, targets)
    loss.backward()
    norms = []
    for block in model.transformer.h:
        squares = [p.grad.pow(2).sum() for p in block.parameters() if p.grad is not None]
        norms.append(torch.stack(squares).sum().sqrt().item())
    model.zero_grad(set_to_none=True)
    return norms
