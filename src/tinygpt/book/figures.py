"""The book's figure style and the drawings its chapters reuse (attention maps, KV schedules,
RoPE pairs, key/value sharing). matplotlib is imported lazily."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

STYLE = Path(__file__).with_name("book.mplstyle")

# What a decoding step does with one position of the text (Chapter 7's KV schedule).
KV_NOT_YET, KV_CROPPED, KV_CACHED, KV_COMPUTED = 0, 1, 2, 3


def use_style() -> None:
    """Apply the book's matplotlib style, so every chapter's figures look alike."""
    import matplotlib.pyplot as plt

    plt.style.use(STYLE)


def draw_attention(ax, weights, labels: Sequence[str], title: str | None = None):
    """Draw one head's (T, T) attention weights as a heatmap with the tokens as tick labels.

    Rows are queries (the token doing the looking), columns keys (the token looked at). The
    colour scale is fixed to [0, 1] so that heatmaps can be compared with each other. Returns the
    image, for a colorbar.
    """
    T = len(labels)
    image = ax.imshow(weights.detach().cpu().numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(T), labels, rotation=90, fontfamily="monospace", fontsize=9)
    ax.set_yticks(range(T), labels, fontfamily="monospace", fontsize=9)
    ax.set_xlabel("key: token attended to")
    ax.set_ylabel("query: token looking")
    ax.grid(False)
    if title:
        ax.set_title(title)
    return image


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
            ax.text(j, -0.75, f"pair {i}", ha="center", va="center", fontsize=9, color="0.3")
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
        ax.scatter([h], [1.0], s=340, color=colours(g % 10), edgecolor="0.2", zorder=2)
        ax.text(h, 1.0, f"q{h}", ha="center", va="center", fontsize=9, zorder=3)
    for g, x in enumerate(kv_x):
        ax.scatter([x], [0.0], s=560, marker="s", color=colours(g % 10), edgecolor="0.2", zorder=2)
        ax.text(x, 0.0, f"kv{g}", ha="center", va="center", fontsize=9, zorder=3)
    ax.set_xlim(-0.7, n_head - 0.3)
    ax.set_ylim(-0.4, 1.4)
    ax.axis("off")
    if title:
        ax.set_title(title)
    return ax
