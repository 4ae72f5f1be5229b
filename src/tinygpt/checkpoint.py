"""Checkpoints that lose nothing, written atomically, loaded without pickle.

One checkpoint is one safetensors file. Its tensors are the model's weights (``model.*``), the
optimizer's state (``optim.*``), the random-number generators' states (``rng.*``) and, for a run
that averages its weights, the average (``average.*``, Chapter 9); its
metadata holds the configs, the step and anything else as JSON. safetensors cannot run code on
load, unlike a pickled ``torch.save`` file.

Writing goes to a temporary file in the same folder, is flushed to disk, and replaces the old
file with ``os.replace`` (atomic on POSIX and Windows; see ``tinygpt.files``): a crash or a kill
during a save leaves the previous checkpoint as it was.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from tinygpt import files

FORMAT = "tinygpt-checkpoint"
VERSION = "1"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated, not ours, or does not fit. The message says which."""


@dataclass
class Checkpoint:
    """What a checkpoint file holds, in memory."""

    model_config: dict
    model_state: dict[str, torch.Tensor]
    meta: dict = field(default_factory=dict)  # train config, step, vocab, metrics ...
    optimizer_state: dict | None = None
    rng: dict[str, torch.Tensor] = field(default_factory=dict)
    average_state: dict[str, torch.Tensor] | None = None  # [ch9] tinygpt.averaging
    path: Path | None = None  # where it was loaded from, for error messages


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """torch.optim state dict -> tensors + JSON-able remainder (param_groups, scalar state)."""
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"optim.{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], rest: dict) -> dict:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = value
    for index, values in rest["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    return {"state": dict(sorted(state.items())), "param_groups": rest["param_groups"]}


def save(path: str | Path, checkpoint: Checkpoint) -> Path:
    """Write ``checkpoint`` to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {
        f"model.{k}": v.detach().cpu().contiguous() for k, v in checkpoint.model_state.items()
    }
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "model_config": json.dumps(checkpoint.model_config),
        "meta": json.dumps(checkpoint.meta),
    }
    if checkpoint.optimizer_state is not None:
        optim_tensors, rest = _flatten_optimizer(checkpoint.optimizer_state)
        tensors.update({k: v.detach().cpu().contiguous() for k, v in optim_tensors.items()})
        meta["optimizer"] = json.dumps(rest)
    tensors.update({f"rng.{k}": v.cpu() for k, v in checkpoint.rng.items()})
    for k, v in (checkpoint.average_state or {}).items():  # [ch9]
        tensors[f"average.{k}"] = v.detach().cpu().contiguous()

    with files.atomic_path(path) as tmp:  # written whole, then moved into place
        try:
            save_file(tensors, tmp, metadata=meta)
        except SafetensorError as err:  # an I/O error in safetensors' Rust writer
            code = re.search(r"os error (\d+)", str(err))
            if code is None:
                raise
            errno_ = int(code.group(1))
            raise OSError(errno_, os.strerror(errno_), str(path)) from None
    return path


def load(path: str | Path) -> Checkpoint:
    """Read a checkpoint; one clear ``CheckpointError`` for anything that is not a whole one."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(
            f"{path} is a folder; give the checkpoint file inside it "
            f"(e.g. {path / 'best.safetensors'})"
        )
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    if not path.is_file():
        raise CheckpointError(f"{path} is not a regular file, so not a checkpoint")
    if not os.access(path, os.R_OK):
        raise CheckpointError(f"cannot read {path}: permission denied; check its permissions")
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise CheckpointError(f"{path} is a safetensors file but not a tinygpt checkpoint")
            if meta.get("version") != VERSION:
                raise CheckpointError(
                    f"{path} is checkpoint format version "
                    f"{meta.get('version')}; this tinygpt reads {VERSION}"
                )
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
    except CheckpointError:
        raise
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as err:
        raise CheckpointError(
            f"{path} is not a readable tinygpt checkpoint (truncated, "
            f"corrupt or another kind of file): {err}"
        ) from None
    try:
        checkpoint = _from_tensors(tensors, meta)
        checkpoint.path = path
        return checkpoint
    except (KeyError, ValueError, TypeError, AttributeError) as err:  # a field missing or mangled
        raise CheckpointError(
            f"{path} is a tinygpt checkpoint with missing or damaged metadata "
            f"({type(err).__name__}: {err}); it cannot be used"
        ) from None


def _from_tensors(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> Checkpoint:
    model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    rng = {k[len("rng.") :]: v for k, v in tensors.items() if k.startswith("rng.")}
    optim = {k: v for k, v in tensors.items() if k.startswith("optim.")}
    average = {k[len("average.") :]: v for k, v in tensors.items() if k.startswith("average.")}
    optimizer_state = None
    if "optimizer" in meta:
        optimizer_state = _unflatten_optimizer(optim, json.loads(meta["optimizer"]))
    checkpoint = Checkpoint(
        model_config=json.loads(meta["model_config"]),
        model_state=model_state,
        meta=json.loads(meta["meta"]),
        optimizer_state=optimizer_state,
        rng=rng,
        average_state=average or None,
    )
    if not isinstance(checkpoint.model_config, dict) or not isinstance(checkpoint.meta, dict):
        raise ValueError("model_config and meta must be JSON objects")
    return checkpoint
