"""Convert between our GPT and Hugging Face's GPT-2, both ways.

Our parameter names equal Hugging Face's, so conversion is a loop over the state dict. The one
twist: GPT-2's original code used a ``Conv1D`` layer that stores its matrix as (in, out), while
``nn.Linear`` stores (out, in), so those four matrices are transposed on the way.
"""

from __future__ import annotations

import torch

from tinygpt.model import GPT, GPTConfig

# Hugging Face GPT-2 layers that are Conv1D, i.e. whose weight is the transpose of ours.
CONV1D_WEIGHTS = (
    "attn.c_attn.weight",
    "attn.c_proj.weight",
    "mlp.c_fc.weight",
    "mlp.c_proj.weight",
)
# Buffers some transformers versions keep in the state dict (the causal mask): not parameters.
HF_BUFFERS = (".attn.bias", ".attn.masked_bias")


def config_from_hf(hf_config) -> GPTConfig:
    """Our GPTConfig for a ``transformers.GPT2Config``."""
    if hf_config.n_inner not in (None, 4 * hf_config.n_embd):
        raise ValueError(
            f"only an MLP width of 4·n_embd is supported, got n_inner={hf_config.n_inner}"
        )
    if hf_config.activation_function != "gelu_new":
        raise ValueError(
            f"only GPT-2's tanh GELU ('gelu_new') is supported, got "
            f"{hf_config.activation_function!r}"
        )
    return GPTConfig(
        vocab_size=hf_config.vocab_size,
        block_size=hf_config.n_positions,
        n_layer=hf_config.n_layer,
        n_head=hf_config.n_head,
        n_embd=hf_config.n_embd,
        dropout=0.0,
        bias=True,
        tie_weights=hf_config.tie_word_embeddings,
    )


def config_to_hf(config: GPTConfig):
    """A ``transformers.GPT2Config`` for our GPTConfig (GPT-2 always has biases)."""
    from transformers import GPT2Config

    if not config.bias:
        raise ValueError("Hugging Face GPT-2 always has biases; this config has bias=False")
    return GPT2Config(
        vocab_size=config.vocab_size,
        n_positions=config.block_size,
        n_embd=config.n_embd,
        n_layer=config.n_layer,
        n_head=config.n_head,
        activation_function="gelu_new",
        resid_pdrop=config.dropout,
        embd_pdrop=config.dropout,
        attn_pdrop=config.dropout,
        layer_norm_epsilon=1e-5,
        tie_word_embeddings=config.tie_weights,
        # GPT-2's <|endoftext|>; kept inside a smaller test vocabulary.
        bos_token_id=min(50256, config.vocab_size - 1),
        eos_token_id=min(50256, config.vocab_size - 1),
    )


def from_hf_state_dict(hf_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hugging Face GPT-2 state dict -> ours."""
    ours = {}
    for name, tensor in hf_state.items():
        if name.endswith(HF_BUFFERS):
            continue
        ours[name] = tensor.t() if name.endswith(CONV1D_WEIGHTS) else tensor
    return ours


def to_hf_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our state dict -> Hugging Face GPT-2's (the same loop: transposing is its own inverse)."""
    return {
        name: tensor.t() if name.endswith(CONV1D_WEIGHTS) else tensor
        for name, tensor in state.items()
    }


def from_hf(hf_model) -> GPT:
    """Our GPT holding a copy of a ``transformers.GPT2LMHeadModel``'s weights."""
    model = GPT(config_from_hf(hf_model.config))
    model.load_weights(from_hf_state_dict(hf_model.state_dict()))
    return model


def to_hf(model: GPT):
    """A ``transformers.GPT2LMHeadModel`` holding a copy of our GPT's weights."""
    from transformers import GPT2LMHeadModel

    hf_model = GPT2LMHeadModel(config_to_hf(model.config))
    state = to_hf_state_dict(model.state_dict())
    missing, unexpected = hf_model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith(HF_BUFFERS)]
    if missing or unexpected:
        raise ValueError(f"state dicts do not match: missing {missing}, unexpected {unexpected}")
    hf_model.eval()
    return hf_model
