"""The chapters' conceptual diagrams (tinygpt.book.diagrams): each one draws, legibly at the
book's column width, and every shape or name it states is what the package's code produces."""

from __future__ import annotations

import functools
import inspect
import io
import re

import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch
from matplotlib.text import Text

from tinygpt import train
from tinygpt.attention import CausalSelfAttention, SelfAttentionHead, scaled_dot_product_attention
from tinygpt.book import diagrams
from tinygpt.model import GPT, Block, GPTConfig
from tinygpt.train import TrainConfig

SMALL = GPTConfig(vocab_size=50, block_size=12, n_layer=2, n_head=4, n_embd=32)
GQA = GPTConfig(vocab_size=50, block_size=12, n_layer=2, n_head=4, n_kv_head=2, n_embd=32)
GPT2 = GPTConfig()  # GPT-2 small: the longest numbers a chapter shows
B, T = 2, 5

# name -> (draw it with symbols, with a small model's numbers, with GPT-2's numbers)
VARIANTS = {
    "attention_head_flow": (
        lambda: diagrams.attention_head_flow(),
        lambda: diagrams.attention_head_flow(SMALL, B, T),
        lambda: diagrams.attention_head_flow(GPT2, 8, 1024),
    ),
    "multi_head_flow": (
        lambda: diagrams.multi_head_flow(),
        lambda: diagrams.multi_head_flow(SMALL, B, T),
        lambda: diagrams.multi_head_flow(GPT2, 8, 1024),
    ),
    "decoder_block": (
        lambda: diagrams.decoder_block(),
        lambda: diagrams.decoder_block(SMALL, B, T),
        lambda: diagrams.decoder_block(GPT2, 8, 1024),
    ),
    "gpt_overview": (
        lambda: diagrams.gpt_overview(),
        lambda: diagrams.gpt_overview(SMALL, B, T),
        lambda: diagrams.gpt_overview(GPT2, 8, 1024),
    ),
    "training_loop": (
        lambda: diagrams.training_loop(),
        lambda: diagrams.training_loop(TrainConfig(eval_interval=25, grad_clip=0.5)),
        lambda: diagrams.training_loop(TrainConfig()),
    ),
    "kv_cache_diagram": (
        lambda: diagrams.kv_cache_diagram(),
        lambda: diagrams.kv_cache_diagram(GQA, B, 3),
        lambda: diagrams.kv_cache_diagram(GPT2, 8, 1000),
    ),
    "head_sharing": (
        lambda: diagrams.head_sharing(),
        lambda: diagrams.head_sharing(4, (4, 2, 1)),
        lambda: diagrams.head_sharing(6, (6, 3, 2, 1)),
    ),
    "classifier_head": (
        lambda: diagrams.classifier_head(),
        lambda: diagrams.classifier_head(SMALL, B, T, K=3),
        lambda: diagrams.classifier_head(GPT2, 8, 1024),
    ),
    "lora_detour": (
        lambda: diagrams.lora_detour(),
        lambda: diagrams.lora_detour(32, 96, 4),
        lambda: diagrams.lora_detour(768, 2304, 16),
    ),
}
KINDS = ("symbols", "small", "gpt2")
ALL = [pytest.param(name, kind, id=f"{name}-{kind}") for name in VARIANTS for kind in KINDS]


@functools.cache
def drawn_figure(name: str, kind: str) -> Figure:
    """Each variant is drawn once per session and shared by the tests that only look at it."""
    return VARIANTS[name][KINDS.index(kind)]()


