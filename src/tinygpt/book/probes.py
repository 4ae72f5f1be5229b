"""Looking inside a model: read what its layers compute without changing the model's code."""

from __future__ import annotations


def attention_maps(model, idx):
    """Every layer's attention weights for the token ids ``idx`` (B, T).

    Returns a list with one (B, nh, T, T) tensor per layer: row t of head h holds how much query
    t attends to each key. A model with its own ``attention_maps(idx)`` method (Chapter 4's
    attention-only model) is asked directly. For a ``tinygpt`` GPT, a forward pre-hook on each
    ``block.attn`` records the tensor that block's attention receives (the output of ``ln_1``)
    and, for RoPE, the rotation it is given; ``attn.attention_weights`` then turns them into
    weights, exactly as the forward pass does.
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
            inputs[i] = args  # (x (B, T, C), cache, layer, rope): block i's attention's input

        return hook

    handles = [block.attn.register_forward_pre_hook(recorder(i)) for i, block in enumerate(blocks)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(idx)
            return [
                block.attn.attention_weights(args[0], args[3] if len(args) > 3 else None)
                for block, args in zip(blocks, inputs)
            ]
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


class NotRecordedError(LookupError):
    """Asked a ``RecordedAttention`` for token ids it has no maps for."""


class RecordedAttention:
    """A model's attention maps for a few token sequences, kept where its weights cannot go.

    The ten-minute model's weights (13 MB) are not committed, so the book cannot run it; a
    recording of what its heads do on a few prompts is small, and stands in for the model
    wherever ``attention_maps`` is asked (the attention explorer included). Any other token
    sequence raises ``NotRecordedError``, which says how to get the model itself.
    """

    training = False

    def __init__(self, block_size: int, maps: dict[tuple[int, ...], list], source: str = ""):
        self.block_size = block_size
        self.maps = maps  # token ids -> per layer, per head, per query t: weights of keys 0..t
        self.source = source  # how to make the model that was recorded

    @classmethod
    def record(cls, model, sequences, source: str = "", digits: int = 3) -> RecordedAttention:
        """Record ``model``'s maps for each id sequence (in the model's own vocabulary)."""
        import torch

        maps = {}
        for ids in sequences:
            layers = attention_maps(model, torch.tensor([list(ids)]))  # per layer (1, nh, T, T)
            maps[tuple(ids)] = [
                [[[round(w, digits) for w in row[: t + 1]] for t, row in enumerate(head)]
                 for head in weights[0].tolist()]
                for weights in layers
            ]  # fmt: skip
        return cls(model.config.block_size, maps, source)

    def attention_maps(self, idx) -> list:
        """The recorded maps of ``idx`` (1, T), as ``attention_maps`` returns them."""
        import torch

        key = tuple(idx[0].tolist())
        if idx.size(0) != 1 or key not in self.maps:
            raise NotRecordedError(
                f"no recorded attention for this text (the recording holds {len(self.maps)} "
                f"prompts); {self.source or 'run the model itself'}"
            )
        T = len(key)
        out = []
        for layer in self.maps[key]:
            weights = torch.zeros(1, len(layer), T, T)
            for h, head in enumerate(layer):
                for t, row in enumerate(head):
                    weights[0, h, t, : t + 1] = torch.tensor(row)
            out.append(weights)
        return out

    def eval(self) -> RecordedAttention:
        return self

    def train(self, mode: bool = True) -> RecordedAttention:
        return self

    def to_json(self) -> dict:
        return {"block_size": self.block_size, "source": self.source,
                "records": [{"ids": list(k), "maps": v} for k, v in self.maps.items()]}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict) -> RecordedAttention:
        maps = {tuple(r["ids"]): r["maps"] for r in data["records"]}
        return cls(data["block_size"], maps, data.get("source", ""))
