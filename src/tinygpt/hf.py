"""Convert between our GPT and Hugging Face's GPT-2 and Llama, both ways.

GPT-2 (Chapter 5): our parameter names equal Hugging Face's, so conversion is a loop over the
state dict. The one twist: GPT-2's original code used a ``Conv1D`` layer that stores its matrix as
(in, out), while ``nn.Linear`` stores (out, in), so those four matrices are transposed on the way.

Llama (Chapter 8): our GPT with ``pos_embedding="rope"``, ``norm="rmsnorm"``, ``mlp="swiglu"``,
``bias=False`` and optionally ``n_kv_head < n_head`` is the same function as a
``LlamaForCausalLM``. Llama keeps q, k and v (and the MLP's gate and up) as separate matrices
where we fuse them, so conversion is a rename plus a concatenation (or a split).
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
        norm_eps=hf_config.layer_norm_epsilon,
    )


def is_gpt2_style(config: GPTConfig) -> bool:
    return (config.pos_embedding, config.norm, config.mlp) == ("learned", "layernorm", "gelu") and (
        config.kv_heads == config.n_head
        and config.hidden_size == 4 * config.n_embd
        and not config.qk_norm
    )


def is_llama_style(config: GPTConfig) -> bool:
    styled = (config.pos_embedding, config.norm, config.mlp) == ("rope", "rmsnorm", "swiglu")
    return styled and not config.qk_norm


def config_to_hf(config: GPTConfig):
    """A ``transformers.GPT2Config`` for our GPTConfig (GPT-2 always has biases)."""
    from transformers import GPT2Config

    if not is_gpt2_style(config):
        raise ValueError(
            "only a GPT-2-style config (learned positions, LayerNorm, GELU MLP of width 4C, "
            "n_kv_head = n_head) has a Hugging Face GPT-2 equivalent"
        )
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
        layer_norm_epsilon=config.norm_eps,
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


def config_from_llama(hf_config) -> GPTConfig:
    """Our GPTConfig for a ``transformers.LlamaConfig`` (default RoPE, no scaling)."""
    rope = hf_config.rope_parameters or {}
    if rope.get("rope_type", "default") != "default":
        raise ValueError(f"only plain RoPE is supported, got rope_type={rope['rope_type']!r}")
    if hf_config.hidden_act != "silu":
        raise ValueError(
            f"only SwiGLU (hidden_act='silu') is supported, got {hf_config.hidden_act!r}"
        )
    head_dim = getattr(hf_config, "head_dim", None) or (
        hf_config.hidden_size // hf_config.num_attention_heads
    )
    if head_dim * hf_config.num_attention_heads != hf_config.hidden_size:
        raise ValueError("only head_dim = hidden_size / num_attention_heads is supported")
    if hf_config.attention_bias != hf_config.mlp_bias:
        raise ValueError("attention_bias and mlp_bias must agree (one bias flag here)")
    return GPTConfig(
        vocab_size=hf_config.vocab_size,
        block_size=hf_config.max_position_embeddings,
        n_layer=hf_config.num_hidden_layers,
        n_head=hf_config.num_attention_heads,
        n_kv_head=hf_config.num_key_value_heads or hf_config.num_attention_heads,
        n_embd=hf_config.hidden_size,
        dropout=0.0,
        bias=hf_config.attention_bias,
        tie_weights=hf_config.tie_word_embeddings,
        pos_embedding="rope",
        rope_theta=float(rope.get("rope_theta", 10_000.0)),
        norm="rmsnorm",
        norm_eps=hf_config.rms_norm_eps,
        mlp="swiglu",
        mlp_hidden=hf_config.intermediate_size,
    )


def config_to_llama(config: GPTConfig):
    """A ``transformers.LlamaConfig`` for our Llama-style GPTConfig."""
    from transformers import LlamaConfig

    if not is_llama_style(config):
        raise ValueError(
            "only a Llama-style config (pos_embedding='rope', norm='rmsnorm', mlp='swiglu') has "
            "a Hugging Face Llama equivalent"
        )
    return LlamaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.n_embd,
        intermediate_size=config.hidden_size,
        num_hidden_layers=config.n_layer,
        num_attention_heads=config.n_head,
        num_key_value_heads=config.kv_heads,
        head_dim=config.head_size,
        hidden_act="silu",
        max_position_embeddings=config.block_size,
        rms_norm_eps=config.norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta},
        tie_word_embeddings=config.tie_weights,
        attention_bias=config.bias,
        mlp_bias=config.bias,
        attention_dropout=config.dropout,
        bos_token_id=None,
        eos_token_id=None,
    )


# Our name -> Llama's, for the tensors that are a plain rename ({i} is the layer).
LLAMA_RENAMES = {
    "transformer.wte.weight": "model.embed_tokens.weight",
    "transformer.ln_f.weight": "model.norm.weight",
    "lm_head.weight": "lm_head.weight",
    "transformer.h.{i}.ln_1.weight": "model.layers.{i}.input_layernorm.weight",
    "transformer.h.{i}.ln_2.weight": "model.layers.{i}.post_attention_layernorm.weight",
    "transformer.h.{i}.attn.c_proj.{p}": "model.layers.{i}.self_attn.o_proj.{p}",
    "transformer.h.{i}.mlp.c_proj.{p}": "model.layers.{i}.mlp.down_proj.{p}",
}
# Our fused tensor -> Llama's pieces, in the order they are stacked along dim 0.
LLAMA_FUSED = {
    "transformer.h.{i}.attn.c_attn.{p}": [
        "model.layers.{i}.self_attn.q_proj.{p}",
        "model.layers.{i}.self_attn.k_proj.{p}",
        "model.layers.{i}.self_attn.v_proj.{p}",
    ],
    "transformer.h.{i}.mlp.c_fc.{p}": [
        "model.layers.{i}.mlp.gate_proj.{p}",
        "model.layers.{i}.mlp.up_proj.{p}",
    ],
}


def llama_names(config: GPTConfig) -> list[tuple[str, list[str]]]:
    """(our name, [Llama names]) for every tensor of a Llama-style config."""
    pairs = []
    for ours, theirs in {**LLAMA_RENAMES, **LLAMA_FUSED}.items():
        theirs = theirs if isinstance(theirs, list) else [theirs]
        layers = range(config.n_layer) if "{i}" in ours else [None]
        kinds = ("weight", "bias") if "{p}" in ours and config.bias else ("weight",)
        for i in layers:
            for kind in kinds if "{p}" in ours else [None]:
                pairs.append((ours.format(i=i, p=kind), [t.format(i=i, p=kind) for t in theirs]))
    return pairs


def from_llama_state_dict(
    hf_state: dict[str, torch.Tensor], config: GPTConfig
) -> dict[str, torch.Tensor]:
    """Hugging Face Llama state dict -> ours: rename, and concatenate q|k|v and gate|up."""
    ours = {}
    for name, pieces in llama_names(config):
        if name == "lm_head.weight" and config.tie_weights:
            continue
        ours[name] = torch.cat([hf_state[p] for p in pieces], dim=0)
    return ours


def to_llama_state_dict(
    state: dict[str, torch.Tensor], config: GPTConfig
) -> dict[str, torch.Tensor]:
    """Our state dict -> Hugging Face Llama's: rename, and split the fused matrices."""
    theirs = {}
    kv = config.kv_heads * config.head_size
    for name, pieces in llama_names(config):
        tensor = state[name]
        if ".c_attn." in name:
            parts = tensor.split([config.n_embd, kv, kv], dim=0)
        elif ".c_fc." in name:
            parts = tensor.chunk(2, dim=0)
        else:
            parts = [tensor]
        theirs.update({p: t.clone() for p, t in zip(pieces, parts, strict=True)})
    return theirs


