"""Training (Chapter 6): the loop, its schedule, evaluation, checkpoints and resuming.

``train(model_config, train_config)`` is the whole story in one function a reader can follow:
AdamW (weight decay only on matrices), linear warmup then cosine decay, gradient clipping,
periodic evaluation on the validation split, the best checkpoint kept, early stopping, metrics
as JSON lines, and exact resumption from the last checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from tinygpt import checkpoint as ckpt
from tinygpt import distributed, files
from tinygpt.averaging import WeightAverage
from tinygpt.data import get_batch, gpt2_token_splits, load_text, split_text
from tinygpt.interrupts import StopRequest
from tinygpt.model import GPT, GPTConfig
from tinygpt.vocab import RestrictedVocab

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


def pick_device(requested: str = "auto") -> torch.device:
    """cuda > mps > cpu, unless a device is named; a named device must exist on this machine
    (a ValueError that says which devices do, rather than a failure deep inside PyTorch)."""
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if requested == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise ValueError(
            f"unknown device {requested!r}: use auto, cpu, cuda, cuda:N or mps"
        ) from None
    if device.type == "cuda" and not cuda:
        build = "is built without CUDA" if torch.version.cuda is None else "finds no CUDA GPU"
        raise ValueError(
            f"device {requested!r}: this PyTorch ({torch.__version__}) {build}; use --device cpu"
        )
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(
            f"device {requested!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
            f"numbered from 0"
        )
    if device.type == "mps" and not mps:
        raise ValueError(f"device {requested!r}: Apple's MPS is not available; use --device cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {requested!r} is not supported: use auto, cpu, cuda or mps")
    return device


def autocast(device: torch.device, dtype: str):
    """bf16 autocast where asked and supported; otherwise a no-op context."""
    if dtype == "bfloat16" and device.type in ("cpu", "cuda"):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def lr_at(progress: float, config: TrainConfig, step: int) -> float:
    """Linear warmup over ``warmup_steps``, then cosine from the peak down to ``min_lr``.

    ``progress`` is how far through the run we are, in [0, 1]: steps done over ``max_steps``,
    or the share of the time budget used, whichever is further.
    """
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    if config.lr_schedule == "constant":
        return config.learning_rate
    progress = min(max(progress, 0.0), 1.0)
    if config.lr_schedule == "wsd":  # [ch9] hold the peak, then fall linearly to min_lr
        share_left = min(1.0, (1.0 - progress) / config.cooldown)  # 1 until the cooldown
        return config.min_lr + share_left * (config.learning_rate - config.min_lr)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))  # 1 -> 0
    return config.min_lr + cosine * (config.learning_rate - config.min_lr)


def configure_optimizer(
    model: torch.nn.Module, config: TrainConfig, device: torch.device
) -> torch.optim.Optimizer:
    """AdamW with weight decay on matrices (≥ 2-D) only: biases and norm gains are not
    shrunk towards zero, which would only fight the normalisation they implement."""
    if config.optimizer == "muon":  # [ch9]
        return configure_muon(model, config, device)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        groups,
        lr=config.learning_rate,
        betas=(config.beta1, config.beta2),
        fused=device.type == "cuda",  # [chA]
    )


class MuonAdamW:
    """Chapter 9: Muon for the blocks' weight matrices, AdamW for everything else, as one
    optimizer (``step``, ``zero_grad``, ``param_groups`` and a torch-style ``state_dict``).

    Muon orthogonalises each matrix's momentum (``tinygpt.optim`` writes the iteration out):
    every direction of a matrix's update gets the same step. That suits the hidden matrices,
    not the embedding (a lookup table: each row sees only its own token's gradient) or the
    gains. ``match_rms_adamw`` scales Muon's step to the size of an AdamW step (Liu et al.,
    2025), so one learning rate and one schedule drive both halves.
    """

    def __init__(self, muon: torch.optim.Muon, adamw: torch.optim.AdamW) -> None:
        self.muon, self.adamw = muon, adamw

    @property
    def param_groups(self) -> list[dict]:
        """Both optimizers' groups (train_step sets each one's lr), read afresh each time:
        loading a state dict replaces an optimizer's group dicts."""
        return self.muon.param_groups + self.adamw.param_groups

    def step(self) -> None:
        self.muon.step()
        self.adamw.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.muon.zero_grad(set_to_none=set_to_none)
        self.adamw.zero_grad(set_to_none=set_to_none)

    def _muon_params(self) -> int:
        return sum(len(group["params"]) for group in self.muon.param_groups)

    def state_dict(self) -> dict:
        """One torch-style state dict: Muon's parameters are numbered first, then AdamW's."""
        muon, adamw, n = self.muon.state_dict(), self.adamw.state_dict(), self._muon_params()
        state = {**muon["state"], **{i + n: s for i, s in adamw["state"].items()}}
        groups = muon["param_groups"] + [
            {**g, "params": [i + n for i in g["params"]]} for g in adamw["param_groups"]
        ]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, saved: dict) -> None:
        n, split = self._muon_params(), len(self.muon.param_groups)
        self.muon.load_state_dict({
            "state": {i: s for i, s in saved["state"].items() if i < n},
            "param_groups": saved["param_groups"][:split],
        })  # fmt: skip
        self.adamw.load_state_dict({
            "state": {i - n: s for i, s in saved["state"].items() if i >= n},
            "param_groups": [
                {**g, "params": [i - n for i in g["params"]]} for g in saved["param_groups"][split:]
            ],
        })  # fmt: skip


