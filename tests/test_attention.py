"""Our attention against PyTorch's: SDPA, nn.MultiheadAttention, and a loop over single heads."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tinygpt.attention import (
    CausalSelfAttention,
    SelfAttentionHead,
    causal_mask,
    scaled_dot_product_attention,
)

TOL = 1e-5


@pytest.mark.parametrize("shape", [(1, 1, 1, 4), (2, 3, 7, 8), (4, 2, 33, 5)])
def test_scaled_dot_product_attention_equals_pytorch(shape):
    torch.manual_seed(0)
    q, k, v = (torch.randn(shape) for _ in range(3))
    ours, weights = scaled_dot_product_attention(q, k, v, is_causal=True)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert (ours - ref).abs().max() < TOL
    assert torch.allclose(weights.sum(-1), torch.ones(shape[:-1]))
    assert (weights.triu(diagonal=1) == 0).all()  # no weight on the future


def test_non_causal_equals_pytorch():
    torch.manual_seed(1)
    q, k, v = (torch.randn(2, 3, 9, 4) for _ in range(3))
    ours, _ = scaled_dot_product_attention(q, k, v, is_causal=False)
    assert (ours - F.scaled_dot_product_attention(q, k, v)).abs().max() < TOL


def test_causal_mask_aligns_queries_with_the_last_keys():
    assert causal_mask(3, 3).tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    assert causal_mask(1, 4).tolist() == [[1, 1, 1, 1]]  # the newest token sees everything
    assert causal_mask(2, 4).tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]


def test_the_future_cannot_change_the_past():
    torch.manual_seed(2)
    attn = CausalSelfAttention(16, 4).eval()
    x = torch.randn(1, 10, 16)
    y = attn(x)
    x2 = x.clone()
    x2[:, 6:] = torch.randn(1, 4, 16)  # rewrite the future
    assert torch.allclose(attn(x2)[:, :6], y[:, :6], atol=1e-6)


@pytest.mark.parametrize("C, nh, T", [(16, 4, 12), (30, 5, 7), (8, 1, 3)])
def test_multi_head_equals_nn_multihead_attention(C, nh, T):
    torch.manual_seed(3)
    ours = CausalSelfAttention(C, nh).eval()
    ref = nn.MultiheadAttention(C, nh, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(ours.c_attn.weight)  # both (3C, C), rows q|k|v
        ref.in_proj_bias.copy_(ours.c_attn.bias)
        ref.out_proj.weight.copy_(ours.c_proj.weight)
        ref.out_proj.bias.copy_(ours.c_proj.bias)
    x = torch.randn(3, T, C)
    future = ~causal_mask(T, T)  # nn.MultiheadAttention masks where True
    expected, _ = ref(x, x, x, attn_mask=future, need_weights=False)
    assert (ours(x) - expected).abs().max() < TOL


@pytest.mark.parametrize("C, nh", [(16, 4), (30, 5)])
def test_multi_head_equals_a_loop_over_single_heads(C, nh):
    torch.manual_seed(4)
    mha = CausalSelfAttention(C, nh).eval()
    hs = C // nh
    heads = []
    for h in range(nh):
        head = SelfAttentionHead(C, hs)
        with torch.no_grad():
            for i, proj in enumerate((head.query, head.key, head.value)):
                rows = slice(i * C + h * hs, i * C + (h + 1) * hs)  # head h's slice of q, k or v
                proj.weight.copy_(mha.c_attn.weight[rows])
                proj.bias.copy_(mha.c_attn.bias[rows])
        heads.append(head)
    x = torch.randn(2, 9, C)
    looped = mha.c_proj(torch.cat([head(x) for head in heads], dim=-1))
    assert (mha(x) - looped).abs().max() < TOL


def test_eager_and_sdpa_implementations_agree():
    torch.manual_seed(5)
    sdpa = CausalSelfAttention(24, 3, implementation="sdpa").eval()
    eager = CausalSelfAttention(24, 3, implementation="eager").eval()
    eager.load_state_dict(sdpa.state_dict())
    x = torch.randn(2, 11, 24)
    assert (sdpa(x) - eager(x)).abs().max() < TOL
    w = eager.attention_weights(x)
    assert w.shape == (2, 3, 11, 11) and torch.allclose(w.sum(-1), torch.ones(2, 3, 11))


def test_dropout_only_in_training():
    torch.manual_seed(6)
    attn = CausalSelfAttention(16, 2, dropout=0.5, implementation="eager")
    x = torch.randn(1, 5, 16)
    attn.eval()
    assert torch.equal(attn(x), attn(x))
    attn.train()
    assert not torch.equal(attn(x), attn(x))


def test_bad_head_count_is_clear():
    with pytest.raises(ValueError, match="n_embd=10 is not divisible by n_head=4"):
        CausalSelfAttention(10, 4)
    with pytest.raises(ValueError, match="implementation"):
        CausalSelfAttention(8, 2, implementation="flash")
