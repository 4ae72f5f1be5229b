"""Sampling: each strategy's filter, reproducibility, cropping, stopping and bad input."""

import pytest
import torch

from tinygpt.generate import (
    SamplingConfig,
    apply_repetition_penalty,
    draw_with_uniform,
    generate,
    sample_next,
    top_k_filter,
    top_p_filter,
    uniforms,
)
from tinygpt.model import GPT, GPTConfig


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=50, block_size=8, n_layer=2, n_head=2, n_embd=16)).eval()


def test_top_k_keeps_the_k_largest():
    logits = torch.tensor([[1.0, 5.0, 3.0, 4.0, 2.0]])
    kept = top_k_filter(logits, 2)
    assert torch.isfinite(kept).tolist() == [[False, True, False, True, False]]
    assert torch.equal(top_k_filter(logits, 99), logits)


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    kept = torch.isfinite(top_p_filter(probs.log(), 0.75))
    assert kept.tolist() == [[True, True, False, False]]  # 0.5 + 0.3 reaches 0.75
    assert torch.isfinite(top_p_filter(probs.log(), 0.1)).sum() == 1  # the top one always stays
    assert torch.isfinite(top_p_filter(probs.log(), 1.0)).all()


def test_repetition_penalty_lowers_seen_tokens():
    logits = torch.tensor([[2.0, -2.0, 1.0]])
    out = apply_repetition_penalty(logits, torch.tensor([[0, 1]]), 2.0)
    assert out.tolist() == [[1.0, -4.0, 1.0]]


def test_greedy_is_argmax_and_temperature_zero():
    logits = torch.tensor([[0.1, 3.0, 0.2]])
    assert sample_next(logits, torch.tensor([[0]]), SamplingConfig(temperature=0)).item() == 1


def test_same_seed_same_samples(model):
    prompt = torch.tensor([[1, 2, 3]])
    config = SamplingConfig(temperature=1.0, top_k=10, seed=42)
    a = generate(model, prompt, 12, config)
    assert torch.equal(a, generate(model, prompt, 12, config))
    assert a.shape == (1, 15) and torch.equal(a[:, :3], prompt)


def test_generation_runs_past_the_window(model):
    out = generate(model, torch.tensor([[1, 2, 3, 4, 5, 6]]), 20, SamplingConfig(temperature=0))
    assert out.shape == (1, 26)  # the context is cropped to block_size=8 on the way


def test_stop_token_ends_each_row(model):
    greedy = SamplingConfig(temperature=0)
    first = generate(model, torch.tensor([[1, 2]]), 1, greedy)[0, -1].item()
    out = generate(model, torch.tensor([[1, 2], [1, 2]]), 10, greedy, stop_token=first)
    assert out.shape == (2, 3) and (out[:, -1] == first).all()


def test_banned_token_is_never_chosen(model):
    greedy = SamplingConfig(temperature=0)
    first = generate(model, torch.tensor([[1, 2]]), 1, greedy)[0, -1].item()
    out = generate(model, torch.tensor([[1, 2]]), 10, greedy, banned_token=first)
    assert first not in out[0, 2:].tolist()


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(temperature=-0.5), "temperature must be >= 0"),
        (dict(top_k=0), "top_k must be >= 1"),
        (dict(top_p=0.0), r"top_p must be in \(0, 1\]"),
        (dict(top_p=1.5), r"top_p must be in \(0, 1\]"),
        (dict(repetition_penalty=0.0), "repetition_penalty must be a positive finite number"),
    ],
)
def test_bad_sampling_parameters(kwargs, words):
    with pytest.raises(ValueError, match=words):
        SamplingConfig(**kwargs)


