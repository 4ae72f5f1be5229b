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
    model = GPT(GPTConfig(vocab_size=gpt2.n_vocab, block_size=6, n_layer=2, n_head=2, n_embd=8))
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


def test_recorded_attention_gives_the_models_maps_to_its_rounding(small_gpt):
    import json

    from tinygpt.book import NotRecordedError, RecordedAttention

    sequences = [[1, 2, 3, 4, 5], [7, 7, 7]]
    recorded = RecordedAttention.record(small_gpt, sequences, source="train it first")
    recorded = RecordedAttention.from_json(json.loads(json.dumps(recorded.to_json())))
    assert recorded.block_size == 12
    for ids in sequences:
        live = attention_maps(small_gpt, torch.tensor([ids]))
        kept = attention_maps(recorded, torch.tensor([ids]))
        assert [w.shape for w in kept] == [w.shape for w in live]
        for a, b in zip(kept, live):
            assert (a - b).abs().max() <= 5e-4  # three decimals
            assert (a.triu(diagonal=1) == 0).all()
    with pytest.raises(NotRecordedError, match=r"holds 2 prompts\); train it first"):
        attention_maps(recorded, torch.tensor([[1, 2]]))


def test_attention_explorer_on_a_recording_says_when_text_was_not_recorded(gpt2):
    pytest.importorskip("ipywidgets")
    from tinygpt.book import RecordedAttention, attention_explorer

    torch.manual_seed(3)
    model = GPT(GPTConfig(vocab_size=gpt2.n_vocab, block_size=8, n_layer=2, n_head=2, n_embd=8))
    prompts = ["Mary had a little lamb", "To be, or not"]
    ids = [gpt2.encode_ordinary(p) for p in prompts]
    ui = attention_explorer(RecordedAttention.record(model, ids, source="x"), gpt2, prompts)
    live = attention_explorer(model, gpt2, prompts)
    assert ui.children[3].value == live.children[3].value  # "5 tokens; ..."
    ui.children[1].value = "Something else"
    assert ui.children[3].value.startswith("no recorded attention for this text")


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("prompt_len, new, window", [(3, 4, 8), (3, 12, 8), (11, 5, 8), (1, 9, 1)])
def test_kv_schedule_matches_what_the_model_computes(use_cache, prompt_len, new, window):
    from tinygpt.book import KV_CACHED, KV_COMPUTED, KV_CROPPED, kv_schedule
    from tinygpt.generate import SamplingConfig, generate

    torch.manual_seed(3)
    model = GPT(GPTConfig(vocab_size=30, block_size=window, n_layer=1, n_head=2, n_embd=8))
    processed = []  # how many positions go through the model at each step
    model.transformer.wte.register_forward_hook(lambda m, args, out: processed.append(out.size(1)))
    prompt = torch.randint(0, 30, (1, prompt_len))
    generate(model, prompt, new, SamplingConfig(temperature=0), use_cache=use_cache)
    rows = kv_schedule(prompt_len, new, window, use_cache)
    assert len(rows) == new and all(len(r) == prompt_len + new - 1 for r in rows)
    assert [r.count(KV_COMPUTED) for r in rows] == processed
    for step, row in enumerate(rows):
        n = prompt_len + step
        assert row[n - 1] == KV_COMPUTED  # the newest token is always computed
        assert row.count(KV_COMPUTED) + row.count(KV_CACHED) == min(n, window)  # what is seen
        assert row.count(KV_CROPPED) == max(0, n - window)
    if not use_cache:
        assert all(KV_CACHED not in r for r in rows)


def test_draw_kv_schedule_draws_a_grid():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tinygpt.book import draw_kv_schedule, kv_schedule

    fig, ax = plt.subplots()
    draw_kv_schedule(ax, kv_schedule(3, 5, 4, True), title="cache")
    assert ax.get_title() == "cache" and len(ax.images) == 1
    assert ax.images[0].get_array().shape == (5, 7)
    plt.close(fig)


@pytest.fixture
def tiny_generator(gpt2):
    from tinygpt.generate import TextGenerator
    from tinygpt.vocab import RestrictedVocab

    vocab = RestrictedVocab(gpt2.encode_ordinary("Leaving this place is something to be, or not"))
    torch.manual_seed(4)
    model = GPT(GPTConfig(vocab_size=vocab.size, block_size=16, n_layer=1, n_head=2, n_embd=8))
    return TextGenerator(model, vocab)


