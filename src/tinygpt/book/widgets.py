"""The chapters' interactive widgets: the attention explorer and the sampling playground.

ipywidgets, matplotlib and torch are imported lazily; in the static HTML book a widget shows the
state it was saved with.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from tinygpt.book.figures import draw_attention
from tinygpt.book.probes import attention_maps
from tinygpt.book.tokens import token_labels

# Sizes that keep every control usable from a 390 px phone to a desktop column: a short label of
# fixed width beside each control, a slider at most SLIDER_WIDTH wide (its track is then at least
# 120 px on a phone), and rows of controls that wrap instead of running off the screen.
LABEL_WIDTH = "6.5rem"
SLIDER_WIDTH = "23rem"
DPI = 100  # the explorer's heatmap is shown at the book's figure resolution (book.mplstyle)


def _controls_layout():
    """The style and layout of one labelled control, the layout of a wrapping row of them, and
    that of a control as wide as the column (less the widget's own margins)."""
    import ipywidgets as widgets

    style = {"description_width": LABEL_WIDTH}
    control = widgets.Layout(width=SLIDER_WIDTH, max_width="100%")
    row = widgets.Layout(flex_flow="row wrap", width="calc(100% - 6px)")
    wide = widgets.Layout(width="calc(100% - 6px)")
    return style, control, row, wide


def attention_explorer(model, encoding, prompts: Sequence[str], id_map=None):
    """A widget to browse a GPT's attention: choose a prompt (or type one), a layer and a head.

    ``model`` is a ``tinygpt.model.GPT`` or any model that ``attention_maps`` can read and that
    says its window (``config.block_size`` or ``block_size``), such as a ``RecordedAttention``
    (typed text it did not record gets a message instead of a map); ``encoding`` is the tiktoken
    encoding its prompts are cut with. If the model uses its own smaller vocabulary, ``id_map``
    is a tensor with ``id_map[encoding_id] == model_id``. Prompts are cut to the model's
    ``block_size`` tokens. The heatmap is a PNG inside an ``Image`` widget, so the saved
    notebook (and the static HTML book) shows the state it was saved with.
    """
    import io

    import ipywidgets as widgets
    import torch
    from matplotlib.figure import Figure

    config = getattr(model, "config", model)
    block_size = config.block_size
    style, control, row, wide = _controls_layout()
    # A dropdown shows one line: a line break shows as ↵, as in the heatmap's labels.
    choose = widgets.Dropdown(
        options=[(p.replace("\n", "↵ "), p) for p in prompts],
        description="Prompt:",
        style=style,
        layout=wide,
    )
    text = widgets.Textarea(  # a Textarea, not a Text: a prompt keeps its line breaks
        value=prompts[0],
        description="Or type:",
        continuous_update=False,
        rows=2,
        style=style,
        layout=wide,
    )
    status = widgets.HTML()  # HTML, not a Label: a long status wraps on a narrow screen
    image = widgets.Image(format="png")
    cache: dict = {}

    def maps_for(prompt: str):
        if prompt not in cache:
            ids = encoding.encode_ordinary(prompt)[:block_size]
            idx = torch.tensor([ids], dtype=torch.long)
            if id_map is not None:
                idx = id_map[idx]
            weights = attention_maps(model, idx) if ids else []
            cache[prompt] = (token_labels(encoding, ids), weights)
        return cache[prompt]

    first = maps_for(prompts[0])[1]  # the number of layers and heads
    layer = widgets.IntSlider(
        value=0, min=0, max=len(first) - 1, description="Layer:", style=style, layout=control
    )
    head = widgets.IntSlider(
        value=0, min=0, max=first[0].size(1) - 1, description="Head:", style=style, layout=control
    )

    def redraw(*_: object) -> None:
        try:
            labels, weights = maps_for(text.value)
        except LookupError as err:  # a RecordedAttention asked for text it did not record
            status.value = html.escape(str(err), quote=False)
            return
        if not labels:
            status.value = "Type some text."
            return
        T = len(labels)
        status.value = (
            f"{T} token{'s' if T > 1 else ''}; row t shows how token t spreads its "
            f"attention over tokens 0..t"
        )
        size = 2.0 + 0.32 * T
        fig = Figure(figsize=(size + 1.0, size), layout="constrained")  # no pyplot: no global state
        ax = fig.add_subplot()
        heatmap = draw_attention(
            ax,
            weights[layer.value][0, head.value],
            labels,
            title=f"layer {layer.value}, head {head.value}",
        )
        fig.colorbar(heatmap, ax=ax, label="attention weight", shrink=0.8)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=2 * DPI)  # sharp on a high-density screen
        image.value = buffer.getvalue()
        image.width = str(round((size + 1.0) * DPI))  # shown at DPI: 9-pt labels are 12.5 px

    def pick(change) -> None:
        text.value = change["new"]  # triggers redraw through text's observer

    choose.observe(pick, names="value")
    for control in (text, layer, head):
        control.observe(redraw, names="value")
    redraw()
    # Drawn at its own size (not stretched to the column), and shrunk only on a narrow screen.
    image.layout = widgets.Layout(max_width="100%", height="auto", align_self="flex-start")
    return widgets.VBox([choose, text, widgets.HBox([layer, head], layout=row), status, image])


