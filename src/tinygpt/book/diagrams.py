"""The conceptual diagrams of the chapters: how data flows through attention, a block, the whole
model, the training loop and the KV cache, drawn with matplotlib in one style.

Every diagram is a function that returns a ``matplotlib.figure.Figure``. Shapes are written in
the book's notation (B, T, C, nh, nkv, hs, V, L) unless a ``GPTConfig`` (and B, T) is passed, in
which case they are that model's numbers. One colour means one thing everywhere: blue for
tensors (data), orange for learned layers and their parameters, grey for fixed operations,
green for outputs. Coordinates are in inches, so the fonts keep their size at the page's width.
matplotlib and torch are imported lazily.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tinygpt.book.figures import STYLE, kv_head_of_query_heads

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from tinygpt.model import GPTConfig
    from tinygpt.train import TrainConfig

# One meaning per colour, in every diagram: (fill, edge).
PALETTE = {
    "tensor": ("#dbe9f6", "#2c6fad"),  # data: tensors, batches
    "layer": ("#fdd8b5", "#c45a0a"),  # learned: layers and their parameters
    "op": ("#ececec", "#6f6f6f"),  # fixed operations, without parameters
    "output": ("#d3eecd", "#2e8b3d"),  # results: outputs, files written
}
LEGEND = {
    "tensor": "tensor (data)",
    "layer": "learned layer",
    "op": "fixed operation",
    "output": "output",
}
INK, ARROW, NOTE_INK = "#1f1f1f", "#4d4d4d", "#555555"
NAME, TEXT, NOTE = 11.5, 10.5, 10.0  # font sizes in points: never below 9


# ---------------------------------------------------------------------------------------------
# Drawing helpers, in inches (the axes span the whole figure, one data unit per inch).


@dataclass
class _Box:
    """Where a box was drawn: centre (x, y), width and height, and its edges' midpoints."""

    x: float
    y: float
    w: float
    h: float

    @property
    def top(self) -> tuple[float, float]:
        return (self.x, self.y + self.h / 2)

    @property
    def bottom(self) -> tuple[float, float]:
        return (self.x, self.y - self.h / 2)

    @property
    def left(self) -> tuple[float, float]:
        return (self.x - self.w / 2, self.y)

    @property
    def right(self) -> tuple[float, float]:
        return (self.x + self.w / 2, self.y)


def _styled(draw):
    """Run a diagram function inside the book's matplotlib style (book.mplstyle)."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context(fname=STYLE):
            return draw(*args, **kwargs)

    return wrapper


def _canvas(width: float, height: float) -> tuple[Figure, Axes]:
    """A figure of width x height inches whose single axes use inches as data units."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    return fig, ax


def _shape(*dims) -> str:
    """A shape as the book writes it, e.g. ``(B, T, C)``; for numbers the same as a torch
    shape's ``str(tuple(...))``."""
    return "(" + ", ".join(str(d) for d in dims) + ")"


