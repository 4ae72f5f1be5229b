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
