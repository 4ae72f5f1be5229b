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
