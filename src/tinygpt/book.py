"""Helpers for the book's chapters only: show package source, one figure style, token pictures.

Nothing else in the package imports this module; it imports IPython, matplotlib and ipywidgets
lazily so the package itself does not depend on them.
"""

from __future__ import annotations

import html
import inspect
from collections.abc import Callable, Sequence
from pathlib import Path

STYLE = Path(__file__).with_name("book.mplstyle")

# Soft, distinguishable backgrounds for consecutive tokens (text stays black and readable).
TOKEN_COLOURS = ["#cfe8ff", "#ffd8b1", "#c8f0c8", "#f6c6d8", "#e2d4f7", "#fff1a8", "#c9f1ef"]


def use_style() -> None:
    """Apply the book's matplotlib style, so every chapter's figures look alike."""
    import matplotlib.pyplot as plt

    plt.style.use(STYLE)


def source_of(obj: object) -> str:
    """The source of a package function, class or method, exactly as it is in ``src/``."""
    return inspect.getsource(obj)


def show_source(obj: object) -> None:
    """Display an object's real source in a notebook, highlighted, with where it lives.

    Chapters show the package's code with this instead of copying it, so the book can never
    drift from the code it teaches.
    """
    from IPython.display import Markdown, display

    module = inspect.getmodule(obj)
    lines, start = inspect.getsourcelines(obj)
    where = f"{module.__name__}" if module else "?"
    header = f"`{where}.{getattr(obj, '__qualname__', '')}` (line {start})"
    display(Markdown(f"{header}\n\n```python\n{''.join(lines).rstrip()}\n```"))


def tokens_html(pieces: Sequence[str], ids: Sequence[int] | None = None) -> str:
    """HTML for text cut into tokens: one coloured box per token, its id underneath.

    Spaces are drawn as ``␣`` and newlines as ``↵`` so that the boundaries stay visible.
    """
    boxes = []
    for i, piece in enumerate(pieces):
        shown = html.escape(piece).replace(" ", "␣").replace("\n", "↵")
        colour = TOKEN_COLOURS[i % len(TOKEN_COLOURS)]
        label = "" if ids is None else (
            f"<span style='display:block;font-size:0.7em;color:#555'>{ids[i]}</span>")
        boxes.append(
            f"<span style='display:inline-block;background:{colour};margin:1px;padding:1px 3px;"
            f"border-radius:3px;font-family:monospace;text-align:center;color:#000'>{shown}{label}"
            f"</span>")
    return "<div style='line-height:2.2'>" + "".join(boxes) + "</div>"


def token_explorer(split: Callable[[str], tuple[list[str], list[int]]], text: str):
    """A text box; below it ``text`` as coloured tokens with ids, updated as the reader types.

    ``split(text)`` returns the token strings and their ids. In the static HTML book the widget
    shows the state it was saved with.
    """
    import ipywidgets as widgets

    box = widgets.Text(value=text, description="Text:", continuous_update=True,
                       layout=widgets.Layout(width="95%"))
    view = widgets.HTML()
    count = widgets.Label()

    def refresh(*_: object) -> None:
        pieces, ids = split(box.value)
        view.value = tokens_html(pieces, ids)
        count.value = f"{len(box.value)} characters → {len(ids)} tokens"

    box.observe(refresh, names="value")
    refresh()
    return widgets.VBox([box, count, view])