def configure_muon(model: torch.nn.Module, config: TrainConfig, device: torch.device) -> MuonAdamW:
    """Muon on the blocks' 2-D weights (attention and MLP); AdamW on embeddings, gains, biases."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    hidden = [p for n, p in named if p.dim() == 2 and n.startswith("transformer.h.")]
    hidden_ids = {id(p) for p in hidden}
    rest = [p for n, p in named if id(p) not in hidden_ids]
    muon = torch.optim.Muon(
        hidden,
        lr=config.learning_rate,
        weight_decay=config.weight_decay,
        momentum=0.95,
        adjust_lr_fn="match_rms_adamw",
    )
    adamw = torch.optim.AdamW(
        [
            {"params": [p for p in rest if p.dim() >= 2], "weight_decay": config.weight_decay},
            {"params": [p for p in rest if p.dim() < 2], "weight_decay": 0.0},
        ],
        lr=config.learning_rate,
        betas=(config.beta1, config.beta2),
        fused=device.type == "cuda",  # [chA]
    )
    return MuonAdamW(muon, adamw)


@dataclass
class Corpus:
    """Token ids for training and validation, in the model's (maybe restricted) id space."""

    train: torch.Tensor  # model ids, for inputs and training targets
    val: torch.Tensor  # model ids, for inputs
    train_gpt2: torch.Tensor  # GPT-2 ids, for fair (full-vocabulary) losses
    val_gpt2: torch.Tensor
    vocab: RestrictedVocab | None
    val_chars: int  # characters of the validation text

    @property
    def vocab_size(self) -> int:
        return self.vocab.size if self.vocab else GPT2_VOCAB_SIZE


def prepare_corpus(restrict_vocab: bool, min_count: int = 1) -> Corpus:
    train, val = gpt2_token_splits()
    val_chars = len(split_text(load_text())[1])
    if not restrict_vocab:
        return Corpus(train, val, train, val, None, val_chars)
    if min_count > 1 and int(torch.bincount(train).max()) < min_count:
        raise ValueError(
            f"vocab_min_count={min_count}: no token occurs that often in the training text, so "
            f"the vocabulary would be empty; use a smaller --vocab-min-count"
        )
    vocab = RestrictedVocab.from_tokens(train, GPT2_VOCAB_SIZE, min_count)
    return Corpus(vocab.to_local(train), vocab.to_local(val), train, val, vocab, val_chars)


def nll(logits: torch.Tensor, targets_gpt2: torch.Tensor, vocab: RestrictedVocab | None):
    """Per-token loss in nats, always in the full GPT-2 token space (see tinygpt.vocab)."""
    if vocab is None:
        return torch.nn.functional.cross_entropy(
            logits.flatten(0, 1).float(), targets_gpt2.flatten(), reduction="none"
        ).view(targets_gpt2.shape)
    return vocab.nll(logits, targets_gpt2)