# What the reader must find in each diagram as drawn by default, with symbols.
LABELS = {
    "attention_head_flow": [
        "(B, T, C)",
        "query",
        "key",
        "value",
        "Linear C → hs",
        "(B, T, hs)",
        "q kᵀ / √hs",
        "(B, T, T)",
        "causal mask",
        "−∞",
        "softmax",
        "rows sum to 1",
        "weights @ v",
        "out",
    ],
    "multi_head_flow": [
        "c_attn",
        "Linear C → 3C",
        "(B, T, C)",
        "(B, nh, T, hs)",
        ".view(B, T, nh, hs)",
        ".transpose(1, 2)",
        ".contiguous()",
        ".view(B, T, C)",
        "in parallel",
        "head 3",
        "c_proj",
        "Linear C → C",
    ],
    "decoder_block": [
        "(B, T, C)",
        "ln_1",
        "attn",
        "causal self-attention",
        "ln_2",
        "mlp",
        "C → 4C",
        "GELU",
        "4C → C",
        "tokens exchange",
        "each token",
        "residual stream",
        "x + attn(ln_1(x))",
        "x + mlp(ln_2(x))",
    ],
    "gpt_overview": [
        "ids",
        "(B, T)",
        "wte",
        "V × C",
        "wpe",
        "block_size × C",
        "drop",
        "L × Block",
        "ln_f",
        "lm_head",
        "Linear C → V",
        "logits",
        "(B, T, V)",
        "same matrix",
        "(tied)",
    ],
    "training_loop": [
        "lr_at",
        "warmup",
        "cosine",
        "get_batch",
        "train_step",
        "model(x, y)",
        "cross-entropy",
        "loss.backward()",
        "clip_grad_norm_",
        "grad_clip",
        "AdamW",
        "eval_interval",
        "evaluate",
        "no gradients",
        "val_loss improved?",
        "save_best",
        "best.safetensors",
        "step += 1",
    ],
    "kv_cache_diagram": [
        "KVCache (L, B, nkv, max_len, hs)",
        "max_len = block_size",
        "keys[ℓ]",
        "values[ℓ]",
        "(B, nh, 1, hs)",
        "(B, nkv, 1, hs)",
        "(B, nkv, t+1, hs)",
        "(B, nkv, t, hs)",
        "1 × (t+1)",
        "T × T",
        "appended now: t",
        "position t",
    ],
    "head_sharing": [
        "MHA",
        "GQA",
        "MQA",
        "nkv = 8",
        "nkv = 2",
        "nkv = 1",
        "q7",
        "kv7",
        "kv1",
        "100 % of MHA's",
        "25 % of MHA's",
        "12.5 % of MHA's",
    ],
    "classifier_head": [
        "(B, T), right-padded",
        "wte, L × Block, ln_f",
        "(B, T, C)",
        "Linear C → V",
        "new: Linear C → 2",
        "(B, T, 2)",
        "[rows, lengths − 1]",
        "(B, 2): one score per class",
    ],
    "lora_detour": [
        "W: out × in",
        "lora_A",
        "8 × in",
        "lora_B",
        "out × 8",
        "starts at 0",
        "× alpha / r",
        "(…, out)",
    ],
}


