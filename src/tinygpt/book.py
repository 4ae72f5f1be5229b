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


def attention_maps(model, idx):
    """Every layer's attention weights for the token ids ``idx`` (B, T) of a ``tinygpt`` GPT.

    Returns a list with one (B, nh, T, T) tensor per layer: row t of head h holds how much query
    t attends to each key. A forward pre-hook on each ``block.attn`` records the tensor that
    block's attention receives (the output of ``ln_1``); ``attn.attention_weights`` then turns
    it into weights, exactly as the forward pass does. The model runs in eval mode without
    gradients; its training mode is restored and the hooks removed afterwards, even on error.
    """
    import torch

    blocks = list(model.transformer.h)
    inputs: list = [None] * len(blocks)

    def recorder(i: int):
        def hook(module, args):
            inputs[i] = args[0]  # the (B, T, C) input of block i's attention

        return hook

    handles = [block.attn.register_forward_pre_hook(recorder(i)) for i, block in enumerate(blocks)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(idx)
            return [block.attn.attention_weights(x) for block, x in zip(blocks, inputs)]
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)


def draw_attention(ax, weights, labels: Sequence[str], title: str | None = None):
    """Draw one head's (T, T) attention weights as a heatmap with the tokens as tick labels.

    Rows are queries (the token doing the looking), columns keys (the token looked at). The
    colour scale is fixed to [0, 1] so that heatmaps can be compared with each other. Returns the
    image, for a colorbar.
    """
    T = len(labels)
    image = ax.imshow(weights.detach().cpu().numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(T), labels, rotation=90, fontfamily="monospace", fontsize=8)
    ax.set_yticks(range(T), labels, fontfamily="monospace", fontsize=8)
    ax.set_xlabel("key: token attended to")
    ax.set_ylabel("query: token looking")
    ax.grid(False)
    if title:
        ax.set_title(title)
    return image


def attention_explorer(model, encoding, prompts: Sequence[str], id_map=None):
    """A widget to browse a GPT's attention: choose a prompt (or type one), a layer and a head.

    ``model`` is a ``tinygpt.model.GPT``, ``encoding`` the tiktoken encoding its prompts are cut
    with. If the model uses its own smaller vocabulary, ``id_map`` is a tensor with
    ``id_map[encoding_id] == model_id``. Prompts are cut to the model's ``block_size`` tokens.
    The heatmap is a PNG inside an ``Image`` widget, so the saved notebook (and the static HTML
    book) shows the state it was saved with.
    """
    import io

    import ipywidgets as widgets
    import torch
    from matplotlib.figure import Figure

    n_layer, n_head = model.config.n_layer, model.config.n_head
    choose = widgets.Dropdown(
        options=list(prompts), description="Prompt:", layout=widgets.Layout(width="95%")
    )
    text = widgets.Text(
        value=prompts[0],
        description="Or type:",
        continuous_update=False,
        layout=widgets.Layout(width="95%"),
    )
    layer = widgets.IntSlider(value=0, min=0, max=n_layer - 1, description="Layer:")
    head = widgets.IntSlider(value=0, min=0, max=n_head - 1, description="Head:")
    status = widgets.Label()
    image = widgets.Image(format="png")
    cache: dict = {}

    def maps_for(prompt: str):
        if prompt not in cache:
            ids = encoding.encode_ordinary(prompt)[: model.config.block_size]
            idx = torch.tensor([ids], dtype=torch.long)
            if id_map is not None:
                idx = id_map[idx]
            weights = attention_maps(model, idx) if ids else []
            cache[prompt] = (token_labels(encoding, ids), weights)
        return cache[prompt]

    def redraw(*_: object) -> None:
        labels, weights = maps_for(text.value)
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


# Chapter 7: what a decoding step computes, and a playground for the sampling settings.

KV_NOT_YET, KV_CROPPED, KV_CACHED, KV_COMPUTED = 0, 1, 2, 3


def kv_schedule(prompt_len: int, new_tokens: int, window: int, use_cache: bool) -> list[list[int]]:
    """What each decoding step of ``tinygpt.generate`` does with each position of the text.

    One row per step (step s predicts token ``prompt_len + s``), one column per position that
    exists by the last step. Each entry is ``KV_NOT_YET`` (not written yet), ``KV_CROPPED``
    (outside the context window), ``KV_CACHED`` (its keys and values are read from the cache) or
    ``KV_COMPUTED`` (it goes through the model at this step). This mirrors
    ``tinygpt.generate.next_token_logits``: without a cache, every step recomputes the whole
    (cropped) context; with one, the first step fills it and each later step computes only the
    newest token, until the context outgrows the window and the cache is refilled at every step.
    """
    if prompt_len < 1 or new_tokens < 1 or window < 1:
        raise ValueError("prompt_len, new_tokens and window must be positive")
    width = prompt_len + new_tokens - 1
    rows = []
    for step in range(new_tokens):
        n = prompt_len + step  # tokens in the text when this step runs
        refill = not use_cache or step == 0 or n > window
        row = []
        for position in range(width):
            if position >= n:
                row.append(KV_NOT_YET)
            elif position < n - window:
                row.append(KV_CROPPED)
            elif refill or position == n - 1:
                row.append(KV_COMPUTED)
            else:
                row.append(KV_CACHED)
        rows.append(row)
    return rows