@torch.no_grad()
def estimate_loss(
    model: GPT,
    ids: torch.Tensor,
    ids_gpt2: torch.Tensor,
    vocab: RestrictedVocab | None,
    batches: int,
    batch_size: int,
    device: torch.device,
    dtype: str = "float32",
    seed: int = 0,
) -> float:
    """Mean loss on ``batches`` random windows, the same windows every call (fixed seed)."""
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    T = model.config.block_size
    total = 0.0
    for _ in range(batches):
        starts = torch.randint(len(ids) - T, (batch_size,), generator=generator).tolist()
        x = torch.stack([ids[i : i + T] for i in starts]).to(device)
        y = torch.stack([ids_gpt2[i + 1 : i + 1 + T] for i in starts]).to(device)
        with autocast(device, dtype):
            logits, _ = model(x)
        total += nll(logits, y, vocab).mean().item()
    model.train(was_training)
    return total / batches


@torch.no_grad()
def full_validation(
    model: GPT, corpus: Corpus, device: torch.device, dtype: str = "float32", batch_size: int = 64
) -> dict:
    """Loss over every validation token once, in windows of block_size (each token is
    predicted from the tokens before it in its window). Returns nats/token and nats/char."""
    was_training = model.training
    model.eval()
    T = model.config.block_size
    ids, ids_gpt2 = corpus.val, corpus.val_gpt2
    starts = list(range(0, len(ids) - 1, T))
    total, count = 0.0, 0
    for b in range(0, len(starts), batch_size):
        chunk = starts[b : b + batch_size]
        lengths = [min(T, len(ids) - 1 - s) for s in chunk]
        x = torch.zeros(len(chunk), T, dtype=torch.long)
        y = torch.full((len(chunk), T), -1, dtype=torch.long)
        for row, (s, n) in enumerate(zip(chunk, lengths)):
            x[row, :n] = ids[s : s + n]
            y[row, :n] = ids_gpt2[s + 1 : s + 1 + n]
        with autocast(device, dtype):
            logits, _ = model(x.to(device))
        y = y.to(device)
        valid = y >= 0
        losses = nll(logits[valid].unsqueeze(0), y[valid].unsqueeze(0), corpus.vocab)
        total += losses.sum().item()
        count += int(valid.sum())
    model.train(was_training)
    # Every validation token but the first is predicted once; its characters are what the
    # per-character loss divides by (Tiny Shakespeare is ASCII: a byte is a character).
    from tinygpt.tokenizer import gpt2_encoding

    first_chars = len(gpt2_encoding().decode_single_token_bytes(int(ids_gpt2[0])))
    chars = corpus.val_chars - first_chars
    return {
        "val_loss": total / count,
        "val_loss_per_char": total / chars,
        "val_tokens": count,
        "val_chars": chars,
    }


@dataclass
class TrainResult:
    """What a run produced: its metrics, where its files are, and the final numbers."""

    out_dir: Path
    metrics: list[dict] = field(default_factory=list)
    step: int = 0
    best_val_loss: float = math.inf
    stopped: str = ""  # why the run ended: "max_steps", "time", "early_stop", "interrupted"
    final: dict = field(default_factory=dict)
    is_main: bool = True  # False on the ranks > 0 of a torchrun launch (they write nothing)


def model_from_checkpoint(checkpoint: ckpt.Checkpoint) -> GPT:
    """Rebuild a GPT from a checkpoint's config and weights."""
    where = f"{checkpoint.path}: " if checkpoint.path else ""
    try:
        model = GPT(GPTConfig.from_dict(checkpoint.model_config))
        model.load_weights(checkpoint.model_state)
    except (ValueError, TypeError, RuntimeError) as err:  # a bad config, or mis-shaped weights
        lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
        detail = " ".join(lines[:2])[:300] if lines else type(err).__name__
        raise ckpt.CheckpointError(
            f"{where}checkpoint does not fit its own config: {detail}"
        ) from None
    if not all(torch.isfinite(t).all() for t in checkpoint.model_state.values()):
        raise ckpt.CheckpointError(
            f"{where}the weights hold NaN or infinite numbers (a run that diverged?)"
        )
    return model


