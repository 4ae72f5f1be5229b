"""Chapter 6: the training loop."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tinygpt.book.diagrams.drawing import (
    NOTE,
    NOTE_INK,
    _arrow,
    _Box,
    _box,
    _canvas,
    _frame,
    _legend,
    _styled,
    _text,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from tinygpt.train import TrainConfig


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


def _eval_branch(ax, x, ys, check: _Box, x_gap: float, y_loop: float, x_join: float) -> None:
    """Every eval_interval steps: evaluate, and keep the weights if validation improved; both
    ways lead back to the next step."""
    rows = [
        ("evaluate", "train and val loss on fixed\nbatches, no gradients", "op", True, 0.68),
        ("val_loss improved?", "", "op", True, 0.4),
        ("save_best", "keep these weights\n→ best.safetensors", "output", True, 0.68),
    ]
    evaluate, better, best = _chain(ax, x, ys, 2.5, rows)
    y_in = evaluate.top[1] + 0.3
    _arrow(ax, check.right, (x_gap, check.y), (x_gap, y_in), (x, y_in), evaluate.top)
    _label(ax, x_gap + 0.22, check.y + 0.14, "yes")
    _label(ax, x + 0.18, (better.bottom[1] + best.top[1]) / 2, "yes", ha="left")
    x_no = x + 1.45
    _arrow(ax, better.right, (x_no, better.y), (x_no, y_loop), (x, y_loop), head=False)
    _label(ax, x_no - 0.09, better.y + 0.14, "no")
    _arrow(ax, best.bottom, (x, y_loop), (x_join, y_loop))


@_styled
def training_loop(config: TrainConfig | None = None) -> Figure:
    """One step of ``tinygpt.train``, drawn as a cycle: ``lr_at`` sets the learning rate,
    ``get_batch`` draws (x, y), ``train_step`` runs forward, loss, backward, gradient clipping
    and the AdamW step, and every ``eval_interval`` steps ``evaluate`` measures the losses and
    ``save_best`` keeps the best weights. (What ``train`` adds for a long run, saving the whole
    run and stopping cleanly on Ctrl-C, is Appendix C's.) The settings are names, or the numbers
    of ``config``."""
    every = "eval_interval" if config is None else config.eval_interval
    clip = "grad_clip" if config is None else config.grad_clip
    W, H = 7.2, 7.45
    fig, ax = _canvas(W, H)
    xm, xb, xg, xl = 2.4, 5.55, 4.05, 0.4
    y = [H - 0.4, H - 1.15, H - 2.25, H - 2.95, H - 3.65, H - 4.35, H - 5.05, H - 5.9]
    rows = [
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
    _frame(ax, 0.75, y[6] - 0.32, xg - 0.14, y[2] + 0.62, "train_step")
    _label(ax, xm + 0.12, y[6] - 0.46, "step += 1", ha="left")
    y_loop = y[7] - 0.6
    ys = [y[2] - 0.05, y[3] - 0.2, y[4] - 0.3]
    _eval_branch(ax, xb, ys, boxes[7], xg, y_loop, xm + 0.08)
    _arrow(ax, boxes[7].bottom, (xm, y_loop), (xl, y_loop), (xl, y[0]), boxes[0].left)
    _label(ax, xm - 0.2, y_loop - 0.2, "next step, until step = max_steps")
    _label(ax, xm + 0.12, y_loop + 0.2, "no", ha="left")
    labels = dict(tensor="data", layer="the model's weights", output="saved")
    _legend(ax, 0.22, labels=labels)
    return fig
