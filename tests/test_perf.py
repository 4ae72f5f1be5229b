"""FLOPs per token against PyTorch's own FLOP counter; MFU, peaks and the interleaved timer."""

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from tinygpt.model import GPT, GPTConfig
from tinygpt.perf import (
    describe_device,
    flops_per_token,
    gpu_peak_flops,
    interleaved,
    matmul_flops,
    mfu,
    multiplied_parameters,
    speedup,
)

TINY = dict(vocab_size=97, block_size=16, n_layer=2, n_head=2, n_embd=24)


@pytest.mark.parametrize("tie_weights", [True, False])
def test_multiplied_parameters_leave_out_only_lookup_tables(tie_weights):
    model = GPT(GPTConfig(**TINY, tie_weights=tie_weights))
    V, C, T = TINY["vocab_size"], TINY["n_embd"], TINY["block_size"]
    everything = sum(p.numel() for p in model.parameters())
    lookups = T * C + (0 if tie_weights else V * C)  # wpe, and wte when it is only a table
    assert multiplied_parameters(model) == everything - lookups


@pytest.mark.parametrize("tie_weights", [True, False])
@pytest.mark.parametrize("T", [16, 9])
def test_flops_per_token_matches_pytorchs_flop_counter(tie_weights, T):
    """PyTorch counts every matrix multiply of a forward and backward pass. Our formula counts
    biases and norm gains as multiplied too (6 FLOPs each per token); nothing else may differ."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(**TINY, tie_weights=tie_weights, attn_implementation="eager"))
    B = 3
    x = torch.randint(0, TINY["vocab_size"], (B, T))
    with FlopCounterMode(display=False) as counter:
        _, loss = model(x, x)
        loss.backward()
    not_matmuls = sum(p.numel() for p in model.parameters() if p.dim() == 1)  # biases, gains
    assert flops_per_token(model, T) * B * T - counter.get_total_flops() == 6 * not_matmuls * B * T


def test_flops_per_token_defaults_to_the_context_window():
    model = GPT(GPTConfig(**TINY))
    assert flops_per_token(model) == flops_per_token(model, TINY["block_size"])
    attention = 12 * TINY["n_layer"] * TINY["n_embd"]
    assert flops_per_token(model, 10) - flops_per_token(model, 9) == attention


def test_mfu_is_achieved_over_peak():
    assert mfu(1000.0, 2e9, 4e12) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "name, dtype, expected",
    [
        ("NVIDIA H100 80GB HBM3", "bfloat16", 989e12),
        ("NVIDIA H100 PCIe", "bfloat16", 756e12),
        ("NVIDIA A100-SXM4-80GB", "bfloat16", 312e12),
        ("NVIDIA A100-SXM4-40GB", "float32", 19.5e12),
        ("NVIDIA H200", "bfloat16", 989e12),
        ("NVIDIA GeForce GTX 1080", "bfloat16", None),
    ],
)
def test_gpu_peak_flops_by_device_name(name, dtype, expected):
    assert gpu_peak_flops(name, dtype) == expected


def test_interleaved_alternates_and_times_every_round():
    calls = []
    fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    times = interleaved(fns, rounds=3, warmup=2)
    assert calls == ["a", "a", "b", "b"] + ["a", "b", "b", "a", "a", "b"]
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3}
    assert all(t >= 0.0 for v in times.values() for t in v)
    with pytest.raises(ValueError, match="rounds"):
        interleaved(fns, rounds=0)


def test_speedup_is_a_ratio_of_medians():
    times = {"slow": [3.0, 2.0, 100.0], "fast": [1.0, 0.5, 1.5]}
    assert speedup(times, "slow", "fast") == 3.0  # sanity: made-up times


def test_matmul_flops_is_a_positive_finite_rate():
    rate = matmul_flops(n=128, repeats=2)
    assert math.isfinite(rate) and rate > 1e6


def test_describe_device_names_the_cpu_and_its_threads():
    assert describe_device("cpu").endswith(f"{torch.get_num_threads()} threads")