def from_hf(hf_model) -> GPT:
    """Our GPT holding a copy of a ``GPT2LMHeadModel``'s weights.

    [ch8] Or of a ``LlamaForCausalLM``'s.
    """
    model_type = hf_model.config.model_type
    if model_type == "gpt2":
        model = GPT(config_from_hf(hf_model.config))
        model.load_weights(from_hf_state_dict(hf_model.state_dict()))
    elif model_type == "llama":  # [ch8]
        model = GPT(config_from_llama(hf_model.config))
        model.load_weights(from_llama_state_dict(hf_model.state_dict(), model.config))
    else:
        # [<ch8] raise ValueError(f"only GPT-2 converts, got model_type={model_type!r}")
        raise ValueError(f"only GPT-2 and Llama convert, got model_type={model_type!r}")  # [ch8]
    return model.eval()


def to_hf(model: GPT):
    """A ``GPT2LMHeadModel`` (GPT-2-style config) or ``LlamaForCausalLM`` (Llama-style config)
    holding a copy of our GPT's weights."""
    from transformers import GPT2LMHeadModel, LlamaForCausalLM

    if is_llama_style(model.config):
        hf_model = LlamaForCausalLM(config_to_llama(model.config))
        hf_model.load_state_dict(to_llama_state_dict(model.state_dict(), model.config))
        return hf_model.eval()
    hf_model = GPT2LMHeadModel(config_to_hf(model.config))
    state = to_hf_state_dict(model.state_dict())
    missing, unexpected = hf_model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith(HF_BUFFERS)]
    if missing or unexpected:
        raise ValueError(f"state dicts do not match: missing {missing}, unexpected {unexpected}")
    hf_model.eval()
    return hf_model
