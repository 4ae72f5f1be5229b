"""Chapter 10: fine-tuning's classifier head and LoRA's detour."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tinygpt.book.diagrams.drawing import (
    _arrow,
    _box,
    _canvas,
    _code_note,
    _legend,
    _plus,
    _shape,
    _sizes,
    _stack,
    _styled,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from tinygpt.model import GPTConfig


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
