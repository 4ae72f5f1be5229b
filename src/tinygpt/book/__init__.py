"""Helpers for the book's chapters only, split by concern.

| module | holds |
|---|---|
| ``source`` | ``show_source``: the package's code as it stands at a chapter |
| ``figures`` | the figure style (``use_style``) and drawings reused across chapters |
| ``diagrams`` | the conceptual diagrams (data flow, shapes, the loop, the cache) |
| ``numbers`` | rounding errors printed as the bound they are checked against |
| ``tokens`` | text cut into tokens, drawn |
| ``probes`` | reading what a model's layers compute (attention maps) |
| ``widgets`` | the attention explorer and the sampling playground |

Nothing else in the package imports this one; matplotlib, IPython and ipywidgets are imported
lazily so the package itself does not depend on them.
"""

from tinygpt.book.diagrams import (
    attention_head_flow,
    classifier_head,
    decoder_block,
    gpt_overview,
    head_sharing,
    kv_cache_diagram,
    lora_detour,
    multi_head_flow,
    training_loop,
)
from tinygpt.book.figures import (
    KV_CACHED,
    KV_COMPUTED,
    KV_CROPPED,
    KV_NOT_YET,
    STYLE,
    draw_attention,
    draw_kv_schedule,
    draw_kv_sharing,
    draw_rope_pairs,
    kv_head_of_query_heads,
    kv_schedule,
    rope_pairs,
    use_style,
)
from tinygpt.book.numbers import below, bound_text
from tinygpt.book.probes import (
    NotRecordedError,
    RecordedAttention,
    attention_maps,
    block_gradient_norms,
    rewire_blocks,
)
from tinygpt.book.source import show_source, source_of
from tinygpt.book.tokens import TOKEN_COLOURS, token_explorer, token_labels, tokens_html
from tinygpt.book.widgets import (
    attention_explorer,
    sampling_config_from_controls,
    sampling_playground,
)

__all__ = [
    "KV_CACHED",
    "KV_COMPUTED",
    "KV_CROPPED",
    "KV_NOT_YET",
    "NotRecordedError",
    "RecordedAttention",
    "STYLE",
    "TOKEN_COLOURS",
    "attention_explorer",
    "attention_head_flow",
    "classifier_head",
    "decoder_block",
    "gpt_overview",
    "head_sharing",
    "lora_detour",
    "kv_cache_diagram",
    "multi_head_flow",
    "training_loop",
    "attention_maps",
    "below",
    "bound_text",
    "block_gradient_norms",
    "draw_attention",
    "draw_kv_schedule",
    "draw_kv_sharing",
    "draw_rope_pairs",
    "kv_head_of_query_heads",
    "kv_schedule",
    "rewire_blocks",
    "rope_pairs",
    "sampling_config_from_controls",
    "sampling_playground",
    "show_source",
    "source_of",
    "token_explorer",
    "token_labels",
    "tokens_html",
    "use_style",
]
