"""Training (Chapter 6): the loop, its schedule and evaluation.

``train(model_config, train_config)`` is the whole story in one function a reader can follow:
AdamW (``tinygpt.optim``), linear warmup then cosine decay, gradient clipping, periodic
evaluation on the validation split, the best weights kept, early stopping. What the run writes
and reads back to resume exactly (checkpoints, metrics) is ``tinygpt.runs``; the named
configurations are ``tinygpt.presets``.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from tinygpt import checkpoint as ckpt
from tinygpt import distributed, files
from tinygpt.averaging import WeightAverage
from tinygpt.config import GPT2_VOCAB_SIZE, TrainConfig
from tinygpt.data import get_batch, gpt2_token_splits, load_text, split_text
from tinygpt.interrupts import StopRequest
from tinygpt.model import GPT, GPTConfig
from tinygpt.optim import configure_optimizer
from tinygpt.runs import (
    Meter,
    RunState,
    open_run_folder,
    read_metrics,
    restore_state,
    save_best,
    save_state,
)
from tinygpt.vocab import RestrictedVocab


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
    dtype: str = "float32",  # [chA]
    seed: int = 0,
) -> float:
    """Mean loss on ``batches`` random windows, the same windows every call (fixed seed)."""
    was_training = model.training
    model.eval()  # no dropout while measuring
    generator = torch.Generator().manual_seed(seed)  # the same windows at every call
    T = model.config.block_size
    total = 0.0
    for _ in range(batches):
        starts = torch.randint(len(ids) - T, (batch_size,), generator=generator).tolist()
        x = torch.stack([ids[i : i + T] for i in starts]).to(device)
        y = torch.stack([ids_gpt2[i + 1 : i + 1 + T] for i in starts]).to(device)
        # [<chA] logits, _ = model(x)
        with autocast(device, dtype):  # [chA]
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
        result.metrics = read_metrics(out / "metrics.jsonl", until_step=state.step, write=writes)
    if writes:
        open_run_folder(out, resume, model, config)
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
    meter = Meter(config.batch_size * model.config.block_size * ctx.world_size, state.step)
    bar = _progress_bar(config, state.step) if progress else None

    def log(record: dict) -> None:
        result.metrics.append(record)
        if out is not None:
            files.append_line(out / "metrics.jsonl", json.dumps(record))

    def save_last() -> None:
        if out is not None:
            elapsed = time.perf_counter() - started
            save_state(out / "last.safetensors", state, config, corpus.vocab, elapsed)

    def log_evaluation(losses: dict) -> None:
        log({"kind": "eval", "step": state.step, **losses,
             "elapsed_s": time.perf_counter() - started})  # fmt: skip

    def save_best_now(losses: dict) -> None:
        if out is not None:
            best = out / "best.safetensors"
            save_best(best, state.judged, config, corpus.vocab, state.step, losses)

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


