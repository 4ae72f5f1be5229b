"""Parity with Hugging Face GPT-2: random weights (no download), copied across, same logits."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from tinygpt.hf import config_from_hf, from_hf, from_hf_state_dict, to_hf, to_hf_state_dict
from tinygpt.model import GPT, GPTConfig

CONFIGS = [
    dict(vocab_size=50257, n_positions=64, n_embd=128, n_layer=4, n_head=4),  # the seed config
    dict(vocab_size=97, n_positions=13, n_embd=30, n_layer=3, n_head=5),  # odd sizes
    dict(vocab_size=1, n_positions=1, n_embd=7, n_layer=1, n_head=7),  # hs = 1, a single token
    dict(vocab_size=333, n_positions=40, n_embd=48, n_layer=2, n_head=3, tie_word_embeddings=False),
]


def hf_gpt2(**kwargs) -> GPT2LMHeadModel:
    config = GPT2Config(
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0, **kwargs
    )
    return GPT2LMHeadModel(config).eval()


@pytest.mark.parametrize("kwargs", CONFIGS)
def test_logits_equal_hugging_face(kwargs):
    torch.manual_seed(0)
    hf = hf_gpt2(**kwargs)
    ours = from_hf(hf).eval()
    idx = torch.randint(0, kwargs["vocab_size"], (2, kwargs["n_positions"]))
    with torch.no_grad():
        expected = hf(idx).logits
        logits, _ = ours(idx)
    assert (logits - expected).abs().max() < 1e-5
    assert ours.num_parameters() == hf.num_parameters()


def test_eager_attention_gives_the_same_logits():
    torch.manual_seed(1)
    hf = hf_gpt2(**CONFIGS[1])
    ours = from_hf(hf)
    ours.config.attn_implementation = "eager"
    eager = GPT(ours.config).eval()
    eager.load_state_dict(ours.state_dict())
    idx = torch.randint(0, 97, (3, 13))
    with torch.no_grad():
        assert (eager(idx)[0] - hf(idx).logits).abs().max() < 1e-5


def test_conversion_round_trips_both_ways():
    torch.manual_seed(2)
    ours = GPT(GPTConfig(vocab_size=61, block_size=9, n_layer=2, n_head=2, n_embd=12)).eval()
    hf = to_hf(ours)
    back = from_hf(hf)
    assert config_from_hf(hf.config) == ours.config
    for name, tensor in ours.state_dict().items():
        assert torch.equal(back.state_dict()[name], tensor), name
    state = ours.state_dict()
    for name, tensor in from_hf_state_dict(to_hf_state_dict(state)).items():
        assert torch.equal(tensor, state[name]), name
    idx = torch.randint(0, 61, (2, 9))
    with torch.no_grad():
        assert (hf(idx).logits - ours(idx)[0]).abs().max() < 1e-5


def test_gpt2_without_biases_cannot_be_exported():
    model = GPT(GPTConfig(vocab_size=10, block_size=4, n_layer=1, n_head=1, n_embd=4, bias=False))
    with pytest.raises(ValueError, match="biases"):
        to_hf(model)
