"""A run's bookkeeping (Appendix C): what ``train`` writes into its folder and reads back.

``last.safetensors`` holds everything a stopped run needs to go on exactly (``RunState``:
weights, optimiser, random generators, counters); ``best.safetensors`` the best weights alone;
``metrics.jsonl`` one JSON record per log line and evaluation; ``config.json`` the settings.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from tinygpt import checkpoint as ckpt
from tinygpt import files
from tinygpt.averaging import WeightAverage
from tinygpt.model import GPT, GPTConfig

if TYPE_CHECKING:
    from tinygpt.config import TrainConfig
    from tinygpt.vocab import RestrictedVocab


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


def save_state(
    path: Path, state: RunState, config: TrainConfig, vocab: RestrictedVocab | None, elapsed: float
) -> None:
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
        "vocab": vocab.state() if vocab else None,
    }
    weights, optimizer = state.model.weights(), state.optimizer.state_dict()
    checkpoint = ckpt.Checkpoint(asdict(state.model.config), weights, meta, optimizer, rng)
    if state.average is not None:  # [ch9] the average goes on exactly after a resume
        meta["average_updates"] = state.average.updates
        checkpoint.average_state = state.average.state()
    ckpt.save(path, checkpoint)


def save_best(
    path: Path,
    model: GPT,
    config: TrainConfig,
    vocab: RestrictedVocab | None,
    step: int,
    losses: dict,
) -> None:
    """The weights alone (what sampling needs), with the step and validation loss they reached."""
    meta = {"step": step, "val_loss": losses["val_loss"], "train_config": asdict(config)}
    meta["vocab"] = vocab.state() if vocab else None
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


RUN_FILES = ("config.json", "metrics.jsonl", "last.safetensors", "best.safetensors", "loss.png")


def open_run_folder(out: Path, resume: bool, model: GPT, config: TrainConfig) -> None:
    out.mkdir(parents=True, exist_ok=True)
    files.remove_stale_temporaries(out)  # left by a save that was killed
    if not resume:  # a new run here: no file of an earlier one may be mistaken for its own
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
        files.write_text(out / "metrics.jsonl", "")
    settings = {"model": asdict(model.config), "train": asdict(config)}
    files.write_text(out / "config.json", json.dumps(settings, indent=2) + "\n")


class Meter:
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


def read_metrics(path: str | Path, until_step: int | None = None, write: bool = True) -> list[dict]:
    """The records of a metrics.jsonl file; with ``until_step``, only those up to that step (a
    resumed run's checkpoint), and with ``write`` the file is cut back to them too."""
    path = Path(path)
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
