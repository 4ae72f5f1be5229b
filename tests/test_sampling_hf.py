"""Chapter 7's sampling strategies against Hugging Face's logits processors, and greedy decoding
against ``GPT2LMHeadModel.generate`` on the same weights.

Hugging Face's classes are the reference implementation most code uses: ``TopKLogitsWarper``,
``TopPLogitsWarper``, ``TemperatureLogitsWarper`` and ``RepetitionPenaltyLogitsProcessor``. Each
takes the context ids and a (B, V) score tensor and returns the processed scores, with removed
tokens at -inf, which is what our filters return too.
"""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")
from transformers import (  # noqa: E402
    GPT2Config,
    GPT2LMHeadModel,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from tinygpt.generate import (  # noqa: E402
    SamplingConfig,
    apply_repetition_penalty,
    generate,
    top_k_filter,
    top_p_filter,
)
from tinygpt.hf import from_hf  # noqa: E402


def random_logits(seed: int, B: int = 6, V: int = 97) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, V, generator=g) * 3
    logits[0] = logits[0].round()  # many exact ties
    logits[1, :10] = logits[1].max()  # ten tokens tied for first place
    logits[2] = 0.0  # a uniform row: every token tied
    logits[3, 5] = 50.0  # one token holds all the probability
    return logits


def context(seed: int, B: int = 6, V: int = 97, T: int = 12) -> torch.Tensor:
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed + 1))


def same(ours: torch.Tensor, theirs: torch.Tensor) -> bool:
    """Equal, with -inf where the other has -inf (the kept set and the kept values)."""
    return torch.equal(torch.isinf(ours), torch.isinf(theirs)) and torch.equal(
        ours[~torch.isinf(ours)], theirs[~torch.isinf(theirs)]
    )


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [1, 2, 5, 10, 50, 97, 200])
def test_top_k_equals_hugging_face(seed, k):
    logits = random_logits(seed)
    theirs = TopKLogitsWarper(top_k=k)(context(seed), logits.clone())
    assert same(top_k_filter(logits, k), theirs)


def same_values_kept(ours: torch.Tensor, theirs: torch.Tensor) -> bool:
    """Per row, the same number of tokens kept with each logit value (the same distribution up
    to which of two equal tokens is kept): where a tie straddles the cut, our stable sort drops
    tied tokens in id order, while torch.sort's default order among equals is unspecified."""
    return all(
        torch.equal(a[torch.isfinite(a)].sort().values, b[torch.isfinite(b)].sort().values)
        for a, b in zip(ours, theirs)
    )


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("p", [1e-6, 0.1, 0.5, 0.9, 0.95, 0.999999, 1.0])
def test_top_p_equals_hugging_face(seed, p):
    logits = random_logits(seed)
    theirs = TopPLogitsWarper(top_p=p)(context(seed), logits.clone())
    ours = top_p_filter(logits, p)
    assert same_values_kept(ours, theirs)
    untied = [row for row in range(len(logits)) if len(logits[row].unique()) == logits.size(1)]
    assert untied and same(ours[untied], theirs[untied])  # and the very same tokens


def test_top_p_on_rows_without_ties_is_identical():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 500, generator=g) * 2  # continuous values: no ties
    for p in (0.3, 0.8, 0.9, 0.97):
        theirs = TopPLogitsWarper(top_p=p)(context(0, 64, 500), logits.clone())
        assert same(top_p_filter(logits, p), theirs)


@pytest.mark.parametrize("temperature", [1e-4, 0.3, 0.7, 1.0, 1.5, 10.0])
def test_temperature_equals_hugging_face(temperature):
    logits = random_logits(3)
    theirs = TemperatureLogitsWarper(temperature)(context(3), logits.clone())
    assert torch.allclose(logits / temperature, theirs, rtol=1e-6, atol=0)


@pytest.mark.parametrize("penalty", [0.5, 1.0, 1.2, 2.0])
def test_repetition_penalty_equals_hugging_face(penalty):
    logits = random_logits(4)
    ids = context(4)
    ids[0, :6] = ids[0, 0]  # a token repeated in the context is penalised once, as in HF
    theirs = RepetitionPenaltyLogitsProcessor(penalty)(ids, logits.clone())
    assert torch.equal(apply_repetition_penalty(logits, ids, penalty), theirs)


def test_greedy_generation_equals_hugging_face_generate():
    torch.manual_seed(0)
    hf_config = GPT2Config(vocab_size=101, n_positions=32, n_embd=32, n_layer=2, n_head=4,
                           resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                           bos_token_id=0, eos_token_id=100)  # fmt: skip
    hf = GPT2LMHeadModel(hf_config).eval()
    ours = from_hf(hf)
    prompt = torch.randint(0, 100, (3, 5), generator=torch.Generator().manual_seed(1))
    theirs = hf.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=20,
        do_sample=False,
        pad_token_id=0,
        eos_token_id=None,
    )
    for use_cache in (True, False):
        out = generate(ours, prompt, 20, SamplingConfig(temperature=0.0), use_cache=use_cache)
        assert torch.equal(out, theirs)
