"""Chapter 5: the decoder block and the whole model."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tinygpt.book.diagrams.drawing import (
    ARROW,
    NOTE_INK,
    PALETTE,
    TEXT,
    _arrow,
    _box,
    _canvas,
    _code_note,
    _frame,
    _legend,
    _plus,
    _shape,
    _sizes,
    _stack,
    _styled,
    _text,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from tinygpt.model import GPTConfig


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