def sampling_config_from_controls(
    temperature: float, top_k: int, top_p: float, repetition_penalty: float, seed: int
):
    """The playground's control values as a ``SamplingConfig``: top-k 0 and top-p 1 mean off."""
    from tinygpt.generate import SamplingConfig

    return SamplingConfig(
        temperature=float(temperature),
        top_k=int(top_k) if top_k > 0 else None,
        top_p=float(top_p) if top_p < 1.0 else None,
        repetition_penalty=float(repetition_penalty),
        seed=int(seed),
    )


def sampling_playground(
    generator,
    prompt: str = "Leaving this place is something",
    max_new_tokens: int = 60,
    temperature: float = 0.8,
    top_k: int = 50,
    top_p: float = 1.0,
    repetition_penalty: float = 1.0,
    seed: int = 0,
):
    """Controls for every sampling setting, a Generate button, and the text it produced.

    ``generator`` is a ``tinygpt.generate.TextGenerator``. The playground generates once when it
    is built, so the saved notebook (and the static HTML book) shows an example. The returned
    box has a ``controls`` dict (prompt, temperature, top_k, top_p, repetition_penalty, length,
    seed, button, config, output) for scripting it.
    """
    import ipywidgets as widgets

    style, control, row, wide = _controls_layout()

    def slider(kind, value, low, high, label, step=None):
        extra = {} if step is None else {"step": step}
        return kind(
            value=value, min=low, max=high, description=label, style=style, layout=control, **extra
        )

    controls = dict(
        prompt=widgets.Text(value=prompt, description="Prompt:", style=style, layout=wide),
        temperature=slider(widgets.FloatSlider, temperature, 0.0, 2.0, "Temperature", 0.05),
        top_k=slider(widgets.IntSlider, top_k, 0, 200, "Top-k"),
        top_p=slider(widgets.FloatSlider, top_p, 0.05, 1.0, "Top-p", 0.05),
        repetition_penalty=slider(
            widgets.FloatSlider, repetition_penalty, 1.0, 2.0, "Rep. penalty", 0.05
        ),
        length=slider(widgets.IntSlider, max_new_tokens, 1, 300, "New tokens"),
        seed=widgets.IntText(
            value=seed, description="Seed", style=style, layout=widgets.Layout(width="12rem")
        ),
        button=widgets.Button(description="Generate", button_style="primary"),
        config=widgets.HTML(),
        output=widgets.HTML(),
    )
    c = controls

    def generate(*_: object) -> None:
        config = sampling_config_from_controls(
            c["temperature"].value,
            c["top_k"].value,
            c["top_p"].value,
            c["repetition_penalty"].value,
            c["seed"].value,
        )
        text = generator(c["prompt"].value, c["length"].value, config)[0]
        continuation = text[len(c["prompt"].value) :]
        c["config"].value = f"<code>{html.escape(repr(config))}</code>"
        c["output"].value = (
            "<pre style='white-space:pre-wrap;font-size:0.9em;line-height:1.4'>"
            f"<b>{html.escape(c['prompt'].value)}</b>{html.escape(continuation)}</pre>"
        )

    c["button"].on_click(generate)
    generate()
    legend = widgets.HTML(
        "<small>Temperature 0 is greedy decoding. Top-k 0, top-p 1 and a repetition penalty "
        "of 1 switch that setting off.</small>"
    )
    box = widgets.VBox(
        [
            c["prompt"],
            widgets.HBox([c["temperature"], c["top_k"]], layout=row),
            widgets.HBox([c["top_p"], c["repetition_penalty"]], layout=row),
            widgets.HBox([c["length"], c["seed"], c["button"]], layout=row),
            legend,
            c["config"],
            c["output"],
        ]
    )
    box.controls = controls
    return box
