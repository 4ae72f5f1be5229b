"""The conceptual diagrams of the chapters: how data flows through attention, a block, the whole
model, the training loop and the KV cache, drawn with matplotlib in one style.

Every diagram is a function that returns a ``matplotlib.figure.Figure``. Shapes are written in
the book's notation (B, T, C, nh, nkv, hs, V, L) unless a ``GPTConfig`` (and B, T) is passed, in
which case they are that model's numbers. One colour means one thing everywhere: blue for
tensors (data), orange for learned layers and their parameters, grey for fixed operations,
green for outputs. Coordinates are in inches, so the fonts keep their size at the page's width.
matplotlib and torch are imported lazily.
"""

from tinygpt.book.diagrams.attention import attention_head_flow, multi_head_flow
from tinygpt.book.diagrams.drawing import LEGEND, PALETTE
from tinygpt.book.diagrams.finetuning import classifier_head, lora_detour
from tinygpt.book.diagrams.kv import head_sharing, kv_cache_diagram
from tinygpt.book.diagrams.model import decoder_block, gpt_overview
from tinygpt.book.diagrams.training import training_loop

__all__ = [
    "LEGEND",
    "PALETTE",
    "attention_head_flow",
    "multi_head_flow",
    "decoder_block",
    "gpt_overview",
    "training_loop",
    "kv_cache_diagram",
    "head_sharing",
    "classifier_head",
    "lora_detour",
]
