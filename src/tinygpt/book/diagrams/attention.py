"""Chapters 3 and 4: one head, then many heads at once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tinygpt.book.diagrams.drawing import (
    NAME,
    NOTE,
    NOTE_INK,
    TEXT,
    _arrow,
    _bar,
    _Box,
    _box,
    _canvas,
    _code_note,
    _grid,
    _head_colour,
    _legend,
    _shape,
    _sizes,
    _styled,
    _text,
    _times,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from tinygpt.model import GPTConfig


def _causal(n: int, weights: bool) -> list[list]:
    """An n x n causal pattern: None above the diagonal; below it the softmax weights of equal
    scores (1 / (t + 1)) or, for scores, a fixed pattern of shades."""
    return [
        [
            None if s > t else (1 / (t + 1) if weights else ((3 * t + 5 * s) % 7) / 6)
            for s in range(n)
        ]
        for t in range(n)
    ]


@_styled
def attention_head_flow(
    config: GPTConfig | None = None, B: int | None = None, T: int | None = None
) -> Figure:
    """The data flow of one causal self-attention head (``SelfAttentionHead``), top to bottom.

    x (B, T, C) goes through three linear maps (query, key, value) to q, k, v (B, T, hs); the
    scores q kᵀ / √hs (B, T, T) are masked (the future set to −∞), softmaxed row by row into
    weights, and the weights average the values into out (B, T, hs). The small grids are a T x T
    matrix at each stage. Sizes are symbols, or the numbers of ``config`` (C, hs) and B, T.
    """
    s = _sizes(config, B, T)
    B, T, C, hs = s["B"], s["T"], s["C"], s["hs"]
    W, H, pitch = 6.5, 7.75, 0.73
    fig, ax = _canvas(W, H)
    y = [H - 0.4 - i * pitch for i in range(10)]
    xs, xm, icon = (1.1, 2.8, 5.6), 1.95, 3.7
    x = _box(ax, 3.3, y[0], 1.7, 0.5, "x", _shape(B, T, C), "tensor")
    qkv = []
    for xi, name in zip(xs, ("q", "k", "v")):
        full = dict(q="query", k="key", v="value")[name]
        linear = _box(ax, xi, y[1], 1.55, 0.5, full, f"Linear {C} → {hs}", "layer", mono=True)
        _arrow(ax, x.bottom, linear.top)
        qkv.append(_box(ax, xi, y[2], 1.55, 0.5, name, _shape(B, T, hs), "tensor"))
        _arrow(ax, linear.bottom, qkv[-1].top)
    steps = [
        ("q kᵀ / √hs", "every query · every key", "op"),
        ("scores", _shape(B, T, T), "tensor"),
        ("causal mask", "future (key s > query t) → −∞", "op"),
        ("softmax", "over each row: rows sum to 1", "op"),
        ("weights", _shape(B, T, T), "tensor"),
        ("weights @ v", "a weighted mean of the values", "op"),
        ("out", _shape(B, T, hs), "output"),
    ]
    boxes = []
    for yi, (name, detail, kind) in zip(y[3:], steps):
        w = 2.6 if kind == "op" else 1.7
        boxes.append(_box(ax, xm, yi, w, 0.5, name, detail, kind))
        if len(boxes) > 1:
            _arrow(ax, boxes[-2].bottom, boxes[-1].top)
    for xi, b in zip(xs[:2], qkv[:2]):
        _arrow(ax, b.bottom, (xi, boxes[0].top[1]))
    _arrow(ax, qkv[2].bottom, (xs[2], y[8]), boxes[5].right)
    icons = [
        (
            y[4],
            [[(3 * t + 5 * u) % 7 / 6 for u in range(5)] for t in range(5)],
            "row t: query t\ncolumn s: key s",
        ),
        (y[5], _causal(5, weights=False), "grey: −∞,\nthe future"),
        (y[7], _causal(5, weights=True), "grey: weight 0,\nno peeking"),
    ]
    for yi, values, caption in icons:
        _grid(ax, icon, yi, values)
        _text(ax, icon + 0.38, yi, caption, NOTE, NOTE_INK, ha="left")
    _legend(ax, 0.22)
    return fig


# ---------------------------------------------------------------------------------------------
# Chapter 4: many heads at once.


def _heads_drawn(config: GPTConfig | None) -> int:
    if config is None:
        return 4
    if config.kv_heads != config.n_head:
        raise ValueError("this draws multi-head attention (n_kv_head = n_head); see head_sharing")
    if config.n_head > 16:
        raise ValueError(f"n_head = {config.n_head} is too many heads to draw (at most 16)")
    return config.n_head


def _sliced(ax, x, y, name, shape, heads, stacked=False, w=1.5) -> _Box:
    """A tensor drawn by its head slices (see ``_bar``), its name on the left, shape below."""
    h = min(0.14, 0.7 / heads) * heads if stacked else 0.22
    bar = _bar(ax, x, y, w, h, heads, stacked)
    _text(ax, x - bar.w / 2 - 0.1, y, name, NAME, ha="right", weight="bold")
    _text(ax, x, y - h / 2 - 0.15, shape, TEXT)
    return bar


@_styled
def multi_head_flow(
    config: GPTConfig | None = None, B: int | None = None, T: int | None = None
) -> Figure:
    """Multi-head attention as ``CausalSelfAttention`` computes it, top to bottom.

    One fused linear map ``c_attn`` (C → 3C) gives q, k, v (B, T, C) for all heads at once; a
    view and a transpose cut each C-wide row into nh slices of hs numbers, one colour per head,
    and stack them into (B, nh, T, hs); the nh heads attend independently, in parallel; their
    outputs are put back side by side into (B, T, C) and mixed by ``c_proj`` (C → C). Sizes are
    symbols (nh drawn as 4), or the numbers of ``config`` and B, T.
    """
    s = _sizes(config, B, T)
    B, T, C, nh, hs = s["B"], s["T"], s["C"], s["nh"], s["hs"]
    heads = _heads_drawn(config)
    W, H = 7.0, 9.25
    fig, ax = _canvas(W, H)
    xs, xm, xn = (1.0, 2.65, 4.3), 2.65, 5.2
    x = _box(ax, xm, H - 0.4, 1.7, 0.5, "x", _shape(B, T, C), "tensor")
    fused = _box(
        ax, xm, H - 1.2, 3.2, 0.5, "c_attn", f"Linear {C} → {_times(3, C)}", "layer", mono=True
    )
    _arrow(ax, x.bottom, fused.top)
    if config is None:
        _text(
            ax, xn, H - 0.8, "one colour per head\n(drawn with nh = 4)", NOTE, NOTE_INK, ha="left"
        )
    y_bar, y_stack, y_attn = H - 2.05, H - 3.1, H - 4.5
    attn = _box(ax, xm, y_attn, 4.7, 1.2, "", kind="op")
    _text(ax, xm, y_attn + 0.42, f"{nh} heads attend in parallel", NAME, weight="bold")
    for xi, name in zip(xs, "qkv"):
        bar = _sliced(ax, xi, y_bar, name, _shape(B, T, C), heads, w=1.3)
        _arrow(ax, (xm, fused.bottom[1]), bar.top)
        stack = _sliced(ax, xi, y_stack, name, _shape(B, nh, T, hs), heads, stacked=True, w=1.3)
        _arrow(ax, (xi, bar.bottom[1] - 0.27), stack.top)
        _arrow(ax, (xi, stack.bottom[1] - 0.27), (xi, attn.top[1]))
    _text(ax, xn, y_bar, "split in three", NOTE, NOTE_INK, ha="left")
    _code_note(ax, xn, y_stack, ".view(B, T, nh, hs)\n.transpose(1, 2)")
    _code_note(ax, xn, y_attn, "each on its own:\nq kᵀ, mask,\nsoftmax, @ v", mono=False)
    pitch = min(1.05, 4.2 / heads)
    for hd in range(heads):
        cx = xm + (hd - (heads - 1) / 2) * pitch
        icon = _causal(5, weights=True)
        _grid(ax, cx, y_attn - 0.05, icon, cell=min(0.09, pitch / 6), colour=_head_colour(hd))
        _text(ax, cx, y_attn - 0.43, f"head {hd}" if heads <= 6 else str(hd), NOTE)
    out = _sliced(ax, xm, H - 5.75, "y", _shape(B, nh, T, hs), heads, stacked=True, w=1.3)
    _arrow(ax, attn.bottom, out.top)
    merged = _sliced(ax, xm, H - 6.8, "y", _shape(B, T, C), heads, w=1.3)
    _arrow(ax, (xm, out.bottom[1] - 0.27), merged.top)
    _code_note(ax, xn, H - 6.27, ".transpose(1, 2)\n.contiguous()\n.view(B, T, C)")
    proj = _box(ax, xm, H - 7.7, 3.2, 0.5, "c_proj", f"Linear {C} → {C}", "layer", mono=True)
    _arrow(ax, (xm, merged.bottom[1] - 0.27), proj.top)
    _code_note(ax, xn, proj.y, "mixes the heads", mono=False)
    done = _box(ax, xm, H - 8.45, 1.7, 0.5, "out", _shape(B, T, C), "output")
    _arrow(ax, proj.bottom, done.top)
    _legend(ax, 0.22)
    return fig