def test_controls_map_to_sampling_config():
    from tinygpt.book import sampling_config_from_controls
    from tinygpt.generate import SamplingConfig

    assert sampling_config_from_controls(0.8, 0, 1.0, 1.0, 3) == SamplingConfig(
        temperature=0.8, top_k=None, top_p=None, repetition_penalty=1.0, seed=3
    )
    assert sampling_config_from_controls(0.0, 40, 0.9, 1.3, 0) == SamplingConfig(
        temperature=0.0, top_k=40, top_p=0.9, repetition_penalty=1.3, seed=0
    )


def test_sampling_playground_generates_on_creation_and_on_click(tiny_generator):
    import html

    pytest.importorskip("ipywidgets")
    from tinygpt.book import sampling_playground
    from tinygpt.generate import SamplingConfig

    ui = sampling_playground(tiny_generator, prompt="Leaving this place", max_new_tokens=12)
    c = ui.controls
    expected = tiny_generator("Leaving this place", 12, SamplingConfig(0.8, top_k=50, seed=0))[0]
    first = c["output"].value
    assert first.startswith("<pre") and "<b>Leaving this place</b>" in first
    assert first.endswith(f"{html.escape(expected[len('Leaving this place') :])}</pre>")
    assert "top_k=50" in c["config"].value and "top_p=None" in c["config"].value

    c["temperature"].value, c["top_k"].value, c["top_p"].value = 1.5, 0, 0.9
    c["repetition_penalty"].value, c["length"].value, c["seed"].value = 1.3, 20, 7
    c["prompt"].value = "to be"
    assert c["output"].value == first  # nothing happens until the button is pressed
    c["button"].click()
    config = SamplingConfig(1.5, top_k=None, top_p=0.9, repetition_penalty=1.3, seed=7)
    text = tiny_generator("to be", 20, config)[0]
    assert c["config"].value == f"<code>{html.escape(repr(config))}</code>"
    assert c["output"].value.endswith(f"<b>to be</b>{html.escape(text[len('to be') :])}</pre>")
    c["button"].click()  # same settings, same seed: the same text
    assert c["output"].value.endswith(f"{html.escape(text[len('to be') :])}</pre>")


def test_rewire_blocks_pre_norm_is_the_package_block_and_the_others_differ():
    from tinygpt.book import rewire_blocks

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, block_size=12, n_layer=2, n_head=4, n_embd=16)).eval()
    idx = torch.randint(0, 50, (2, 9))
    with torch.no_grad():
        reference = model(idx)[0]
        assert torch.equal(rewire_blocks(model, "pre-norm")(idx)[0], reference)
        for wiring in ("post-norm", "no residual"):
            assert not torch.allclose(rewire_blocks(model, wiring)(idx)[0], reference)
    with pytest.raises(ValueError, match="wiring must be one of"):
        rewire_blocks(model, "sandwich")


def test_block_gradient_norms_show_what_chapter_5_says():
    """Chapter 5's measurement at a smaller size: with the LayerNorms taken out of the blocks,
    the residual connections bring every block the same gradient, and without them it shrinks
    by orders of magnitude per block; with the LayerNorms back, nothing vanishes."""
    from tinygpt.book import block_gradient_norms, rewire_blocks

    config = GPTConfig(vocab_size=64, block_size=16, n_layer=8, n_head=2, n_embd=32)
    idx, targets = torch.randint(0, 64, (2, 4, 16), generator=torch.Generator().manual_seed(0))

    def norms(wiring, layer_norms):
        torch.manual_seed(0)
        model = GPT(config).double()
        if not layer_norms:
            for block in model.transformer.h:
                block.ln_1, block.ln_2 = torch.nn.Identity(), torch.nn.Identity()
        result = block_gradient_norms(rewire_blocks(model, wiring), idx, targets)
        assert all(p.grad is None for p in model.parameters())  # it cleans up after itself
        return result

    residual, none = norms("pre-norm", False), norms("no residual", False)
    assert len(residual) == 8 and max(residual) / min(residual) < 1.05
    assert all(above / below > 100 for below, above in zip(none, none[1:]))
    with_ln = norms("no residual", True)
    assert max(with_ln) / min(with_ln) < 10


def test_below_prints_the_bound_it_checked():
    from tinygpt.book import below, bound_text

    assert below(4.8e-7, 1e-6) == "< 1e-6"
    assert below(torch.tensor([[-3e-3, 1e-3]]), 0.02) == "< 0.02"  # the largest |difference|
    assert [bound_text(b) for b in (1e-5, 1e-12, 0.02, 2.5e-4, 1e3)] == [
        "1e-5", "1e-12", "0.02", "0.00025", "1000"
    ]  # fmt: skip
    for too_big in (1e-6, 2e-6, float("nan"), torch.tensor([0.0, -2e-6])):
        with pytest.raises(AssertionError, match="is not below 1e-6"):
            below(too_big, 1e-6)