def train_step(
    model: GPT,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    lr: float,
    config: TrainConfig,
    forward: torch.nn.Module | None = None,  # [chA]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One optimisation step on the batch ``(x, y)`` at learning rate ``lr``.

    Returns the loss and the gradient norm before clipping (None when clipping
    is off), which ``train`` logs.

    [chA] ``forward`` is the model as it is run (DDP-wrapped or compiled);
    ``model`` itself by default.
    """
    for group in optimizer.param_groups:
        group["lr"] = lr
    # [<chA] _, loss = model(x, y)
    with autocast(x.device, config.dtype):  # bf16 if asked [chA]
        _, loss = (model if forward is None else forward)(x, y, return_logits=False)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = None
    if config.grad_clip > 0:
        params = model.parameters()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
    optimizer.step()
    return loss, grad_norm


def evaluate(
    model: GPT, corpus: Corpus, config: TrainConfig, device: torch.device
) -> dict:
    """Validation and training loss, on the same ``eval_batches`` windows of
    each split every time (``estimate_loss`` draws them with a fixed seed)."""
    losses = {}
    for name, ids, ids_gpt2 in (
        ("val_loss", corpus.val, corpus.val_gpt2),
        ("train_loss", corpus.train, corpus.train_gpt2),
    ):
        batches, B = config.eval_batches, config.batch_size
        losses[name] = estimate_loss(
            model,
            ids,
            ids_gpt2,
            corpus.vocab,
            batches,
            B,
            device,
            config.dtype,  # [chA]
        )
    return losses


@dataclass
class RunState:
    """What a run must carry across a stop to continue exactly: ``last.safetensors``."""

    model: GPT
    optimizer: torch.optim.Optimizer
    data_rng: torch.Generator  # which windows the next batches take
    step: int = 0
    best_val_loss: float = math.inf
    patience_left: int = 0  # evaluations without improvement still allowed
    elapsed_s: float = 0.0  # wall-clock time spent before this process (a budget goes on)
    average: WeightAverage | None = None  # [ch9] the weights' moving average, if the run keeps one

    @property
    def judged(self) -> GPT:
        """The weights that are evaluated and kept as the best: the average, if there is one."""
        return self.model if self.average is None else self.average.model


def save_state(path: Path, state: RunState, config: TrainConfig, corpus: Corpus, elapsed: float):
    """Write ``state`` atomically: weights, optimizer, every random generator, step, counters."""
    rng = {"torch": torch.get_rng_state(), "data": state.data_rng.get_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    meta = {
        "step": state.step,
        "elapsed_s": elapsed,
        "best_val_loss": state.best_val_loss,
        "patience_left": state.patience_left,
        "train_config": asdict(config),
        "vocab": corpus.vocab.state() if corpus.vocab else None,
    }
    weights, optimizer = state.model.weights(), state.optimizer.state_dict()
    checkpoint = ckpt.Checkpoint(asdict(state.model.config), weights, meta, optimizer, rng)
    if state.average is not None:  # [ch9] the average goes on exactly after a resume
        meta["average_updates"] = state.average.updates
        checkpoint.average_state = state.average.state()
    ckpt.save(path, checkpoint)


def save_best(path: Path, model: GPT, config: TrainConfig, corpus: Corpus, step: int, losses: dict):
    """The weights alone (what sampling needs), with the step and validation loss they reached."""
    vocab = corpus.vocab.state() if corpus.vocab else None
    meta = {"step": step, "val_loss": losses["val_loss"], "train_config": asdict(config)}
    meta["vocab"] = vocab
    ckpt.save(path, ckpt.Checkpoint(asdict(model.config), model.weights(), meta))


def restore_state(path: Path, state: RunState) -> None:
    """Load ``path`` into ``state`` (in place), or say clearly why it cannot be resumed."""
    saved = ckpt.load(path)
    ours = asdict(state.model.config)
    if saved.model_config != ours:
        raise ckpt.CheckpointError(
            f"{path} was trained with a different model config: "
            + ", ".join(
                f"{k}={v} in the checkpoint, {ours.get(k)} now"
                for k, v in saved.model_config.items()
                if ours.get(k) != v
            )
        )
    if state.average is not None and saved.average_state is None:  # [ch9]
        raise ckpt.CheckpointError(
            f"{path} holds no weight average, and this run keeps one (ema_decay); resume "
            f"without --ema-decay, or start a new run"
        )
    try:
        state.model.load_state_dict(model_from_checkpoint(saved).state_dict())
        state.optimizer.load_state_dict(saved.optimizer_state)
        torch.set_rng_state(saved.rng["torch"])
        state.data_rng.set_state(saved.rng["data"])
        if "cuda" in saved.rng and torch.cuda.is_available():
            torch.cuda.set_rng_state(saved.rng["cuda"])
        state.step = int(saved.meta["step"])
        state.elapsed_s = float(saved.meta.get("elapsed_s", 0.0))
        state.best_val_loss = float(saved.meta["best_val_loss"])
        state.patience_left = int(saved.meta["patience_left"])
        if state.average is not None:  # [ch9]
            state.average.load(saved.average_state, int(saved.meta["average_updates"]))
    except (KeyError, ValueError, TypeError, AttributeError, RuntimeError) as err:
        raise ckpt.CheckpointError(
            f"{path} cannot be resumed: it lacks the optimizer, random generators or step of a "
            f"run ({type(err).__name__}: {str(err)[:200]})"
        ) from None


def build_model(
    model_config: GPTConfig, config: TrainConfig, corpus: Corpus, device: torch.device
) -> GPT:
    """A fresh GPT for ``corpus`` (its vocabulary sets ``vocab_size``), or a pretrained GPT-2
    when ``config.init_from`` says so (Appendix B)."""
    if config.init_from:  # fine-tuning: the pretrained model fixes the shape
        from tinygpt.pretrained import gpt2_for_finetuning

        model = gpt2_for_finetuning(config.init_from, model_config.block_size, model_config.dropout)
        if model.config.vocab_size != corpus.vocab_size:
            raise ValueError(
                f"{config.init_from} has a vocabulary of {model.config.vocab_size} tokens; "
                f"fine-tuning on GPT-2 tokens needs {corpus.vocab_size}"
            )
        torch.manual_seed(config.seed)  # the dropout masks
        return model.to(device)
    if model_config.vocab_size != corpus.vocab_size:
        # The vocabulary follows the data: all of GPT-2's, or the restricted one.
        model_config = GPTConfig(**{**asdict(model_config), "vocab_size": corpus.vocab_size})
    torch.manual_seed(config.seed)  # the initial weights, then the dropout masks
    return GPT(model_config).to(device)


RUN_FILES = ("config.json", "metrics.jsonl", "last.safetensors", "best.safetensors", "loss.png")


def _open_run_folder(out: Path, resume: bool, model: GPT, config: TrainConfig) -> None:
    out.mkdir(parents=True, exist_ok=True)
    files.remove_stale_temporaries(out)  # left by a save that was killed
    if not resume:  # a new run here: no file of an earlier one may be mistaken for its own
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
        files.write_text(out / "metrics.jsonl", "")
    settings = {"model": asdict(model.config), "train": asdict(config)}
    files.write_text(out / "config.json", json.dumps(settings, indent=2) + "\n")


def train(
    model_config: GPTConfig,
    config: TrainConfig,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    halt_at_step: int | None = None,
) -> TrainResult:
    """Train a GPT on Tiny Shakespeare. Writes into ``out_dir`` (if given):

    - ``last.safetensors``: everything needed to resume exactly (weights, optimizer, step,
      random-number generators, data position), written at every evaluation and on exit;
    - ``best.safetensors``: the weights with the lowest validation loss so far;
    - ``metrics.jsonl``: one JSON object per logged step and per evaluation.

    Evaluation runs every ``eval_interval`` steps, at the last step, and at the step where
    ``max_minutes`` ran out, so a time-bounded run is scored by its final weights too.
    With ``config.init_from`` the weights start from a pretrained GPT-2 (Appendix B).
    ``halt_at_step`` stops early as if interrupted (used to test exact resumption).
    A first Ctrl-C (or SIGTERM) ends the current step, saves ``last.safetensors`` and returns
    with ``stopped == "interrupted"``; a second raises ``KeyboardInterrupt`` at once, leaving
    the files as the last completed save wrote them (``tinygpt.interrupts``).

    Under ``torchrun --nproc_per_node=N`` this is data-parallel (``tinygpt.distributed``): each
    rank draws its own batches of ``batch_size``, DDP averages the gradients, and rank 0 alone
    writes files. Exact resumption is guaranteed for a single process; resumed ranks > 0 draw
    fresh (seeded) batches.
    """
    out = Path(out_dir) if out_dir is not None else None
    ctx, device = distributed.setup(pick_device(config.device))
    writes = out is not None and ctx.is_main  # only rank 0 touches the output folder
    corpus = prepare_corpus(config.restrict_vocab, config.vocab_min_count)
    T = model_config.block_size
    if T >= min(len(corpus.train), len(corpus.val)):
        raise ValueError(
            f"block_size={T} is longer than the validation text ({len(corpus.val)} tokens); "
            f"use a smaller --block-size"
        )
    model = build_model(model_config, config, corpus, device)
    state = RunState(
        model,
        configure_optimizer(model, config, device),
        # which windows each batch takes: a different stream on every rank
        torch.Generator().manual_seed(config.seed + 1 + ctx.rank),
        patience_left=config.patience,
        average=WeightAverage(model, config.ema_decay) if config.ema_decay else None,
    )
    result = TrainResult(out_dir=out, is_main=ctx.is_main)
    if resume:
        if out is None or not (out / "last.safetensors").is_file():
            raise ckpt.CheckpointError(f"nothing to resume: no last.safetensors in {out}")
        restore_state(out / "last.safetensors", state)
        if ctx.rank > 0:  # the checkpoint holds rank 0's data stream; the others reseed
            state.data_rng.manual_seed(config.seed + 1 + ctx.rank + 7919 * state.step)
        result.metrics = _read_metrics(out / "metrics.jsonl", until_step=state.step, write=writes)
    if writes:
        _open_run_folder(out, resume, model, config)
    result.best_val_loss = state.best_val_loss
    with StopRequest() as stop:  # Ctrl-C or SIGTERM from here on: stop at a step boundary
        try:
            _loop(state, config, corpus, device, ctx, out if writes else None, result, stop,
                  progress and ctx.is_main, halt_at_step)  # fmt: skip
        finally:  # a second Ctrl-C (KeyboardInterrupt) passes through: nothing more is written
            distributed.cleanup(ctx)
    result.step = state.step
    result.best_val_loss = state.best_val_loss
    return result


def _stop_reason(state, config, stop, ctx, elapsed: float, halt_at_step) -> str | None:
    """Why the run must stop before its next step, or None. Every rank gets the same answer."""
    if distributed.any_rank(stop.requested, ctx):
        return "interrupted"
    budget = config.max_minutes * 60.0
    if distributed.any_rank(bool(budget) and elapsed >= budget, ctx):
        return "time"
    if halt_at_step is not None and state.step >= halt_at_step:
        return "interrupted"
    return None


def _keep_best(state: RunState, losses: dict, config: TrainConfig, save) -> bool:
    """After an evaluation: ``save(losses)`` a new best model; False once patience runs out."""
    if losses["val_loss"] < state.best_val_loss:
        state.best_val_loss = losses["val_loss"]
        state.patience_left = config.patience
        save(losses)
    elif config.patience:
        state.patience_left -= 1
        return state.patience_left > 0
    return True


def _loop(state, config, corpus, device, ctx, out, result, stop, progress, halt_at_step):
    """The loop of ``train``: steps, logs, evaluations and saves, until a reason to stop."""
    model = state.model
    wrapped = distributed.wrap(model, ctx, device)  # DDP averages gradients across ranks
    forward = torch.compile(wrapped) if config.compile else wrapped
    budget = config.max_minutes * 60.0
    started = time.perf_counter() - state.elapsed_s
    meter = _Meter(config.batch_size * model.config.block_size * ctx.world_size, state.step)
    bar = _progress_bar(config, state.step) if progress else None

    def log(record: dict) -> None:
        result.metrics.append(record)
        if out is not None:
            files.append_line(out / "metrics.jsonl", json.dumps(record))

    def save_last() -> None:
        if out is not None:
            elapsed = time.perf_counter() - started
            save_state(out / "last.safetensors", state, config, corpus, elapsed)

    def log_evaluation(losses: dict) -> None:
        log({"kind": "eval", "step": state.step, **losses,
             "elapsed_s": time.perf_counter() - started})  # fmt: skip

    def save_best_now(losses: dict) -> None:
        if out is not None:
            save_best(out / "best.safetensors", state.judged, config, corpus, state.step, losses)

    result.stopped = "max_steps"
    model.train()
    try:
        while state.step < config.max_steps:
            # A step boundary: the only place a run stops, so its checkpoint is a state that an
            # uninterrupted run passes through too.
            elapsed = time.perf_counter() - started
            reason = _stop_reason(state, config, stop, ctx, elapsed, halt_at_step)
            if reason:
                result.stopped = reason
                break
            done = max(state.step / config.max_steps, elapsed / budget if budget else 0.0)
            lr = lr_at(done, config, state.step)
            x, y = get_batch(
                corpus.train, config.batch_size, model.config.block_size, state.data_rng, device
            )
            loss, grad_norm = train_step(model, state.optimizer, x, y, lr, config, forward)
            if state.average is not None:  # [ch9]
                state.average.update(model)
            state.step += 1
            last = state.step == config.max_steps
            if state.step % config.log_interval == 0 or last:
                log(meter.record(state.step, loss, lr, grad_norm, started))
                if bar is not None:
                    bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.1e}")
            if bar is not None:
                bar.update(1)
            if state.step % config.eval_interval == 0 or last:
                losses = evaluate(state.judged, corpus, config, device)
                log_evaluation(losses)
                if not _keep_best(state, losses, config, save_best_now):
                    result.stopped = "early_stop"
                    break
                save_last()
                meter.restart(state.step)  # evaluation time is not training throughput
        if result.stopped == "time" and state.step % config.eval_interval:
            # The budget ran out between evaluations: score the last steps too, or a
            # time-bounded run would be judged by weights up to eval_interval steps old.
            losses = evaluate(state.judged, corpus, config, device)
            log_evaluation(losses)
            _keep_best(state, losses, config, save_best_now)
        if result.stopped != "max_steps" or state.step % config.eval_interval:
            save_last()
    finally:
        if bar is not None:
            bar.close()


def _progress_bar(config: TrainConfig, step: int):
    from tqdm.auto import tqdm

    return tqdm(total=config.max_steps, initial=step, unit="step", dynamic_ncols=True)


class _Meter:
    """Throughput between log records: tokens per second of training, evaluations excluded."""

    def __init__(self, tokens_per_step: int, step: int) -> None:
        self.tokens_per_step = tokens_per_step
        self.restart(step)

    def restart(self, step: int) -> None:
        """Count from here: the steps and time since ``step``."""
        self.since, self.since_step = time.perf_counter(), step

    def record(self, step: int, loss, lr: float, grad_norm, started: float) -> dict:
        now = time.perf_counter()
        record = {
            "kind": "train",
            "step": step,
            "loss": loss.item(),
            "lr": lr,
            "tokens_per_s": (step - self.since_step) * self.tokens_per_step / (now - self.since),
            "elapsed_s": now - started,
        }
        if grad_norm is not None:
            record["grad_norm"] = float(grad_norm)
        self.since, self.since_step = now, step
        return record


def _read_metrics(path: Path, until_step: int | None = None, write: bool = True) -> list[dict]:
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line torn by a crash mid-write: not a record
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
    if until_step is None:
        return records
    kept = [r for r in records if r["step"] <= until_step]
    if write:  # drop what came after the checkpoint (and any torn line)
        files.write_text(path, "".join(json.dumps(r) + "\n" for r in kept))
    return kept


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a metrics.jsonl file."""
    return _read_metrics(Path(path))


def plot_losses(runs: dict[str, list[dict]], ax=None, title: str = "Loss", x: str = "step"):
    """Train (dashed) and validation (solid) loss, one colour per run, against ``x``:
    ``"step"`` or ``"minutes"`` (wall-clock, to compare runs given the same time budget)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    for i, (name, metrics) in enumerate(runs.items()):
        colour = f"C{i}"
        evals = [m for m in metrics if m["kind"] == "eval"]
        xs = [m["step"] if x == "step" else m["elapsed_s"] / 60 for m in evals]
        ax.plot(
            xs,
            [m["train_loss"] for m in evals],
            color=colour,
            linestyle="--",
            linewidth=1.2,
            label=f"{name}: train",
        )
        ax.plot(
            xs,
            [m["val_loss"] for m in evals],
            color=colour,
            linewidth=2.2,
            label=f"{name}: validation",
        )
    ax.set_xlabel("step" if x == "step" else "minutes of training")
    ax.set_ylabel("loss (nats per GPT-2 token)")
    ax.set_title(title)
    ax.legend()
    return ax
