"""Chapter 8: GQA, RMSNorm, SwiGLU and RoPE inside the model, proven against Hugging Face Llama."""

from dataclasses import replace

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.models.llama.modeling_llama import (
    LlamaAttention,
    LlamaMLP,
    LlamaRMSNorm,
    LlamaRotaryEmbedding,
)

from tinygpt.attention import CausalSelfAttention
from tinygpt.generate import SamplingConfig, generate
from tinygpt.hf import config_to_llama, from_hf, to_hf
from tinygpt.model import GPT, GPTConfig, RMSNorm, SwiGLU

LLAMA_STYLE = dict(pos_embedding="rope", norm="rmsnorm", mlp="swiglu", bias=False)


def tiny(**overrides) -> GPTConfig:
    values = dict(vocab_size=97, block_size=32, n_layer=2, n_head=4, n_embd=32, tie_weights=False)
    return GPTConfig(**{**values, **overrides})


def causal_additive_mask(T: int) -> torch.Tensor:
    """The (1, 1, T, T) float mask Hugging Face's eager attention adds to the scores."""
    return torch.full((T, T), float("-inf")).triu(1)[None, None]


@pytest.mark.parametrize("n_head, n_kv_head", [(4, 4), (4, 2), (6, 3), (4, 1)])
@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
def test_attention_equals_llama_attention(n_head, n_kv_head, implementation):
    torch.manual_seed(0)
    hs, T = 8, 11
    C = n_head * hs
    hf_config = LlamaConfig(
        hidden_size=C,
        num_attention_heads=n_head,
        num_key_value_heads=n_kv_head,
        head_dim=hs,
        max_position_embeddings=T,
        rope_parameters={"rope_type": "default", "rope_theta": 500.0},
    )
    hf_config._attn_implementation = "eager"
    theirs = LlamaAttention(hf_config, layer_idx=0).eval()
    ours = CausalSelfAttention(
        C, n_head, bias=False, implementation=implementation, n_kv_head=n_kv_head
    ).eval()
    with torch.no_grad():  # our c_attn is q_proj, k_proj and v_proj stacked
        ours.c_attn.weight.copy_(
            torch.cat([theirs.q_proj.weight, theirs.k_proj.weight, theirs.v_proj.weight])
        )
        ours.c_proj.weight.copy_(theirs.o_proj.weight)
    x = torch.randn(2, T, C)
    positions = torch.arange(T)
    cos, sin = LlamaRotaryEmbedding(hf_config)(x, positions[None])
    expected, _ = theirs(x, position_embeddings=(cos, sin), attention_mask=causal_additive_mask(T))
    got = ours(x, rope=(cos[0], sin[0]))
    assert (got - expected).abs().max() < 1e-6
    assert ours.c_attn.out_features == C + 2 * n_kv_head * hs  # fewer k/v heads, fewer weights


def test_rmsnorm_equals_llama_and_torch():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 16) * 4
    ours, theirs, torch_norm = (
        RMSNorm(16, eps=1e-6),
        LlamaRMSNorm(16, eps=1e-6),
        torch.nn.RMSNorm(16, eps=1e-6),
    )
    with torch.no_grad():
        for norm in (ours, theirs, torch_norm):
            norm.weight.copy_(torch.linspace(0.5, 2.0, 16))
    assert (ours(x) - theirs(x)).abs().max() < 1e-6
    assert (ours(x) - torch_norm(x)).abs().max() < 1e-5
    half = x.bfloat16()  # normalised in float32 internally, exactly as Llama does
    assert torch.equal(ours(half), theirs(half))


def test_swiglu_equals_llama_mlp():
    torch.manual_seed(0)
    config = tiny(**LLAMA_STYLE)
    ours = SwiGLU(config)
    theirs = LlamaMLP(config_to_llama(config))
    with torch.no_grad():
        ours.c_fc.weight.copy_(torch.cat([theirs.gate_proj.weight, theirs.up_proj.weight]))
        ours.c_proj.weight.copy_(theirs.down_proj.weight)
    x = torch.randn(2, 7, 32)
    assert (ours(x) - theirs(x)).abs().max() < 1e-6


