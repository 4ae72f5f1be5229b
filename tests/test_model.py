"""GPTConfig validation, the model's shapes and init, and its parameter counts."""

import math

import pytest
import torch

from tinygpt.embeddings import BigramLanguageModel, sinusoidal_positions
from tinygpt.model import GPT, GPTConfig

SEED = dict(block_size=64, n_layer=4, n_head=4, n_embd=128)  # the original project's config


def test_config_names_both_numbers_when_heads_do_not_divide():
    message = r"n_embd \(d_model\) = 130 is not divisible by n_head = 4"
    with pytest.raises(ValueError, match=message):
        GPTConfig(n_embd=130, n_head=4)


@pytest.mark.parametrize(
    "field, value",
    [
        ("n_layer", 0),
        ("vocab_size", -1),
        ("block_size", 2.5),
        ("n_head", True),
        ("dropout", 1.0),
        ("attn_implementation", "flash"),
    ],
)
def test_config_rejects_invalid_values(field, value):
    with pytest.raises(ValueError, match=field):
        GPTConfig(**{field: value})


def test_config_round_trips_through_a_dict():
    config = GPTConfig(**SEED, dropout=0.1)
    assert GPTConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown GPTConfig field"):
        GPTConfig.from_dict({**config.to_dict(), "n_heads": 4})


def test_parameter_counts():
    assert GPT(GPTConfig(**SEED)).num_parameters() == 7_234_432
    assert GPT(GPTConfig(**SEED, tie_weights=False)).num_parameters() == 13_667_328
    # By hand: embeddings + per-block (2 LayerNorms, attention, MLP) + final LayerNorm.
    V, T, C, L = 50257, 64, 128, 4
    block = 2 * 2 * C + (3 * C * C + 3 * C) + (C * C + C) + (4 * C * C + 4 * C) + (4 * C * C + C)
    assert V * C + T * C + L * block + 2 * C == 7_234_432


def test_gpt2_small_has_124m_parameters():
    with torch.device("meta"):  # shapes only: no memory, no init time
        model = GPT(GPTConfig())
    assert model.num_parameters() == 124_439_808


def test_forward_shapes_and_initial_loss_is_ln_vocab():
    torch.manual_seed(0)
    model = GPT(GPTConfig(**SEED)).eval()
    idx, targets = torch.randint(0, 50257, (2, 2, 64))
    logits, loss = model(idx, targets)
    assert logits.shape == (2, 64, 50257)
    assert abs(loss.item() - math.log(50257)) < 0.1  # small init: nearly uniform predictions


def test_any_length_up_to_the_window_and_a_clear_error_beyond():
    model = GPT(GPTConfig(vocab_size=50, block_size=8, n_layer=1, n_head=2, n_embd=8)).eval()
    for T in (1, 5, 8):
        assert model(torch.zeros(1, T, dtype=torch.long))[0].shape == (1, T, 50)
    message = "sequence length 9 exceeds the context window block_size=8"
    with pytest.raises(ValueError, match=message):
        model(torch.zeros(1, 9, dtype=torch.long))


def test_gpt2_init():
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=8, n_head=4, n_embd=256, block_size=256, vocab_size=5000))
    assert model.lm_head.weight is model.transformer.wte.weight
    std = model.transformer.h[0].attn.c_attn.weight.std().item()
    proj = model.transformer.h[0].mlp.c_proj.weight.std().item()
    assert abs(std - 0.02) < 0.001
    assert abs(proj - 0.02 / math.sqrt(16)) < 0.0005
    assert model.transformer.h[0].attn.c_attn.bias.abs().max() == 0


def test_sinusoidal_positions():
    pe = sinusoidal_positions(50, 16)
    assert pe.shape == (50, 16)
    assert torch.allclose(pe[:, 0], torch.sin(torch.arange(50.0)))  # fastest clock: 1 rad/step
    assert torch.allclose(pe[0, 1::2], torch.ones(8))  # cos(0) = 1
    assert torch.allclose(pe.pow(2).view(50, 8, 2).sum(-1), torch.ones(50, 8))  # sin² + cos²
    with pytest.raises(ValueError, match="even"):
        sinusoidal_positions(4, 7)


def test_bigram_starts_near_ln_vocab():
    torch.manual_seed(0)
    model = BigramLanguageModel(1000, 32)
    idx = torch.randint(0, 1000, (4, 16))
    logits, loss = model(idx, idx)
    assert logits.shape == (4, 16, 1000) and abs(loss.item() - math.log(1000)) < 0.05


def test_weights_hold_a_tied_matrix_once_and_load_back():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, block_size=4, n_layer=1, n_head=1, n_embd=4))
    weights = model.weights()
    assert "lm_head.weight" not in weights and "transformer.wte.weight" in weights
    fresh = GPT(model.config)
    fresh.load_weights(weights)
    assert fresh.lm_head.weight is fresh.transformer.wte.weight
    assert torch.equal(fresh.lm_head.weight, model.lm_head.weight)
    fresh.load_weights(model.state_dict())  # a full state dict loads too
    with pytest.raises(ValueError, match="missing"):
        fresh.load_weights({k: v for k, v in weights.items() if k != "transformer.ln_f.weight"})