def rendered(fig: Figure):
    """Draw ``fig`` with Agg and return its renderer, for measuring what was drawn."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def texts(fig: Figure) -> list[Text]:
    """The visible, non-empty text artists, in the order they were drawn."""
    found = fig.findobj(lambda a: isinstance(a, Text) and a.get_visible() and a.get_text())
    return [t for t in found if t.get_text().strip()]


def strings(fig: Figure) -> list[str]:
    return [t.get_text() for t in texts(fig)]


def after(fig: Figure, name: str, lines: int = 1) -> list[str]:
    """The ``lines`` texts drawn right after each text equal to ``name``, joined: what a box says
    under its name (its shape, say)."""
    found = strings(fig)
    return ["\n".join(found[i + 1 : i + 1 + lines]) for i, s in enumerate(found) if s == name]


@pytest.mark.parametrize("name, kind", ALL)
def test_diagram_draws_a_legible_figure(name, kind):
    fig = drawn_figure(name, kind)
    assert isinstance(fig, Figure)
    assert fig.get_figwidth() <= 7.5  # at 100 dpi: no wider than the book's column
    assert all(not ax.axison for ax in fig.axes)  # a diagram, not a plot: no axes or ticks
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    assert png.getvalue().startswith(b"\x89PNG")
    small = [(t.get_text(), t.get_fontsize()) for t in texts(fig) if t.get_fontsize() < 9]
    assert not small


@pytest.mark.parametrize("name, kind", ALL)
def test_diagram_text_stays_on_the_canvas_apart_and_inside_its_box(name, kind):
    fig = drawn_figure(name, kind)
    renderer = rendered(fig)
    found = texts(fig)
    extents = [t.get_window_extent(renderer) for t in found]
    canvas = fig.bbox.padded(0.5)
    outside = [t.get_text() for t, e in zip(found, extents) if not canvas.contains(e.x0, e.y0)]
    outside += [t.get_text() for t, e in zip(found, extents) if not canvas.contains(e.x1, e.y1)]
    assert not outside
    overlapping = [
        (found[i].get_text(), found[j].get_text())
        for i in range(len(found))
        for j in range(i + 1, len(found))
        if extents[i].padded(-0.5).overlaps(extents[j].padded(-0.5))
    ]
    assert not overlapping
    boxes = [p.get_window_extent(renderer) for p in fig.findobj(FancyBboxPatch)]
    spilling = []
    for t, e in zip(found, extents):
        anchor = t.get_transform().transform(t.get_position())
        holding = [b for b in boxes if b.contains(*anchor)]
        if holding:  # its box is the smallest one around the text's anchor (a stack: any)
            least = min(b.width * b.height for b in holding)
            smallest = [b.padded(0.5) for b in holding if b.width * b.height <= least + 1]
            if not any(b.contains(e.x0, e.y0) and b.contains(e.x1, e.y1) for b in smallest):
                spilling.append(t.get_text())
    assert not spilling


@pytest.mark.parametrize("name", LABELS)
def test_diagram_names_what_the_reader_looks_for(name):
    drawn = "\n".join(strings(drawn_figure(name, "symbols")))
    missing = [label for label in LABELS[name] if label not in drawn]
    assert not missing


def shape(t: torch.Tensor) -> str:
    return str(tuple(t.shape))


def test_attention_head_flow_states_the_shapes_of_self_attention_head():
    C, hs = SMALL.n_embd, SMALL.head_size
    head = SelfAttentionHead(C, hs)
    seen = {}
    for name in ("query", "key", "value"):
        getattr(head, name).register_forward_hook(
            lambda module, args, out, name=name: seen.update({name: out})
        )
    x = torch.randn(B, T, C)
    out = head(x)
    _, weights = scaled_dot_product_attention(seen["query"], seen["key"], seen["value"])
    fig = diagrams.attention_head_flow(SMALL, B, T)
    assert after(fig, "x") == [shape(x)]
    assert after(fig, "q") == [shape(seen["query"])]
    assert after(fig, "k") == [shape(seen["key"])]
    assert after(fig, "v") == [shape(seen["value"])]
    assert after(fig, "scores") == after(fig, "weights") == [shape(weights)]
    assert after(fig, "out") == [shape(out)]
    for name in ("query", "key", "value"):
        linear = getattr(head, name)
        assert after(fig, name) == [f"Linear {linear.in_features} → {linear.out_features}"]


def test_multi_head_flow_states_the_shapes_of_causal_self_attention():
    attn = CausalSelfAttention(SMALL.n_embd, SMALL.n_head)
    seen = {}
    attn.c_proj.register_forward_pre_hook(lambda module, args: seen.update(merged=args[0]))
    x = torch.randn(B, T, SMALL.n_embd)
    out = attn(x)
    fused = attn.c_attn(x).split(SMALL.n_embd, dim=2)  # q, k, v before the reshape
    heads = attn.split_heads(x)  # q, k, v after it
    per_head, _ = scaled_dot_product_attention(*heads)
    fig = diagrams.multi_head_flow(SMALL, B, T)
    for name, flat, split in zip("qkv", fused, heads):
        assert after(fig, name) == [shape(flat), shape(split)]
    assert after(fig, "y") == [shape(per_head), shape(seen["merged"])]
    assert after(fig, "out") == [shape(out)]
    c_attn, c_proj = attn.c_attn, attn.c_proj
    assert after(fig, "c_attn") == [f"Linear {c_attn.in_features} → {c_attn.out_features}"]
    assert after(fig, "c_proj") == [f"Linear {c_proj.in_features} → {c_proj.out_features}"]
    assert sum(s.startswith("head ") for s in strings(fig)) == SMALL.n_head


def test_decoder_block_states_the_shapes_of_block():
    block = Block(SMALL)
    seen = {}
    for name in ("ln_1", "attn", "ln_2", "mlp"):
        getattr(block, name).register_forward_hook(
            lambda module, args, out, name=name: seen.update({name: out})
        )
    block.mlp.c_fc.register_forward_hook(lambda module, args, out: seen.update(hidden=out))
    x = torch.randn(B, T, SMALL.n_embd)
    out = block(x)
    assert {shape(t) for t in seen.values() if t is not seen["hidden"]} == {shape(x)}
    fig = diagrams.decoder_block(SMALL, B, T)
    assert after(fig, "x") == [shape(x), shape(out)]
    C, hidden = SMALL.n_embd, seen["hidden"].size(-1)
    assert after(fig, "mlp", lines=2) == [f"c_fc {C} → {hidden}, GELU,\nc_proj {hidden} → {C}"]
    assert after(fig, "ln_1") == after(fig, "ln_2") == [f"LayerNorm over {C}"]


def test_gpt_overview_states_the_shapes_and_the_tied_matrix_of_gpt():
    model = GPT(SMALL)
    ids = torch.randint(0, SMALL.vocab_size, (B, T))
    logits, _ = model(ids)
    wte, wpe = model.transformer.wte.weight, model.transformer.wpe.weight
    assert model.lm_head.weight is wte  # what the dashed connector says
    fig = diagrams.gpt_overview(SMALL, B, T)
    assert after(fig, "ids") == [shape(ids)]
    assert after(fig, "logits") == [shape(logits)]
    assert after(fig, "wte", lines=2) == ["token embedding\n{} × {}".format(*wte.shape)]
    assert after(fig, "wpe", lines=2) == ["position embedding\n{} × {}".format(*wpe.shape)]
    assert after(fig, "lm_head") == ["Linear {1} → {0}, no bias".format(*wte.shape)]
    assert after(fig, "h")[0].startswith(f"{len(model.transformer.h)} × Block")
    assert any("same matrix" in s for s in strings(fig))
    untied = diagrams.gpt_overview(GPTConfig(**{**SMALL.to_dict(), "tie_weights": False}))
    assert not any("same matrix" in s for s in strings(untied))


def test_kv_cache_diagram_states_the_shapes_of_kv_cache_and_one_decoding_step():
    t = 3
    model = GPT(GQA).eval()
    cache = model.new_cache(B)
    with torch.no_grad():
        model(torch.randint(0, GQA.vocab_size, (B, t)), cache=cache)
    attn, seen = model.transformer.h[0].attn, {}
    split_heads, append = attn.split_heads, cache.append

    def spy_split(x):
        seen["qkv"] = split_heads(x)
        return seen["qkv"]

    def spy_append(layer, k, v):
        keys, values = append(layer, k, v)
        if layer == 0:
            seen.update(keys=keys, values=values)
        return keys, values

    attn.split_heads, cache.append = spy_split, spy_append
    with torch.no_grad():
        model(torch.randint(0, GQA.vocab_size, (B, 1)), cache=cache)
    q, k, v = seen["qkv"]
    _, weights = scaled_dot_product_attention(
        q, attn.expand_kv(seen["keys"]), attn.expand_kv(seen["values"])
    )
    fig = diagrams.kv_cache_diagram(GQA, B, t)
    drawn = strings(fig)
    L, _, nkv, max_len, hs = cache.keys.shape
    assert f"KVCache ({L}, {B}, {nkv}, max_len, {hs})" in drawn
    assert f"a row holds max_len = {max_len}" in drawn
    assert after(fig, "q") == [shape(q)]
    assert after(fig, "k") == [shape(k)]
    assert after(fig, "v") == [shape(v)]
    assert f"all {t + 1} keys\n{shape(seen['keys'])}" in drawn
    assert f"all {t + 1} values\n{shape(seen['values'])}" in drawn
    assert f"one row: {shape(weights)}" in drawn  # (B, nh, 1, t+1): one row of scores per head
    assert f"filled: {(B, nkv, t, hs)} per layer ℓ" in drawn
    assert after(fig, "x: the new token") == [f"{(B, 1, GQA.n_embd)}, position {t}"]


def kv_head_read_by(n_head: int, n_kv_head: int) -> list[int]:
    """Which key/value head each query head reads in the package's real forward pass (the
    fused kernel): value head g holds the number g, every query attends to it alone."""
    hs = 2
    C = n_head * hs
    attn = CausalSelfAttention(C, n_head, n_kv_head=n_kv_head)
    with torch.no_grad():
        attn.c_attn.weight.zero_()
        attn.c_attn.bias.zero_()
        attn.c_attn.bias[C + n_kv_head * hs :] = torch.arange(n_kv_head).repeat_interleave(hs)
        attn.c_proj.weight.copy_(torch.eye(C))
        attn.c_proj.bias.zero_()
        y = attn(torch.zeros(1, 3, C))
    return y[0, -1].view(n_head, hs)[:, 0].round().long().tolist()


@pytest.mark.parametrize("n_head, kv_heads", [(8, (8, 2, 1)), (6, (6, 3, 2, 1))])
def test_head_sharing_draws_the_head_that_each_query_head_reads(n_head, kv_heads):
    fig = diagrams.head_sharing(n_head, kv_heads)
    drawn = [line.get_gid() for line in fig.axes[0].lines if line.get_gid()]
    for n_kv_head in kv_heads:
        owner = kv_head_read_by(n_head, n_kv_head)
        expected = {f"nkv={n_kv_head}: q{h}-kv{g}" for h, g in enumerate(owner)}
        assert {gid for gid in drawn if gid.startswith(f"nkv={n_kv_head}:")} == expected


def test_training_loop_names_the_code_in_the_order_it_runs():
    fig = diagrams.training_loop(TrainConfig(eval_interval=25, grad_clip=0.5))
    drawn = strings(fig)
    assert "every 25 steps" in drawn
    assert "total gradient norm ≤ 0.5" in drawn
    for name in ("lr_at", "get_batch", "train_step", "evaluate", "save_best"):
        assert callable(getattr(train, name)), name
        assert name in drawn
    # The main column, top to bottom, follows the loop's source: the step itself, then the
    # evaluation; save_best is called from the loop. The bookkeeping of a long run (the stop
    # check, save_state) is Appendix C's and is left out of the picture.
    loop = inspect.getsource(train._loop)
    body = loop[loop.index("while ") :]
    calls = [r"\blr_at\(", r"\bget_batch\(", r"\btrain_step\(", r"\bevaluate\("]
    where = [re.search(c, body).start() for c in calls]
    assert where == sorted(where)
    assert "save_best" in loop
    order = ["lr_at", "get_batch", "train_step", "evaluate", "save_best"]
    assert [drawn.index(s) for s in order] == sorted(drawn.index(s) for s in order)
    assert not any(w in s for s in drawn for w in ("StopRequest", "Ctrl-C", "save_state"))


class RecordingOptimizer:
    """Just enough of an optimizer for ``train_step``, writing down when it steps."""

    def __init__(self, events: list[str]) -> None:
        self.param_groups = [{"lr": 0.0}]
        self.events = events

    def zero_grad(self, set_to_none: bool = True) -> None:
        pass

    def step(self) -> None:
        self.events.append("optimizer.step()")


def test_training_loop_draws_train_step_in_the_order_it_runs():
    torch.manual_seed(0)
    model = GPT(SMALL)
    events = []
    model.register_forward_hook(lambda *args: events.append("model(x, y)"))
    model.lm_head.weight.register_hook(lambda grad: events.append("loss.backward()"))
    clip = torch.nn.utils.clip_grad_norm_

    def spy_clip(*args, **kwargs):
        events.append("clip_grad_norm_")
        return clip(*args, **kwargs)

    x = torch.randint(0, SMALL.vocab_size, (B, T))
    y = torch.randint(0, SMALL.vocab_size, (B, T))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.nn.utils, "clip_grad_norm_", spy_clip)
        train.train_step(model, RecordingOptimizer(events), x, y, 1e-3, TrainConfig(grad_clip=1.0))
    drawn = strings(diagrams.training_loop())
    assert len(set(events)) == 4
    assert sorted(set(events), key=events.index) == sorted(set(events), key=drawn.index)
    # the optimizer train() builds is the AdamW the diagram names
    assert "torch.optim.AdamW(" in inspect.getsource(train.configure_optimizer)


def test_diagrams_refuse_what_they_cannot_draw():
    swiglu = GPTConfig(**{**SMALL.to_dict(), "mlp": "swiglu"})
    rope = GPTConfig(**{**SMALL.to_dict(), "pos_embedding": "rope"})
    with pytest.raises(ValueError, match="B must be"):
        diagrams.attention_head_flow(SMALL, B=0)
    with pytest.raises(ValueError, match="mlp"):
        diagrams.decoder_block(swiglu)
    with pytest.raises(ValueError, match="learned"):
        diagrams.gpt_overview(rope)
    with pytest.raises(ValueError, match="n_kv_head"):
        diagrams.multi_head_flow(GQA)
    with pytest.raises(ValueError, match="t must be"):
        diagrams.kv_cache_diagram(SMALL, B, SMALL.block_size)
    with pytest.raises(ValueError, match="n_head"):
        diagrams.head_sharing(16)


def test_every_public_diagram_is_tested():
    public = {
        name
        for name, f in inspect.getmembers(diagrams, inspect.isfunction)
        if f.__module__.startswith(diagrams.__name__) and not name.startswith("_")
    }
    assert public == set(VARIANTS) == set(diagrams.__all__) - {"LEGEND", "PALETTE"}
    assert all(re.fullmatch(r"[a-z_]+", name) for name in public)


def test_kv_cache_diagram_before_gqa_has_nh_heads_in_the_cache():
    """Chapter 7 draws the cache before Chapter 8 introduces nkv: every head is a query head."""
    drawn = " ".join(strings(diagrams.kv_cache_diagram(grouped=False)))
    assert "nkv" not in drawn
    assert "KVCache (L, B, nh, max_len, hs)" in drawn and "(B, nh, 1, hs)" in drawn
    gqa = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=4, n_kv_head=2, n_embd=16)
    with pytest.raises(ValueError, match="n_kv_head"):
        diagrams.kv_cache_diagram(gqa, grouped=False)