def _sizes(config: GPTConfig | None, B: int | None = None, T: int | None = None) -> dict:
    """The labels of every size: symbols, or the numbers of ``config`` (and B, T) when given."""
    for name, value in (("B", B), ("T", T)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
    s = dict(B="B" if B is None else B, T="T" if T is None else T)
    if config is None:
        return s | dict(C="C", nh="nh", nkv="nkv", hs="hs", V="V", L="L", W="block_size")
    return s | dict(
        C=config.n_embd,
        nh=config.n_head,
        nkv=config.kv_heads,
        hs=config.head_size,
        V=config.vocab_size,
        L=config.n_layer,
        W=config.block_size,
    )


def _times(n, what: str) -> str:
    """``3C`` for a symbol, the product for a number: ``_times(4, "C")``."""
    return f"{n}{what}" if isinstance(what, str) else str(n * what)


def _text(ax, x, y, text, size=TEXT, colour=INK, **kw):
    kw.setdefault("ha", "center")
    kw.setdefault("va", "center")
    return ax.text(x, y, text, fontsize=size, color=colour, zorder=4, **kw)


def _box(ax, x, y, w, h, name, detail="", kind="op", mono=False, dashed=False, lift=0.0) -> _Box:
    """A rounded box centred at (x, y): ``name`` in bold (monospace for a name from the code),
    ``detail`` (one or more lines) below it, coloured by ``kind`` (see ``PALETTE``); the text
    sits ``lift`` inches above the centre (to leave room for a drawing under it)."""
    from matplotlib.patches import FancyBboxPatch

    fill, edge = PALETTE[kind]
    ax.add_patch(
        FancyBboxPatch(
            (x - w / 2, y - h / 2),
            w,
            h,
            boxstyle="round,pad=0,rounding_size=0.08",
            facecolor=fill,
            edgecolor=edge,
            linewidth=1.3,
            linestyle="--" if dashed else "-",
            zorder=2,
        )
    )
    lines = [(name, NAME)] + [(line, TEXT) for line in detail.splitlines()] if name else []
    step = [size * 1.3 / 72 for _, size in lines]
    top = y + lift + sum(step) / 2
    for i, (line, size) in enumerate(lines):
        yi = top - sum(step[:i]) - step[i] / 2
        family = "monospace" if mono and i == 0 else "sans-serif"
        _text(ax, x, yi, line, size, weight="bold" if i == 0 else "normal", family=family)
    return _Box(x, y, w, h)


def _arrow(ax, *points, colour=ARROW, dashed=False, head=True, lw=1.4, zorder=1):
    """An arrow along the polyline ``points`` (two or more (x, y)), the head at the last one."""
    from matplotlib.patches import FancyArrowPatch

    style = "--" if dashed else "-"
    for a, b in zip(points[:-2], points[1:-1]):
        ax.plot([a[0], b[0]], [a[1], b[1]], color=colour, lw=lw, ls=style, zorder=zorder)
    ax.add_patch(
        FancyArrowPatch(
            points[-2],
            points[-1],
            arrowstyle="-|>" if head else "-",
            mutation_scale=14,
            color=colour,
            linewidth=lw,
            linestyle=style,
            shrinkA=0,
            shrinkB=0,
            zorder=zorder,
        )
    )


def _plus(ax, x, y, r=0.14):
    """The ⊕ where a sublayer's result is added to the residual stream."""
    from matplotlib.patches import Circle

    ax.add_patch(Circle((x, y), r, facecolor="white", edgecolor=INK, linewidth=1.4, zorder=3))
    ax.plot([x - r * 0.6, x + r * 0.6], [y, y], color=INK, lw=1.4, zorder=4)
    ax.plot([x, x], [y - r * 0.6, y + r * 0.6], color=INK, lw=1.4, zorder=4)


def _frame(ax, x0, y0, x1, y1, label="", mono=True, right=False):
    """A dashed, unfilled rounded frame around a group of boxes, ``label`` at its top left (or
    top right)."""
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(
        FancyBboxPatch(
            (x0, y0),
            x1 - x0,
            y1 - y0,
            boxstyle="round,pad=0,rounding_size=0.12",
            facecolor="none",
            edgecolor="#8a8a8a",
            linewidth=1.2,
            linestyle=(0, (4, 3)),
            zorder=0,
        )
    )
    if label:
        family = "monospace" if mono else "sans-serif"
        x, ha = (x1 - 0.12, "right") if right else (x0 + 0.12, "left")
        _text(ax, x, y1 - 0.07, label, TEXT, NOTE_INK, ha=ha, va="top", family=family)


def _legend(ax, y, kinds: Sequence[str] = tuple(PALETTE), labels: dict | None = None):
    """A one-row legend of the box colours at height y."""
    labels = LEGEND | (labels or {})
    _swatches(ax, y, [(*PALETTE[kind], labels[kind]) for kind in kinds])


def _swatches(ax, y, items, x=0.2, rounded=True):
    """A row of (fill, edge, label) colour swatches from x rightwards at height y."""
    from matplotlib.patches import FancyBboxPatch

    for fill, edge, label in items:
        size = 0.04 if rounded else 0.0
        ax.add_patch(
            FancyBboxPatch(
                (x, y - 0.08),
                0.26,
                0.16,
                boxstyle=f"round,pad=0,rounding_size={size}",
                facecolor=fill,
                edgecolor=edge,
                linewidth=1.2,
            )
        )
        _text(ax, x + 0.34, y, label, NOTE, NOTE_INK, ha="left")
        x += 0.34 + len(label) * 0.075 + 0.3  # ~0.075 in per character at 9.5 pt


def _grid(ax, cx, cy, values, cell=0.1, colour="#2c6fad", masked_colour="#c8c8c8"):
    """A small grid icon centred at (cx, cy): ``values[i][j]`` in [0, 1] is a shade of
    ``colour`` (white to full); None draws the cell grey (a masked score, −∞)."""
    from matplotlib.colors import LinearSegmentedColormap
    from matplotlib.patches import Rectangle

    colours = LinearSegmentedColormap.from_list("shade", ["white", colour])
    n_rows, n_cols = len(values), len(values[0])
    x0, y0 = cx - n_cols * cell / 2, cy + n_rows * cell / 2
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            face = masked_colour if v is None else colours(0.15 + 0.85 * v)
            ax.add_patch(
                Rectangle(
                    (x0 + j * cell, y0 - (i + 1) * cell),
                    cell,
                    cell,
                    facecolor=face,
                    edgecolor="white",
                    linewidth=0.8,
                    zorder=2,
                )
            )


def _head_colour(h: int):
    import matplotlib

    return matplotlib.colormaps["tab10"](h % 10)


def _bar(ax, x, y, w, h, heads: int, stacked=False):
    """A tensor's last dimension(s) drawn as coloured head slices: one bar of width w cut into
    ``heads`` slices side by side, or (``stacked``) the same slices as rows one under another,
    each w / heads wide. Returns the drawn extent as a ``_Box``."""
    from matplotlib.patches import Rectangle

    piece = w / heads
    for hd in range(heads):
        if stacked:
            xy, size = (x - piece / 2, y + h / 2 - (hd + 1) * h / heads), (piece, h / heads)
        else:
            xy, size = (x - w / 2 + hd * piece, y - h / 2), (piece, h)
        ax.add_patch(
            Rectangle(xy, *size, facecolor=_head_colour(hd), alpha=0.75, edgecolor="white", lw=1)
        )
    return _Box(x, y, piece if stacked else w, h)


# ---------------------------------------------------------------------------------------------
# Chapter 3: one head.


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


def _code_note(ax, x, y, text, mono=True, ha="left"):
    """A grey side note, left-aligned at x: code in monospace, or words."""
    family = "monospace" if mono else "sans-serif"
    return _text(ax, x, y, text, NOTE, NOTE_INK, ha=ha, family=family)


# ---------------------------------------------------------------------------------------------
# Chapter 5: the block and the model.


def _gpt2_only(config: GPTConfig | None, what: str) -> str:
    """The norm's name; raises for the parts of Chapter 8 that these GPT-2 diagrams do not draw."""
    if config is not None and config.mlp != "gelu":
        raise ValueError(f"{what} draws GPT-2's MLP (mlp='gelu'), not {config.mlp!r}")
    return "RMSNorm" if config is not None and config.norm == "rmsnorm" else "LayerNorm"


@_styled
def decoder_block(
    config: GPTConfig | None = None, B: int | None = None, T: int | None = None
) -> Figure:
    """One pre-norm decoder block (``Block``): the residual stream x (B, T, C) runs straight
    down; attention (after ``ln_1``) and then the MLP (after ``ln_2``) each read a normalised
    copy of it and add their result back (⊕). Attention is where tokens exchange information;
    the MLP works on each token on its own (C → 4C → GELU → C)."""
    norm = _gpt2_only(config, "decoder_block")
    s = _sizes(config, B, T)
    B, T, C = s["B"], s["T"], s["C"]
    hidden = "4C" if config is None else config.hidden_size
    W, H = 6.6, 7.0
    fig, ax = _canvas(W, H)
    xr, xs, xn = 1.35, 3.45, 4.85
    top = _box(ax, xr, H - 0.4, 1.6, 0.5, "x", _shape(B, T, C), "tensor")
    _frame(ax, 0.3, H - 5.75, W - 0.15, H - 0.85, f"Block: one of {s['L']}", right=True)
    sublayers = [
        ("ln_1", "attn", "causal self-attention", "tokens exchange\ninformation", H - 1.35),
        (
            "ln_2",
            "mlp",
            f"c_fc {C} → {hidden}, GELU,\nc_proj {hidden} → {C}",
            "each token\non its own",
            H - 3.55,
        ),
    ]
    above = top.bottom
    for ln, name, detail, note, y in sublayers:
        norm_box = _box(ax, xs, y, 2.4, 0.5, ln, f"{norm} over {C}", "layer", mono=True)
        _arrow(ax, (xr, y), norm_box.left)
        ax.plot([xr], [y], "o", color=ARROW, markersize=5, zorder=3)
        sub = _box(
            ax, xs, y - 0.85, 2.4, 0.5 if name == "attn" else 0.68, name, detail, "layer", mono=True
        )
        _arrow(ax, norm_box.bottom, sub.top)
        _text(ax, xn + 0.05, sub.y, note, TEXT, NOTE_INK, ha="left", style="italic")
        y_plus = sub.bottom[1] - 0.55
        _arrow(ax, sub.bottom, (xs, y_plus), (xr + 0.14, y_plus))
        _plus(ax, xr, y_plus)
        _code_note(ax, xr + 0.3, y_plus + 0.17, f"x + {name}({ln}(x))")
        _arrow(ax, above, (xr, y_plus + 0.14))
        above = (xr, y_plus - 0.14)
    out = _box(ax, xr, H - 6.25, 1.6, 0.5, "x", _shape(B, T, C), "output")
    _arrow(ax, above, out.top)
    _text(ax, xr - 0.22, H - 4.05, "residual stream", TEXT, NOTE_INK, rotation=90)
    _legend(ax, 0.22, ("tensor", "layer", "output"))
    return fig


def _stack(ax, x, y, w, h, name, detail, depth=2) -> _Box:
    """A box with ``depth`` copies peeking out behind it: a stack of identical layers."""
    for i in range(depth, 0, -1):
        _box(ax, x + 0.08 * i, y + 0.08 * i, w, h, "", kind="layer")
    _box(ax, x, y, w, h, name, detail, "layer", mono=True)
    return _Box(x, y + 0.04 * depth, w, h + 0.08 * depth)  # the top is the last copy's


@_styled
def gpt_overview(
    config: GPTConfig | None = None, B: int | None = None, T: int | None = None
) -> Figure:
    """The whole GPT (``GPT.forward``), top to bottom: token ids (B, T) look up token vectors in
    ``wte`` (V × C) and position vectors in ``wpe`` (block_size × C), which are added, go through
    dropout and L decoder blocks, the final norm ``ln_f`` and ``lm_head`` (C → V) to logits
    (B, T, V). The dashed line joins the two uses of one tied V × C matrix."""
    _gpt2_only(config, "gpt_overview")
    if config is not None and config.pos_embedding != "learned":
        raise ValueError("gpt_overview draws GPT-2's learned positions (pos_embedding='learned')")
    s = _sizes(config, B, T)
    B, T, C, V, L, Wn = s["B"], s["T"], s["C"], s["V"], s["L"], s["W"]
    W, H = 6.6, 7.75
    fig, ax = _canvas(W, H)
    xm, xe, xp, xn = 3.55, 2.2, 4.9, 5.05
    ids = _box(ax, xe, H - 0.4, 1.5, 0.5, "ids", _shape(B, T), "tensor")
    last = f"{T}−1" if isinstance(T, str) else T - 1
    pos = _box(ax, xp, H - 0.4, 1.9, 0.5, "pos", f"0, 1, …, {last}", "tensor", mono=True)
    wte = _box(ax, xe, H - 1.4, 2.3, 0.68, "wte", f"token embedding\n{V} × {C}", "layer", mono=True)
    wpe = _box(
        ax, xp, H - 1.4, 2.3, 0.68, "wpe", f"position embedding\n{Wn} × {C}", "layer", mono=True
    )
    y_plus = H - 2.25
    _arrow(ax, ids.bottom, wte.top)
    _arrow(ax, pos.bottom, wpe.top)
    _arrow(ax, wte.bottom, (xe, y_plus), (xm - 0.14, y_plus))
    _arrow(ax, wpe.bottom, (xp, y_plus), (xm + 0.14, y_plus))
    _plus(ax, xm, y_plus)
    _code_note(ax, xe + 0.1, y_plus + 0.2, _shape(B, T, C), mono=False)
    _code_note(ax, xp + 0.1, y_plus + 0.2, _shape(T, C), mono=False)
    drop = _box(ax, xm, H - 2.95, 2.4, 0.5, "drop", "dropout", "op", mono=True)
    _arrow(ax, (xm, y_plus - 0.14), drop.top)
    blocks = _stack(ax, xm, H - 4.05, 2.4, 0.68, "h", f"{L} × Block\n{_shape(B, T, C)} in and out")
    _arrow(ax, drop.bottom, blocks.top)
    ln_f = _box(ax, xm, H - 5.1, 2.4, 0.5, "ln_f", "final LayerNorm", "layer", mono=True)
    _arrow(ax, blocks.bottom, ln_f.top)
    head = _box(
        ax, xm, H - 5.9, 2.4, 0.5, "lm_head", f"Linear {C} → {V}, no bias", "layer", mono=True
    )
    _arrow(ax, ln_f.bottom, head.top)
    logits = _box(ax, xm, H - 6.7, 1.9, 0.5, "logits", _shape(B, T, V), "output")
    _arrow(ax, head.bottom, logits.top)
    _code_note(ax, xn, logits.y, "one score per\nvocabulary token,\nat every position", mono=False)
    _code_note(ax, xn, blocks.y, "the decoder block,\nL times in a row", mono=False)
    if config is None or config.tie_weights:
        colour = PALETTE["layer"][1]
        _arrow(
            ax,
            wte.left,
            (0.45, wte.y),
            (0.45, head.y),
            head.left,
            colour=colour,
            dashed=True,
            head=False,
        )
        _code_note(ax, 0.6, H - 4.55, f"same matrix\n(tied), {V} × {C}", mono=False)
    _legend(ax, 0.22)
    return fig


# ---------------------------------------------------------------------------------------------
# Chapter 6: the training loop.


def _label(ax, x, y, text, ha="center"):
    """A small grey label on an arrow: "yes", "no"."""
    return _text(ax, x, y, text, NOTE, NOTE_INK, ha=ha)


def _chain(ax, x, ys, w, rows) -> list[_Box]:
    """Boxes (name, detail, kind, mono, height) at x and heights ``ys``, each arrowing to the
    next."""
    boxes = []
    for y, (name, detail, kind, mono, h) in zip(ys, rows):
        boxes.append(_box(ax, x, y, w, h, name, detail, kind, mono=mono))
        if len(boxes) > 1:
            _arrow(ax, boxes[-2].bottom, boxes[-1].top)
    return boxes


def _stop_branch(ax, x, check: _Box) -> None:
    """What a Ctrl-C does at a step boundary: save the run, then stop with the command to go on."""
    rows = [
        ("save_state", "→ last.safetensors", "output", True, 0.5),
        ("stop", "prints: tinygpt train\n--out OUT --resume", "output", False, 0.68),
    ]
    saved, _ = _chain(ax, x, [check.y, check.y - 0.85], 2.6, rows)
    _arrow(ax, check.right, saved.left)
    _label(ax, (check.right[0] + saved.left[0]) / 2, check.y + 0.13, "yes")


def _eval_branch(ax, x, ys, check: _Box, x_gap: float) -> _Box:
    """Every eval_interval steps: evaluate, keep the best weights, save the run. Returns the
    last box (``save_state``)."""
    rows = [
        ("evaluate", "train and val loss on fixed\nbatches, no gradients", "op", True, 0.68),
        ("val_loss improved?", "", "op", True, 0.4),
        ("save_best", "→ best.safetensors", "output", True, 0.5),
        ("save_state", "→ last.safetensors", "output", True, 0.5),
    ]
    evaluate, better, best, saved = _chain(ax, x, ys, 2.5, rows)
    y_in = evaluate.top[1] + 0.3
    _arrow(ax, check.right, (x_gap, check.y), (x_gap, y_in), (x, y_in), evaluate.top)
    _label(ax, x_gap + 0.22, check.y + 0.14, "yes")
    _label(ax, x + 0.18, (better.bottom[1] + best.top[1]) / 2, "yes", ha="left")
    x_no = x + 1.45
    _arrow(ax, better.right, (x_no, better.y), (x_no, saved.y), saved.right)
    _label(ax, x_no - 0.09, better.y + 0.14, "no")
    return saved


@_styled
def training_loop(config: TrainConfig | None = None) -> Figure:
    """One step of ``tinygpt.train`` (``_loop``), drawn as a cycle: at each step boundary a
    Ctrl-C (``StopRequest``) saves the run and stops; otherwise ``lr_at`` sets the learning
    rate, ``get_batch`` draws (x, y), ``train_step`` runs forward, loss, backward, gradient
    clipping and the AdamW step, and every ``eval_interval`` steps ``evaluate`` measures the
    losses, ``save_best`` keeps the best weights and ``save_state`` the whole run. The settings
    are names, or the numbers of ``config``."""
    every = "eval_interval" if config is None else config.eval_interval
    clip = "grad_clip" if config is None else config.grad_clip
    W, H = 7.2, 8.2
    fig, ax = _canvas(W, H)
    xm, xb, xg, xl = 2.4, 5.55, 4.05, 0.4
    y = [H - 0.4, H - 1.15, H - 1.9, H - 3.0, H - 3.7, H - 4.4, H - 5.1, H - 5.8, H - 6.65]
    rows = [
        ("stop requested?", "Ctrl-C or SIGTERM: StopRequest", "op", False),
        ("lr_at", "warmup, then cosine decay", "op", True),
        ("get_batch", "x, y: (B, T) token ids", "tensor", True),
        ("model(x, y)", "forward pass", "layer", True),
        ("loss", "cross-entropy, nats per token", "tensor", False),
        ("loss.backward()", "gradients of every weight", "op", True),
        ("clip_grad_norm_", f"total gradient norm ≤ {clip}", "op", True),
        ("optimizer.step()", "AdamW updates the weights", "layer", True),
        ("step % eval_interval == 0?", f"every {every} steps", "op", True),
    ]
    boxes = _chain(ax, xm, y, 2.8, [(*row, 0.5) for row in rows])
    _frame(ax, 0.75, y[7] - 0.32, xg - 0.14, y[3] + 0.62, "train_step")
    _label(ax, xm + 0.12, y[7] - 0.46, "step += 1", ha="left")
    _stop_branch(ax, xb, boxes[0])
    ys = [y[3] - 0.05, y[4] - 0.2, y[5] - 0.25, y[7] - 0.1]
    saved = _eval_branch(ax, xb, ys, boxes[8], xg)
    y_loop = y[8] - 0.6
    _arrow(ax, boxes[8].bottom, (xm, y_loop), (xl, y_loop), (xl, y[0]), boxes[0].left)
    _arrow(ax, saved.bottom, (xb, y_loop), (xm + 0.08, y_loop))
    _label(ax, xm - 0.2, y_loop - 0.2, "next step, until step = max_steps")
    _label(ax, xm + 0.12, y_loop + 0.2, "no", ha="left")
    labels = dict(tensor="data", layer="the model's weights", output="saved or printed")
    _legend(ax, 0.22, labels=labels)
    return fig


# ---------------------------------------------------------------------------------------------
# Chapter 7: the KV cache.

CACHED, NEW = "#9ecae1", "#fd8d3c"  # as in figures.draw_kv_schedule: read from the cache, computed


def _cells(ax, x0, y, n, cached, cell=0.19, h=0.26, depth=0):
    """A cache buffer drawn as ``n`` cells from x0: ``cached`` read from the cache, the next one
    written now, the rest empty; ``depth`` copies peek out behind it (one per layer)."""
    from matplotlib.patches import Rectangle

    for d in range(depth, -1, -1):
        for j in range(n):
            face = "white" if d else CACHED if j < cached else NEW if j == cached else "white"
            xy = (x0 + j * cell + 0.07 * d, y - h / 2 + 0.07 * d)
            ax.add_patch(Rectangle(xy, cell, h, facecolor=face, edgecolor="0.45", lw=0.8, zorder=2))
    return _Box(x0 + n * cell / 2, y, n * cell, h)


def _cache_drawing(s: dict, t) -> tuple[int, int]:
    """How many cells a max_len buffer is drawn with, and how many of them are cached: every
    position when max_len is small, else an illustration (the labels give the numbers)."""
    if isinstance(s["W"], str):
        return 12, 6
    if isinstance(t, str) or not 0 <= t < s["W"]:
        raise ValueError(f"t must be an integer in [0, block_size) = [0, {s['W']}), got {t!r}")
    if s["W"] <= 16:
        return s["W"], t
    return 16, min(14, max(1, round(t * 16 / s["W"])))


def _cache_buffer(ax, x0, y, n, cached, cell, name: str, source: _Box) -> tuple[float, float]:
    """Layer ℓ's keys or values in the cache, the new k or v arrowing into its slot, and a
    bracket under the t+1 positions that attention reads. Returns the bracket's middle."""
    _cells(ax, x0, y, n, cached, cell, depth=2)
    _text(ax, x0 - 0.05, y + 0.33, f"{name}[ℓ]", TEXT, ha="left", weight="bold")
    _arrow(ax, source.bottom, (x0 + (cached + 0.5) * cell, y + 0.13), zorder=3)
    right, yb = x0 + (cached + 1) * cell, y - 0.22
    ax.plot([x0, x0, right, right], [yb + 0.06, yb, yb, yb + 0.06], color=ARROW, lw=1.2)
    return (x0 + right) / 2, yb


def _new_token(ax, s: dict, t, xk: float, xv: float, H: float) -> tuple[_Box, _Box, _Box]:
    """The top of ``kv_cache_diagram``: the new token through ``c_attn`` to its own q, k, v,
    with k and v above their slots in the cache (at xk, xv, kept on the canvas)."""
    B, nh, nkv, hs = s["B"], s["nh"], s["nkv"], s["hs"]
    where = f"{_shape(B, 1, s['C'])}, position {t}"
    new = _box(ax, 3.5, H - 0.4, 2.6, 0.5, "x: the new token", where, "tensor")
    fused = _box(ax, 3.5, H - 1.2, 2.6, 0.5, "c_attn", "its own q, k, v only", "layer", mono=True)
    _arrow(ax, new.bottom, fused.top)
    y = H - 2.05
    q = _box(ax, 0.95, y, 1.5, 0.5, "q", _shape(B, nh, 1, hs), "tensor")
    k = _box(ax, min(max(xk, 2.45), 4.0), y, 1.5, 0.5, "k", _shape(B, nkv, 1, hs), "tensor")
    v = _box(ax, min(max(xv, 4.9), 6.15), y, 1.5, 0.5, "v", _shape(B, nkv, 1, hs), "tensor")
    for box in (q, k, v):
        _arrow(ax, (3.5, fused.bottom[1]), box.top)
    return q, k, v


def _one_row_of_scores(ax, s: dict, t, cached: int, y4, y5, q: _Box) -> tuple[_Box, _Box]:
    """The bottom of ``kv_cache_diagram``: the new query against the t+1 cached keys (one row
    of scores, drawn), then the weighted mean of the cached values."""
    t1, t1p = ("t+1", "(t+1)") if isinstance(t, str) else (t + 1, t + 1)
    B, nh, hs = s["B"], s["nh"], s["hs"]
    row = f"one row: {_shape(B, nh, 1, t1)}"
    scores = _box(ax, 2.9, y4, 3.2, 0.85, "q · cached keys / √hs", row, "op", lift=0.14)
    mix = _box(ax, 2.9, y5, 3.2, 0.5, "softmax, @ cached values", f"a mean of {t1} values", "op")
    out = _box(ax, 2.9, y5 - 0.8, 1.8, 0.5, "out", _shape(B, nh, 1, hs), "output")
    _arrow(ax, q.bottom, (q.x, y4), scores.left)
    _arrow(ax, scores.bottom, mix.top)
    _arrow(ax, mix.bottom, out.top)
    cell = min(0.12, 1.0 / (cached + 1))
    _grid(ax, 1.5 + (cached + 1) * cell / 2, y4 - 0.24, [[1.0] * cached + [0.6]], cell=cell)
    _code_note(ax, 1.62 + (cached + 1) * cell, y4 - 0.24, f"1 × {t1p}, not T × T", mono=False)
    return scores, mix


@_styled
def kv_cache_diagram(
    config: GPTConfig | None = None,
    B: int | None = None,
    t: int | None = None,
    grouped: bool = True,
) -> Figure:
    """What ``KVCache`` holds and what one new token computes with it (Chapter 7).

    The cache keeps, for each of the L layers, keys and values of shape (B, nkv, max_len, hs),
    max_len = block_size, of which the first t positions are filled. The new token at position t
    computes only its own q (B, nh, 1, hs) and k, v (B, nkv, 1, hs); k and v are appended at
    position t, and its q is compared with all t + 1 cached keys: one row of scores, 1 × (t + 1),
    instead of the whole T × T grid. Sizes are symbols, or the numbers of ``config``, B and t.
    ``grouped=False`` draws it as Chapter 7 has it, before grouped-query attention: the cache
    holds nh heads, one per query head.
    """
    s = _sizes(config, B)
    if not grouped:
        if config is not None and config.kv_heads != config.n_head:
            raise ValueError("grouped=False draws multi-head attention: n_kv_head must be n_head")
        s["nkv"] = s["nh"]
    t = "t" if t is None else t
    n, cached = _cache_drawing(s, t)
    t1 = "t+1" if isinstance(t, str) else t + 1
    W, H = 7.0, 8.35
    fig, ax = _canvas(W, H)
    x0k, x0v, cell = 1.55, 4.6, 2.1 / n
    q, k, v = _new_token(ax, s, t, x0k + (cached + 0.5) * cell, x0v + (cached + 0.5) * cell, H)
    _frame(ax, 1.25, H - 4.3, W - 0.1, H - 2.55)
    header = f"KVCache {_shape(s['L'], s['B'], s['nkv'], 'max_len', s['hs'])}"
    _text(ax, (k.x + v.x) / 2, H - 2.7, header, NOTE, NOTE_INK, family="monospace")
    filled = f"filled: {_shape(s['B'], s['nkv'], t, s['hs'])} per layer ℓ"
    _code_note(ax, (k.x + v.x) / 2, H - 2.92, filled, mono=False, ha="center")
    holds = f"a row holds max_len = {s['W']}"
    _code_note(ax, (x0k + 2.1 + x0v) / 2, H - 4.12, holds, mono=False, ha="center")
    scores, mix = _one_row_of_scores(ax, s, t, cached, H - 5.4, H - 6.4, q)
    for x0, name, source in ((x0k, "keys", k), (x0v, "values", v)):
        xc, yb = _cache_buffer(ax, x0, H - 3.62, n, cached, cell, name, source)
        to = [(xc, scores.top[1])] if name == "keys" else [(xc, mix.y), mix.right]
        _arrow(ax, (xc, yb), *to)
        read = f"all {t1} {name}\n{_shape(s['B'], s['nkv'], t1, s['hs'])}"
        _code_note(ax, xc + 0.12, H - 4.62, read, mono=False)
    cached_label = f"cached: 0 … {t}−1" if isinstance(t, str) else f"cached: {t}"
    swatches = [(CACHED, "0.45", cached_label), (NEW, "0.45", f"appended now: {t}")]
    _swatches(ax, 0.58, swatches + [("white", "0.45", "empty")], rounded=False)
    _legend(ax, 0.22, ("tensor", "layer", "op", "output"))
    return fig


# ---------------------------------------------------------------------------------------------
# Chapter 8: sharing keys and values between heads.

SHARING = {"MHA": "multi-head", "GQA": "grouped-query", "MQA": "multi-query"}


def _tint(colour, amount=0.45):
    """``colour`` mixed with white: a fill light enough for black text on it."""
    from matplotlib.colors import to_rgb

    return tuple(1 - amount * (1 - c) for c in to_rgb(colour))


def _sharing_row(ax, y, n_head: int, n_kv_head: int, x0=1.85, pitch=0.47) -> None:
    """One row of ``head_sharing``: nh query heads (circles) over the nkv key/value heads
    (squares) they read, as ``CausalSelfAttention.expand_kv`` assigns them. Each connector's
    ``gid`` is ``"nkv={nkv}: q{h}-kv{g}"``, so that tests can read the drawing back."""
    import torch
    from matplotlib.patches import Circle, FancyBboxPatch

    from tinygpt.attention import KVCache

    owner = kv_head_of_query_heads(n_head, n_kv_head)
    kind = "MHA" if n_kv_head == n_head else "MQA" if n_kv_head == 1 else "GQA"
    yq, ykv, r, side = y + 0.42, y - 0.42, 0.19, 0.36
    for g in range(n_kv_head):
        members = [h for h in range(n_head) if owner[h] == g]
        xg, colour = x0 + pitch * sum(members) / len(members), _head_colour(g)
        for h in members:
            ax.plot([x0 + pitch * h, xg], [yq - r, ykv + side / 2], color=colour, lw=1.6,
                    zorder=1, gid=f"nkv={n_kv_head}: q{h}-kv{g}")  # fmt: skip
        ax.add_patch(
            FancyBboxPatch(
                (xg - 0.2, ykv - side / 2),
                0.4,
                side,
                boxstyle="round,pad=0,rounding_size=0.05",
                facecolor=_tint(colour),
                edgecolor=colour,
                lw=1.4,
                zorder=2,
            )
        )
        _text(ax, xg, ykv, f"kv{g}", NOTE)
    for h, g in enumerate(owner):
        colour = _head_colour(g)
        circle = Circle((x0 + pitch * h, yq), r, facecolor=_tint(colour), edgecolor=colour, lw=1.4)
        ax.add_patch(circle)
        _text(ax, x0 + pitch * h, yq, f"q{h}", NOTE)
    _text(ax, 0.2, y + 0.22, kind, NAME, ha="left", weight="bold")
    _text(ax, 0.2, y, SHARING[kind], TEXT, ha="left")
    _text(ax, 0.2, y - 0.22, f"nkv = {n_kv_head}", TEXT, ha="left")
    sizes = [KVCache(1, 1, n, 1, 1, dtype=torch.float32).nbytes for n in (n_kv_head, n_head)]
    xr = x0 + pitch * (n_head - 1) + 0.45
    _text(ax, xr, y + 0.11, "KV cache:", TEXT, NOTE_INK, ha="left")
    _text(ax, xr, y - 0.11, f"{100 * sizes[0] / sizes[1]:g} % of MHA's", TEXT, NOTE_INK, ha="left")


@_styled
def head_sharing(n_head: int = 8, kv_heads: Sequence[int] = (8, 2, 1)) -> Figure:
    """Multi-head (MHA), grouped-query (GQA) and multi-query (MQA) attention, one row each: the
    nh query heads (circles) and the nkv key/value heads (squares) each of them reads, coloured
    by key/value head, as ``CausalSelfAttention.expand_kv`` computes it; on the right, the size
    of the KV cache relative to MHA's, from ``KVCache``."""
    if not 1 <= n_head <= 10:
        raise ValueError(f"n_head must be between 1 and 10 to be drawn legibly, got {n_head}")
    row = 1.45
    W, H = 7.0, 0.55 + row * len(kv_heads)
    fig, ax = _canvas(W, H)
    _text(
        ax,
        1.85 + 0.235 * (n_head - 1),
        H - 0.25,
        f"nh = {n_head} query heads (circles) read nkv key/value heads (squares)",
        TEXT,
        NOTE_INK,
    )
    for i, n_kv_head in enumerate(kv_heads):
        y = H - 0.5 - row * (i + 0.5)
        _sharing_row(ax, y, n_head, n_kv_head)
        if i:
            ax.plot([0.2, W - 0.2], [y + row / 2, y + row / 2], color="0.85", lw=1)
    return fig


# ---------------------------------------------------------------------------------------------
# Chapter 10: fine-tuning.


@_styled
def classifier_head(
    config: GPTConfig | None = None, B: int | None = None, T: int | None = None, K: int = 2
) -> Figure:
    """``finetune.Classifier``: the pretrained body unchanged, its LM head (C → V, dashed: gone)
    replaced by a new head (C → K) whose scores are read at each row's last real token. Rows are
    padded on the right, and causal attention keeps the padding from reaching that token."""
    s = _sizes(config, B, T)
    B, T, C, V, L = s["B"], s["T"], s["C"], s["V"], s["L"]
    W, H = 6.6, 7.0
    fig, ax = _canvas(W, H)
    xm, xn = 2.15, 3.75
    ids = _box(ax, xm, H - 0.4, 2.6, 0.5, "ids", f"{_shape(B, T)}, right-padded", "tensor")
    _code_note(ax, xn, ids.y, "real tokens, then padding\nup to the longest row", mono=False)
    body = _stack(ax, xm, H - 1.45, 2.6, 0.68, "gpt body", f"wte, {L} × Block, ln_f\npretrained")
    _arrow(ax, ids.bottom, body.top)
    _code_note(ax, xn, body.y, "frozen (head only, LoRA)\nor trained (full)", mono=False)
    hidden = _box(ax, xm, H - 2.5, 2.6, 0.5, "hidden", _shape(B, T, C), "tensor")
    _arrow(ax, body.bottom, hidden.top)
    old = _box(ax, xn + 1.2, H - 2.5, 2.2, 0.5, "lm_head", f"Linear {C} → {V}", "layer", True, True)
    _arrow(ax, hidden.right, old.left, dashed=True)
    _code_note(ax, old.x, H - 3.0, "pretraining's head:\nreplaced", mono=False, ha="center")
    head = _box(ax, xm, H - 3.45, 2.6, 0.5, "lm_head", f"new: Linear {C} → {K}", "layer", True)
    _arrow(ax, hidden.bottom, head.top)
    scores = _box(ax, xm, H - 4.35, 2.6, 0.5, "scores", _shape(B, T, K), "tensor")
    _arrow(ax, head.bottom, scores.top)
    pick = _box(ax, xm, H - 5.25, 2.6, 0.5, "[rows, lengths − 1]", "", "op", mono=True)
    _arrow(ax, scores.bottom, pick.top)
    _code_note(ax, xn, pick.y, "each row's last real token:\nthe only one that has read\nthe "
               "whole text", mono=False)  # fmt: skip
    out = _box(ax, xm, H - 6.1, 2.6, 0.5, "logits", f"{_shape(B, K)}: one score per class",
               "output")  # fmt: skip
    _arrow(ax, pick.bottom, out.top)
    _code_note(ax, xn, out.y, "cross-entropy\nwith the labels", mono=False)
    _legend(ax, 0.22, ("tensor", "layer", "op", "output"))
    return fig


@_styled
def lora_detour(in_features: int | str = "in", out_features: int | str = "out", r=8) -> Figure:
    """``LoRALinear``: the frozen layer's path (W, out × in) and beside it the trainable detour
    x → A (r × in) → B (out × r) → × alpha / r, added to the frozen output. B starts at zero, so
    the detour adds nothing until it has trained; merging folds (alpha / r) B A into W."""
    W, H = 6.6, 6.0
    fig, ax = _canvas(W, H)
    xl, xr = 1.7, 4.6
    x = _box(ax, 3.15, H - 0.4, 1.9, 0.5, "x", f"(…, {in_features})", "tensor")
    base = _box(ax, xl, H - 2.2, 2.5, 0.86, "base", f"W: {out_features} × {in_features}\nfrozen",
                "layer", mono=True, dashed=True)  # fmt: skip
    a = _box(ax, xr, H - 1.5, 2.5, 0.68, "lora_A", f"{r} × {in_features}\nKaiming-uniform",
             "layer", mono=True)  # fmt: skip
    b = _box(ax, xr, H - 2.75, 2.5, 0.68, "lora_B", f"{out_features} × {r}\nstarts at 0",
             "layer", mono=True)  # fmt: skip
    scale = _box(ax, xr, H - 3.75, 2.5, 0.5, "× alpha / r", "", "op", mono=True)
    _arrow(ax, x.bottom, (x.x, H - 1.0), (xl, H - 1.0), base.top)
    _arrow(ax, (x.x, H - 1.0), (xr, H - 1.0), a.top)
    _arrow(ax, a.bottom, b.top)
    _code_note(ax, xr + 0.1, (a.bottom[1] + b.top[1]) / 2, f"(…, {r})", mono=False)
    _arrow(ax, b.bottom, scale.top)
    y_plus = H - 4.55
    _arrow(ax, base.bottom, (xl, y_plus), (3.15 - 0.14, y_plus))
    _arrow(ax, scale.bottom, (xr, y_plus), (3.15 + 0.14, y_plus))
    _plus(ax, 3.15, y_plus)
    y = _box(ax, 3.15, H - 5.2, 1.9, 0.5, "y", f"(…, {out_features})", "output")
    _arrow(ax, (3.15, y_plus - 0.14), y.top)
    trainable = (
        f"{r} × ({in_features} + {out_features})"
        if isinstance(in_features, str) or isinstance(out_features, str)
        else f"{r * (in_features + out_features):,}"
    )
    _code_note(ax, 0.25, H - 3.4, f"trains: {trainable}\nnumbers, not the\n"
               f"{out_features} × {in_features} of W", mono=False)  # fmt: skip
    _legend(ax, 0.22, ("tensor", "layer", "op", "output"))
    return fig
