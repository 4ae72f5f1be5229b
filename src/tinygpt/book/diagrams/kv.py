"""Chapters 7 and 8: the KV cache, and heads sharing keys and values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tinygpt.book.diagrams.drawing import (
    ARROW,
    NAME,
    NOTE,
    NOTE_INK,
    TEXT,
    _arrow,
    _Box,
    _box,
    _canvas,
    _code_note,
    _frame,
    _grid,
    _head_colour,
    _legend,
    _shape,
    _sizes,
    _styled,
    _swatches,
    _text,
)
from tinygpt.book.figures import kv_head_of_query_heads

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from tinygpt.model import GPTConfig


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
