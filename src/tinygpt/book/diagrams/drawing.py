"""The diagrams' shared style and drawing helpers: one meaning per colour, boxes, arrows,
frames and grids, in inches (the axes span the whole figure, one data unit per inch)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tinygpt.book.figures import STYLE

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from tinygpt.model import GPTConfig

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


def _stack(ax, x, y, w, h, name, detail, depth=2) -> _Box:
    """A box with ``depth`` copies peeking out behind it: a stack of identical layers."""
    for i in range(depth, 0, -1):
        _box(ax, x + 0.08 * i, y + 0.08 * i, w, h, "", kind="layer")
    _box(ax, x, y, w, h, name, detail, "layer", mono=True)
    return _Box(x, y + 0.04 * depth, w, h + 0.08 * depth)  # the top is the last copy's


def _code_note(ax, x, y, text, mono=True, ha="left"):
    """A grey side note, left-aligned at x: code in monospace, or words."""
    family = "monospace" if mono else "sans-serif"
    return _text(ax, x, y, text, NOTE, NOTE_INK, ha=ha, family=family)