@pytest.mark.parametrize(
    "overrides",
    [
        dict(n_kv_head=2),
        dict(n_kv_head=1, tie_weights=True),
        dict(n_kv_head=4, bias=True),
        dict(n_head=6, n_kv_head=2, n_embd=48, rope_theta=500_000.0, mlp_hidden=40),
    ],
)
def test_whole_model_equals_llama_for_causal_lm(overrides):
    torch.manual_seed(0)
    config = tiny(**{**LLAMA_STYLE, **overrides})
    idx = torch.randint(0, config.vocab_size, (2, 25))
    # ours -> theirs
    ours = GPT(config).eval()
    theirs = to_hf(ours)
    assert isinstance(theirs, LlamaForCausalLM)
    assert ours.num_parameters() == theirs.num_parameters()
    with torch.no_grad():
        assert (ours(idx)[0] - theirs(idx).logits).abs().max() < 1e-5
    # theirs (random init) -> ours
    theirs = LlamaForCausalLM(config_to_llama(config)).eval()
    ours = from_hf(theirs)
    assert ours.config == replace(config, mlp_hidden=config.hidden_size)
    with torch.no_grad():
        assert (ours(idx)[0] - theirs(idx).logits).abs().max() < 1e-5


def test_gpt2_style_configs_do_not_convert_to_llama_and_back():
    with pytest.raises(ValueError, match="Llama-style"):
        config_to_llama(tiny())
    with pytest.raises(ValueError, match="GPT-2-style"):
        to_hf(GPT(tiny(pos_embedding="rope")))


@pytest.mark.parametrize(
    "overrides, words",
    [
        (dict(n_head=4, n_kv_head=3), "n_head = 4 is not divisible by n_kv_head = 3"),
        (dict(n_kv_head=0), "n_kv_head must be a positive integer"),
        (dict(pos_embedding="alibi"), "pos_embedding must be one of"),
        (dict(norm="batchnorm"), "norm must be one of"),
        (dict(mlp="relu"), "mlp must be one of"),
        (dict(n_embd=36, n_head=4, pos_embedding="rope"), "head size must be even"),
        (dict(rope_theta=0.5, pos_embedding="rope"), "rope_theta"),
    ],
)
def test_invalid_llama_options_are_clear_errors(overrides, words):
    with pytest.raises(ValueError, match=words):
        tiny(**overrides)


def test_rope_model_has_no_position_table_and_kv_cache_holds_nkv_heads():
    model = GPT(tiny(pos_embedding="rope", n_kv_head=2))
    assert "wpe" not in model.transformer
    assert not any("rotary" in name for name in model.state_dict())  # angles are not weights
    cache = model.new_cache(3)
    assert cache.keys.shape == (2, 3, 2, 32, 8)  # (n_layer, B, nkv, block_size, hs)
    assert cache.nbytes == 2 * 2 * 3 * 2 * 32 * 8 * 4
    mha = GPT(tiny(pos_embedding="rope")).new_cache(3)
    assert mha.nbytes == 2 * cache.nbytes  # nh / nkv = 2 times the memory


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
@pytest.mark.parametrize("n_kv_head", [4, 2, 1])
def test_cached_logits_equal_full_recompute_with_rope_and_gqa(implementation, n_kv_head):
    torch.manual_seed(0)
    model = GPT(tiny(**LLAMA_STYLE, n_kv_head=n_kv_head, attn_implementation=implementation))
    model.eval()
    idx = torch.randint(0, 97, (2, 20))
    cache = model.new_cache(2)
    with torch.no_grad():
        full = model(idx)[0]
        first = model(idx[:, :13], cache=cache)[0]
        steps = [model(idx[:, t : t + 1], cache=cache)[0] for t in range(13, 20)]
    cached = torch.cat([first, *steps], dim=1)
    assert (cached - full).abs().max() < 1e-5


@pytest.mark.parametrize("prompt_len, new", [(3, 20), (30, 40)])  # inside and past the window
def test_greedy_with_and_without_cache_is_identical_with_rope_and_gqa(prompt_len, new):
    torch.manual_seed(0)
    model = GPT(tiny(**LLAMA_STYLE, n_kv_head=2, block_size=16)).eval()
    with torch.no_grad():  # sharpen the random model's logits so argmax ties cannot flip
        model.lm_head.weight.mul_(50)
    prompt = torch.randint(0, 97, (2, prompt_len))
    greedy = SamplingConfig(temperature=0)
    with_cache = generate(model, prompt, new, greedy, use_cache=True)
    without = generate(model, prompt, new, greedy, use_cache=False)
    assert torch.equal(with_cache, without)