def test_cached_logits_equal_full_recompute(model):
    torch.manual_seed(1)
    idx = torch.randint(0, 50, (2, 8))
    full, _ = model(idx)
    cache = model.new_cache(2)
    prefix, _ = model(idx[:, :3], cache=cache)  # a prompt of 3, then one token at a time
    steps = [prefix] + [model(idx[:, t : t + 1], cache=cache)[0] for t in range(3, 8)]
    assert cache.length == 8
    assert (torch.cat(steps, dim=1) - full).abs().max() < 1e-5


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
@pytest.mark.parametrize("prompt_len, new", [(3, 4), (3, 30), (12, 10)])
def test_greedy_with_and_without_cache_is_identical(implementation, prompt_len, new):
    # (3, 4) stays inside the window of 8; (3, 30) and (12, 10) run past it.
    torch.manual_seed(2)
    config = GPTConfig(
        vocab_size=50,
        block_size=8,
        n_layer=2,
        n_head=2,
        n_embd=16,
        attn_implementation=implementation,
    )
    m = GPT(config).eval()
    prompt = torch.randint(0, 50, (2, prompt_len))
    greedy = SamplingConfig(temperature=0)
    with_cache = generate(m, prompt, new, greedy, use_cache=True)
    without = generate(m, prompt, new, greedy, use_cache=False)
    assert torch.equal(with_cache, without)


def test_sampling_with_and_without_cache_is_identical(model):
    config = SamplingConfig(temperature=0.9, top_p=0.9, seed=3)
    prompt = torch.tensor([[5, 6, 7]])
    assert torch.equal(
        generate(model, prompt, 20, config, use_cache=True),
        generate(model, prompt, 20, config, use_cache=False),
    )


def test_cache_overflow_is_a_clear_error(model):
    cache = model.new_cache(1)
    model(torch.zeros(1, 8, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="exceeds the context window"):
        model(torch.zeros(1, 1, dtype=torch.long), cache=cache)


def test_a_supplied_uniform_picks_by_the_running_probability():
    """Inverse-CDF sampling: token i is drawn for u in [cdf[i-1], cdf[i]); tokens of probability
    0 are never drawn, even at the edges."""
    probs = torch.tensor([[0.0, 0.25, 0.0, 0.5, 0.25, 0.0]], dtype=torch.float64)
    picks = {
        u: int(draw_with_uniform(probs, torch.tensor([u])))
        for u in (0.0, 0.2, 0.25, 0.7, 0.75, 0.9999)
    }
    assert picks == {0.0: 1, 0.2: 1, 0.25: 3, 0.7: 3, 0.75: 4, 0.9999: 4}


def test_supplied_uniforms_follow_the_same_distribution_as_multinomial():
    """Drawn with evenly spaced uniforms, each token's share is its probability after the filters
    (repetition penalty, temperature, top-k, top-p), as torch.multinomial's draws are on average."""
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0, 3.0, 0.0]])
    context = torch.tensor([[4]])
    config = SamplingConfig(temperature=0.7, top_k=4, top_p=0.9, repetition_penalty=1.3)
    n = 20_000
    counts = torch.zeros(6)
    for i in range(n):
        counts[sample_next(logits, context, config, uniform=torch.tensor([(i + 0.5) / n]))] += 1
    x = apply_repetition_penalty(logits, context, 1.3) / 0.7
    want = top_p_filter(top_k_filter(x, 4), 0.9).softmax(-1)[0]
    assert (counts / n - want).abs().max() < 1e-3
    generator = torch.Generator().manual_seed(0)
    drawn = torch.cat([sample_next(logits, context, config, generator) for _ in range(4000)])
    assert set(drawn.flatten().tolist()) == set(torch.nonzero(want).flatten().tolist())


def test_uniforms_is_mulberry32():
    """The first numbers of the stream, as mulberry32 gives them (the JavaScript twin's values,
    from book/_theme/live/sampler.js run in node): the page and Python draw the same numbers."""
    first = [next(stream) for stream in [uniforms(0)] for _ in range(3)]
    assert first == [0.26642920868471265, 0.0003297457005828619, 0.2232720274478197]
    assert all(0.0 <= u < 1.0 for u, _ in zip(uniforms(2**32 - 1), range(1000)))


def test_a_uniform_stream_reproduces_a_sample_and_greedy_takes_none(model):
    prompt = torch.tensor([[1, 2, 3]])
    config = SamplingConfig(temperature=0.9, top_k=20)
    a = generate(model, prompt, 12, config)  # (no uniforms: torch's generator)
    b = generate(model, prompt, 12, config, uniform_stream=uniforms(7))
    assert torch.equal(b, generate(model, prompt, 12, config, uniform_stream=uniforms(7)))
    assert b.shape == a.shape
    greedy = SamplingConfig(temperature=0)
    assert torch.equal(
        generate(model, prompt, 12, greedy, uniform_stream=iter([])),  # would raise if drawn from
        generate(model, prompt, 12, greedy),
    )
