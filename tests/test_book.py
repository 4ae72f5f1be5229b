"""The book's attention helpers: attention_maps reads the weights the forward pass really uses."""

import pytest
import torch

from tinygpt.book import attention_maps, token_labels
from tinygpt.model import GPT, GPTConfig


@pytest.fixture
def small_gpt() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=50, block_size=12, n_layer=2, n_head=4, n_embd=16))


def test_attention_maps_shapes_rows_and_causality(small_gpt):
    idx = torch.randint(0, 50, (3, 9))
    maps = attention_maps(small_gpt, idx)
    assert len(maps) == 2
    for w in maps:
        assert w.shape == (3, 4, 9, 9)
        assert torch.allclose(w.sum(-1), torch.ones(3, 4, 9), atol=1e-6)  # rows sum to 1
        assert (w.triu(diagonal=1) == 0).all()  # nothing on the future
        assert not w.requires_grad


def test_attention_maps_equal_the_blocks_own_weights(small_gpt):
    idx = torch.randint(0, 50, (2, 7))
    maps = attention_maps(small_gpt, idx)
    tr = small_gpt.transformer
    with torch.no_grad():
        x = tr.wte(idx) + tr.wpe(torch.arange(7))  # the residual stream entering block 0
        for block, w in zip(tr.h, maps):
            expected = block.attn.attention_weights(block.ln_1(x))
            assert torch.equal(w, expected)
            x = block(x)


def test_attention_maps_remove_hooks_and_restore_mode(small_gpt):
    small_gpt.train()
    attention_maps(small_gpt, torch.randint(0, 50, (1, 5)))
    assert small_gpt.training
    for block in small_gpt.transformer.h:
        assert len(block.attn._forward_pre_hooks) == 0
    small_gpt.eval()
    attention_maps(small_gpt, torch.randint(0, 50, (1, 5)))
    assert not small_gpt.training


def test_attention_maps_ignore_dropout():
    torch.manual_seed(1)
    model = GPT(
        GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=8, dropout=0.5)
    ).train()
    idx = torch.randint(0, 20, (1, 8))
    assert torch.equal(attention_maps(model, idx)[0], attention_maps(model, idx)[0])


def test_token_labels_show_spaces_and_newlines(gpt2):
    ids = gpt2.encode_ordinary("ROMEO:\nBut, soft!")
    labels = token_labels(gpt2, ids)
    assert "".join(labels) == "ROMEO:↵But,␣soft!"
    assert len(labels) == len(ids)


def test_attention_explorer_builds_and_redraws(gpt2):
    pytest.importorskip("ipywidgets")
    from tinygpt.book import attention_explorer

    torch.manual_seed(2)
    model = GPT(GPTConfig(vocab_size=gpt2.n_vocab, block_size=6, n_layer=2, n_head=2,
                          n_embd=8))
    ui = attention_explorer(model, gpt2, ["To be, or not to be, that is the question", "Hi"])
    choose, text, sliders, status, image = ui.children
    layer, head = sliders.children
    assert (layer.max, head.max) == (1, 1)
    first = bytes(image.value)
    assert first.startswith(b"\x89PNG") and status.value.startswith("6 tokens")  # cut to 6
    layer.value, head.value = 1, 1
    assert bytes(image.value) != first  # another head, another picture
    choose.value = "Hi"
    assert text.value == "Hi" and status.value.startswith("1 token;")
    text.value = ""  # an empty prompt must not crash
    assert status.value == "Type some text."


def test_attention_explorer_maps_ids(gpt2):
    pytest.importorskip("ipywidgets")
    from tinygpt.book import attention_explorer

    model = GPT(GPTConfig(vocab_size=3, block_size=8, n_layer=1, n_head=1, n_embd=4))
    id_map = torch.full((gpt2.n_vocab,), 2)  # every GPT-2 id to the model's id 2: no IndexError
    ui = attention_explorer(model, gpt2, ["Mary had a little lamb"], id_map=id_map)
    assert ui.children[3].value.startswith("5 tokens")
