"""RoPE against Hugging Face Llama's rotary embedding, and its relative-position property."""

import math

import pytest
import torch
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

from tinygpt.rope import (
    apply_rope,
    interleaved_to_half_split,
    rope_cos_sin,
    rope_inverse_frequencies,
)


@pytest.mark.parametrize(
    "head_size, base, T", [(64, 10_000.0, 37), (8, 500_000.0, 300), (2, 10.0, 5)]
)
def test_equals_hugging_face_llama(head_size, base, T):
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=head_size * 3,
        num_attention_heads=3,
        head_dim=head_size,
        max_position_embeddings=max(T, 8),
        rope_parameters={"rope_type": "default", "rope_theta": base},
    )
    rotary = LlamaRotaryEmbedding(config)
    q, k = torch.randn(2, 2, 3, T, head_size)  # (B, nh, T, hs) each
    positions = torch.arange(T)
    hf_cos, hf_sin = rotary(q, positions[None].expand(2, T))
    hf_q, hf_k = apply_rotary_pos_emb(q, k, hf_cos, hf_sin)
    cos, sin = rope_cos_sin(positions, head_size, base)
    assert (cos - hf_cos[0]).abs().max() < 1e-6 and (sin - hf_sin[0]).abs().max() < 1e-6
    assert (apply_rope(q, cos, sin) - hf_q).abs().max() < 1e-6
    assert (apply_rope(k, cos, sin) - hf_k).abs().max() < 1e-6


def test_scores_depend_only_on_the_offset():
    torch.manual_seed(1)
    q, k = torch.randn(2, 16, dtype=torch.float64)
    cos, sin = (t.double() for t in rope_cos_sin(torch.arange(200), 16))

    def score(m: int, n: int) -> float:
        return (apply_rope(q, cos[m], sin[m]) @ apply_rope(k, cos[n], sin[n])).item()

    for offset in (0, 3, 50):
        values = [score(n + offset, n) for n in (0, 17, 120)]
        assert max(values) - min(values) < 1e-4  # float32 angles: ~1e-5 rounding


def test_rotation_keeps_length_and_position_zero_is_identity():
    x = torch.randn(4, 10, 32)
    cos, sin = rope_cos_sin(torch.arange(10), 32)
    rotated = apply_rope(x, cos, sin)
    assert torch.allclose(rotated.norm(dim=-1), x.norm(dim=-1), atol=1e-5)
    assert torch.allclose(rotated[:, 0], x[:, 0])


def test_interleaved_layout_gives_the_same_scores():
    torch.manual_seed(2)
    hs, T = 8, 6
    q, k = torch.randn(2, T, hs)
    angles = torch.arange(T)[:, None].float() * rope_inverse_frequencies(hs)  # (T, hs/2)

    def rotate_interleaved(x):  # the paper's layout: pairs (x0, x1), (x2, x3), ...
        even, odd = x[..., 0::2], x[..., 1::2]
        out = torch.empty_like(x)
        out[..., 0::2] = even * angles.cos() - odd * angles.sin()
        out[..., 1::2] = even * angles.sin() + odd * angles.cos()
        return out

    scores = rotate_interleaved(q) @ rotate_interleaved(k).T
    cos, sin = rope_cos_sin(torch.arange(T), hs)
    q2, k2 = (apply_rope(interleaved_to_half_split(x), cos, sin) for x in (q, k))
    assert (scores - q2 @ k2.T).abs().max() < 1e-5


def test_odd_head_size_is_refused():
    with pytest.raises(ValueError, match="even"):
        rope_inverse_frequencies(7)
    assert rope_inverse_frequencies(4).tolist() == [1.0, pytest.approx(1 / math.sqrt(10_000))]
