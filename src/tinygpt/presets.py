"""Named starting configurations for ``tinygpt train --preset``: the original project's
(``seed``, Chapter 6), the book's recipe (``default``, Chapter 6), Llama's parts (``llama``,
Chapter 8) and the ten-minute record (``speedrun``, Chapter 9)."""

from __future__ import annotations

from dataclasses import fields

from tinygpt.config import TrainConfig
from tinygpt.model import GPTConfig

# Chapter 8's model: the default recipe's with Llama's parts (RoPE, GQA, RMSNorm, SwiGLU, no
# biases). Chapter 9's speedrun trains the same model.
LLAMA_MODEL = dict(
    block_size=128,
    n_layer=4,
    n_head=4,
    n_kv_head=2,
    n_embd=192,
    dropout=0.1,
    tie_weights=True,
    bias=False,
    pos_embedding="rope",
    norm="rmsnorm",
    mlp="swiglu",
)


# The original project's configuration, and the recipe this book arrives at in Chapter 6.
PRESETS: dict[str, tuple[dict, dict]] = {
    "seed": (
        dict(block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0, tie_weights=False),
        dict(
            batch_size=64,
            learning_rate=1e-3,
            min_lr=1e-3,
            warmup_steps=0,
            lr_schedule="constant",
            weight_decay=0.0,
            grad_clip=0.0,
            restrict_vocab=False,
            patience=0,
        ),
    ),
    "default": (
        dict(block_size=128, n_layer=4, n_head=4, n_embd=192, dropout=0.1, tie_weights=True),
        dict(batch_size=32),
    ),
    # Chapter 8: the default recipe with Llama's parts.
    "llama": (LLAMA_MODEL, dict(batch_size=32)),
    # Chapter 9: the ten-minute speedrun's record. Chapter 8's model with more dropout, trained
    # in bfloat16, evaluated every 200 steps, cooled down to zero by a warmup-stable-decay schedule
    # (round one), with a weight decay sixteen times the usual for data seen a dozen times (round
    # two: its timescale 1 / (lr * decay) is 312 steps, a third of a ten-minute run).
    "speedrun": (
        {**LLAMA_MODEL, "dropout": 0.2},
        dict(
            batch_size=32,
            dtype="bfloat16",
            lr_schedule="wsd",
            min_lr=0.0,
            eval_interval=200,
            weight_decay=1.6,
        ),
    ),
}


def preset(name: str, **overrides) -> tuple[GPTConfig, TrainConfig]:
    """The model and training configs of a named preset, with fields overridden by name."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    model_kwargs, train_kwargs = dict(PRESETS[name][0]), dict(PRESETS[name][1])
    model_fields = {f.name for f in fields(GPTConfig)}
    train_fields = {f.name for f in fields(TrainConfig)}
    for key, value in overrides.items():
        if key in model_fields:
            model_kwargs[key] = value
        elif key in train_fields:
            train_kwargs[key] = value
        else:
            raise ValueError(f"unknown config field {key!r}")
    return GPTConfig(**model_kwargs), TrainConfig(**train_kwargs)