def draw_kv_schedule(ax, rows: Sequence[Sequence[int]], title: str | None = None, legend=True):
    """Draw a ``kv_schedule`` as a grid: decoding steps down, positions across."""
    import matplotlib.patches as mpatches
    from matplotlib.colors import ListedColormap

    colours = ["white", "#d9d9d9", "#9ecae1", "#fd8d3c"]
    names = [
        "not written yet",
        "cropped (outside the window)",
        "read from the cache",
        "computed at this step",
    ]
    steps, width = len(rows), len(rows[0])
    ax.imshow(rows, cmap=ListedColormap(colours), vmin=-0.5, vmax=3.5, aspect="auto")
    ax.set_xticks(range(width))
    ax.set_yticks(range(steps))
    ax.set_xticks([x - 0.5 for x in range(1, width)], minor=True)
    ax.set_yticks([y - 0.5 for y in range(1, steps)], minor=True)
    ax.grid(False)
    ax.grid(which="minor", color="0.6", linewidth=0.5)
    ax.tick_params(which="minor", length=0)
    ax.set_xlabel("position in the text")
    ax.set_ylabel("decoding step")
    if title:
        ax.set_title(title)
    if legend:
        handles = [
            mpatches.Patch(facecolor=c, edgecolor="0.6", label=n) for c, n in zip(colours, names)
        ]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return ax


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


# Chapter 8: which numbers RoPE rotates together, and which key/value head each query head reads.


def rope_pairs(head_size: int, layout: str = "half-split") -> list[tuple[int, int]]:
    """The (j, j') index pairs that RoPE rotates together, pair i first, read off the package.

    ``"half-split"`` is what ``tinygpt.rope.apply_rope`` does: pair i is i and the index where
    ``rotate_half`` moves the one-hot vector e_i. ``"interleaved"`` is the paper's layout: the two
    indices that ``interleaved_to_half_split`` moves into the half-split pair i.
    """
    import torch

    from tinygpt.rope import interleaved_to_half_split, rotate_half

    if layout not in ("half-split", "interleaved"):
        raise ValueError(f"layout must be 'half-split' or 'interleaved', got {layout!r}")
    eye = torch.eye(head_size)
    half = [(i, int(rotate_half(eye[i]).abs().argmax())) for i in range(head_size // 2)]
    if layout == "half-split":
        return half
    order = interleaved_to_half_split(torch.arange(head_size)).tolist()  # slot -> index
    return [(order[a], order[b]) for a, b in half]


def draw_rope_pairs(ax, head_size: int, layout: str = "half-split", title: str | None = None):
    """Draw the head's numbers x_0 .. x_{hs-1} as boxes coloured by the pair that rotates them,
    with an arc joining the two members of each pair (see ``rope_pairs``)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    pairs = rope_pairs(head_size, layout)
    colours = plt.get_cmap("tab10" if len(pairs) <= 10 else "tab20")
    for i, (a, b) in enumerate(pairs):
        for j in (a, b):
            ax.add_patch(Rectangle((j - 0.45, -0.45), 0.9, 0.9, color=colours(i), alpha=0.55))
            ax.text(j, 0, f"$x_{{{j}}}$", ha="center", va="center", fontsize=10)
            ax.text(j, -0.75, f"pair {i}", ha="center", va="center", fontsize=7, color="0.3")
        ax.annotate(
            "",
            xy=(b, 0.47),
            xytext=(a, 0.47),
            arrowprops=dict(
                arrowstyle="-",
                color=colours(i),
                linewidth=1.6,
                connectionstyle=f"arc3,rad={-0.9 if b - a == 1 else -0.25}",
            ),
        )
    ax.set_xlim(-0.6, head_size - 0.4)
    ax.set_ylim(-1.0, 1.2)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title)
    return ax


def kv_head_of_query_heads(n_head: int, n_kv_head: int) -> list[int]:
    """Which key/value head each of the nh query heads reads, computed by the package's own
    ``CausalSelfAttention.expand_kv`` on a tensor whose head h holds the number h."""
    import torch

    from tinygpt.attention import CausalSelfAttention

    attention = CausalSelfAttention(2 * n_head, n_head, n_kv_head=n_kv_head)
    labels = torch.arange(n_kv_head, dtype=torch.float32).view(1, n_kv_head, 1, 1)
    return attention.expand_kv(labels).flatten().long().tolist()


def draw_kv_sharing(ax, n_head: int, n_kv_head: int, title: str | None = None):
    """Draw nh query heads (circles, top) joined to the nkv key/value heads they read (squares,
    bottom), as ``kv_head_of_query_heads`` says."""
    import matplotlib.pyplot as plt

    owner = kv_head_of_query_heads(n_head, n_kv_head)
    colours = plt.get_cmap("tab10")
    kv_x = [
        sum(h for h in range(n_head) if owner[h] == g) / owner.count(g) for g in range(n_kv_head)
    ]
    for h, g in enumerate(owner):
        ax.plot([h, kv_x[g]], [1.0, 0.0], color=colours(g % 10), linewidth=1.2, zorder=1)
        ax.scatter([h], [1.0], s=230, color=colours(g % 10), edgecolor="0.2", zorder=2)
        ax.text(h, 1.0, f"q{h}", ha="center", va="center", fontsize=7, zorder=3)
    for g, x in enumerate(kv_x):
        ax.scatter([x], [0.0], s=420, marker="s", color=colours(g % 10), edgecolor="0.2", zorder=2)
        ax.text(x, 0.0, f"kv{g}", ha="center", va="center", fontsize=7, zorder=3)
    ax.set_xlim(-0.7, n_head - 0.3)
    ax.set_ylim(-0.4, 1.4)
    ax.axis("off")
    if title:
        ax.set_title(title)
    return ax
