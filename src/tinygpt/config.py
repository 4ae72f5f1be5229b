"""How to train: ``TrainConfig``, every setting of a run (Chapter 6), each one a flag of
``tinygpt train``. The model's shape is ``tinygpt.model.GPTConfig``."""

from __future__ import annotations

import math
from dataclasses import dataclass

GPT2_VOCAB_SIZE = 50257


@dataclass
class TrainConfig:
    """How to train. Invalid values raise a ValueError that names the field."""

    batch_size: int = 32  # B
    max_steps: int = 2000
    learning_rate: float = 2e-3  # peak, reached after warmup
    min_lr: float = 1e-4  # where cosine decay ends
    warmup_steps: int = 50
    lr_schedule: str = "cosine"  # "cosine", "constant" or [ch9] "wsd" (warmup-stable-decay)
    cooldown: float = 0.4  # [ch9] wsd: the last share of the run, where lr falls to min_lr
    optimizer: str = "adamw"  # [ch9] "adamw", or "muon" for the blocks' matrices
    weight_decay: float = 0.1  # on matrices only (embeddings and Linear weights)
    ema_decay: float = 0.0  # [ch9] judge an average of the weights (0 = off; 0.99: ~100 steps)
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # max global gradient norm; 0 turns clipping off
    eval_interval: int = 50  # steps between validation estimates
    eval_batches: int = 10  # batches per validation estimate
    patience: int = 6  # stop after this many evaluations without improvement; 0 = never
    restrict_vocab: bool = True  # model only the GPT-2 tokens the training split uses
    vocab_min_count: int = 2  # tokens rarer than this in training join the unknown bucket
    seed: int = 1337
    device: str = "auto"  # "auto" picks cuda > mps > cpu
    dtype: str = "float32"  # "float32", or "bfloat16" (autocast) where the device supports it
    compile: bool = False  # torch.compile the model
    max_minutes: float = 0.0  # wall-clock budget; 0 = none. The LR schedule follows it too.
    log_interval: int = 10
    # Fine-tuning (Appendix B): "" trains from scratch; "gpt2", "gpt2-medium", "gpt2-large",
    # "gpt2-xl" or a folder starts from OpenAI's GPT-2 (tinygpt.pretrained). The shape is then
    # GPT-2's; only block_size (cropped) and dropout come from the model config.
    init_from: str = ""

    def __post_init__(self) -> None:
        positive = (
            "batch_size",
            "max_steps",
            "eval_interval",
            "eval_batches",
            "log_interval",
            "vocab_min_count",
        )
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("warmup_steps", "patience", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if not (self.learning_rate > 0.0 and math.isfinite(self.learning_rate)):
            raise ValueError(f"learning_rate must be a positive number, got {self.learning_rate}")
        for name in ("min_lr", "weight_decay", "grad_clip", "max_minutes"):
            if not getattr(self, name) >= 0.0 or not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a non-negative number, got {getattr(self, name)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.seed >= 2**63:
            raise ValueError(f"seed must be below 2**63, got {self.seed}")
        if self.min_lr > self.learning_rate:
            raise ValueError(
                f"min_lr ({self.min_lr}) must not exceed learning_rate ({self.learning_rate})"
            )
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.lr_schedule not in ("cosine", "constant", "wsd"):
            raise ValueError(
                f"lr_schedule must be 'cosine', 'constant' or 'wsd', got {self.lr_schedule!r}"
            )
        if not 0.0 < self.cooldown <= 1.0:
            raise ValueError(f"cooldown must be in (0, 1], got {self.cooldown}")
        if self.optimizer not in ("adamw", "muon"):
            raise ValueError(f"optimizer must be 'adamw' or 'muon', got {self.optimizer!r}")
        if self.dtype not in ("float32", "bfloat16"):
            raise ValueError(f"dtype must be 'float32' or 'bfloat16', got {self.dtype!r}")
        if self.device not in ("auto", "cpu", "cuda", "mps") and not self.device.startswith(
            "cuda:"
        ):
            raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")
        if self.init_from and self.restrict_vocab:
            raise ValueError(
                f"init_from={self.init_from!r} needs restrict_vocab=False: GPT-2's output layer "
                f"scores all {GPT2_VOCAB_SIZE} tokens"
            )
