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
    choose = widgets.Dropdown(
        options=list(prompts), description="Prompt:", layout=widgets.Layout(width="95%")
    )
    text = widgets.Text(
        value=prompts[0],
        description="Or type:",
        continuous_update=False,
        layout=widgets.Layout(width="95%"),
    )
    status = widgets.Label()
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
    layer = widgets.IntSlider(value=0, min=0, max=len(first) - 1, description="Layer:")
    head = widgets.IntSlider(value=0, min=0, max=first[0].size(1) - 1, description="Head:")

    def redraw(*_: object) -> None:
        try:
            labels, weights = maps_for(text.value)
        except LookupError as err:  # a RecordedAttention asked for text it did not record
            status.value = str(err)
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
        fig.savefig(buffer, format="png", dpi=80)
        image.value = buffer.getvalue()

    def pick(change) -> None:
        text.value = change["new"]  # triggers redraw through text's observer

    choose.observe(pick, names="value")
    for control in (text, layer, head):
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([choose, text, widgets.HBox([layer, head]), status, image])


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

    style = {"description_width": "initial"}
    controls = dict(
        prompt=widgets.Text(
            value=prompt, description="Prompt:", style=style, layout=widgets.Layout(width="95%")
        ),
        temperature=widgets.FloatSlider(
            value=temperature,
            min=0.0,
            max=2.0,
            step=0.05,
            description="Temperature (0 = greedy):",
            style=style,
        ),
        top_k=widgets.IntSlider(
            value=top_k, min=0, max=200, description="Top-k (0 = off):", style=style
        ),
        top_p=widgets.FloatSlider(
            value=top_p,
            min=0.05,
            max=1.0,
            step=0.05,
            description="Top-p (1 = off):",
            style=style,
        ),
        repetition_penalty=widgets.FloatSlider(
            value=repetition_penalty,
            min=1.0,
            max=2.0,
            step=0.05,
            description="Repetition penalty (1 = off):",
            style=style,
        ),
        length=widgets.IntSlider(
            value=max_new_tokens, min=1, max=300, description="New tokens:", style=style
        ),
        seed=widgets.IntText(value=seed, description="Seed:", style=style),
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
    box = widgets.VBox(
        [
            c["prompt"],
            widgets.HBox([c["temperature"], c["top_k"]]),
            widgets.HBox([c["top_p"], c["repetition_penalty"]]),
            widgets.HBox([c["length"], c["seed"], c["button"]]),
            c["config"],
            c["output"],
        ]
    )
    box.controls = controls
    return box
