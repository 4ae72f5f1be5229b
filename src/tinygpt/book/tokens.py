"""Text cut into tokens, drawn for the reader: coloured boxes, readable labels, a live box."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence

# Soft, distinguishable backgrounds for consecutive tokens (text stays black and readable).
TOKEN_COLOURS = ["#cfe8ff", "#ffd8b1", "#c8f0c8", "#f6c6d8", "#e2d4f7", "#fff1a8", "#c9f1ef"]


def tokens_html(pieces: Sequence[str], ids: Sequence[int] | None = None) -> str:
    """HTML for text cut into tokens: one coloured box per token, its id underneath.

    Spaces are drawn as ``␣`` and newlines as ``↵`` so that the boundaries stay visible.
    """
    boxes = []
    for i, piece in enumerate(pieces):
        shown = html.escape(piece).replace(" ", "␣").replace("\n", "↵")
        colour = TOKEN_COLOURS[i % len(TOKEN_COLOURS)]
        label = (
            ""
            if ids is None
            else (f"<span style='display:block;font-size:0.7em;color:#555'>{ids[i]}</span>")
        )
        boxes.append(
            f"<span style='display:inline-block;background:{colour};margin:1px;padding:1px 3px;"
            f"border-radius:3px;font-family:monospace;text-align:center;color:#000'>{shown}{label}"
            f"</span>"
        )
    return "<div style='line-height:2.2'>" + "".join(boxes) + "</div>"


def token_explorer(split: Callable[[str], tuple[list[str], list[int]]], text: str):
    """A text box; below it ``text`` as coloured tokens with ids, updated as the reader types.

    ``split(text)`` returns the token strings and their ids. In the static HTML book the widget
    shows the state it was saved with.
    """
    import ipywidgets as widgets

    box = widgets.Text(
        value=text, description="Text:", continuous_update=True, layout=widgets.Layout(width="95%")
    )
    view = widgets.HTML()
    count = widgets.Label()

    def refresh(*_: object) -> None:
        pieces, ids = split(box.value)
        view.value = tokens_html(pieces, ids)
        count.value = f"{len(box.value)} characters → {len(ids)} tokens"

    box.observe(refresh, names="value")
    refresh()
    return widgets.VBox([box, count, view])


def token_labels(encoding, ids: Sequence[int]) -> list[str]:
    """Each id's token as a short readable label: spaces drawn as ``␣``, newlines as ``↵``.

    ``encoding`` is a tiktoken encoding (anything with ``decode_single_token_bytes``). A token
    that is not valid UTF-8 on its own (part of a multi-byte character) shows as ``�``.
    """
    labels = []
    for i in ids:
        piece = encoding.decode_single_token_bytes(int(i)).decode("utf-8", errors="replace")
        labels.append(piece.replace(" ", "␣").replace("\n", "↵"))
    return labels
