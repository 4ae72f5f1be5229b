"""Zero-shot minimal pairs (tinygpt.zeroshot, Chapter 10), proven on hand-built cases: a row's
token losses are cross-entropy of the row alone, whatever is padded beside it; the bigram model
is its formula on counts made by hand; pairwise accuracy counts wins and half-counts ties."""

import math

import pytest
import torch
import torch.nn.functional as F

from tinygpt import zeroshot
from tinygpt.model import GPT, GPTConfig


def test_token_losses_are_each_rows_own_cross_entropy():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=8))
    rows = [[1, 2, 3, 4, 5], [6, 7], [8, 9, 10]]
    got = zeroshot.token_losses(model, rows, batch_size=2)
    for row, losses in zip(rows, got):
        logits = model(torch.tensor([row]))[0][0]  # (T, V), the row alone
        expected = F.cross_entropy(logits[:-1], torch.tensor(row[1:]), reduction="none")
        assert torch.allclose(losses, expected, atol=1e-5)


def test_the_bigram_model_is_its_formula_on_hand_counts():
    ids = [0, 1, 0, 1, 0, 2]  # pairs: (0,1) twice, (1,0) twice, (0,2) once
    bigram = zeroshot.BigramModel(ids, vocab_size=4, k=0.5)
    unigram = torch.tensor([3 + 1, 2 + 1, 1 + 1, 0 + 1], dtype=torch.float64) / 10
    smoothing = 0.5 * 4

    def by_hand(a, b, pair, first):
        return -math.log((pair + smoothing * unigram[b].item()) / (first + smoothing))

    got = bigram.token_losses([0, 1, 3, 0])  # (0,1) seen twice, (1,3) never, (3,0) from nothing
    expected = [by_hand(0, 1, 2, 3), by_hand(1, 3, 0, 2), by_hand(3, 0, 0, 0)]
    assert got.tolist() == pytest.approx(expected)


def test_pairwise_accuracy_counts_wins_and_half_a_tie():
    written = torch.tensor([1.0, 5.0, 2.0, 3.0])
    swapped = torch.tensor([2.0, 4.0, 2.0, 9.0])
    assert zeroshot.pairwise_accuracy(written, swapped) == pytest.approx((1 + 0 + 0.5 + 1) / 4)


def test_a_language_model_that_knows_the_order_wins_every_pair():
    """A model trained (briefly) to continue 1 2 3 4 ... scores the counting order below its
    swaps; this is the zero-shot test on a case whose answer is known."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=12, block_size=8, n_layer=1, n_head=2, n_embd=16))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    counting = torch.tensor([[(s + t) % 12 for t in range(8)] for s in range(12)])
    for _ in range(150):
        optimizer.zero_grad()
        model(counting[:, :-1], counting[:, 1:])[1].backward()
        optimizer.step()
    written = [[s, s + 1, s + 2, s + 3, s + 4] for s in range(6)]
    swapped = [[r[0], r[3], r[2], r[1], r[4]] for r in written]
    totals = [
        torch.stack([loss.sum() for loss in zeroshot.token_losses(model, rows)])
        for rows in (written, swapped)
    ]
    assert zeroshot.pairwise_accuracy(*totals) == 1.0
