"""OpenAI's GPT-2 weights in our GPT (Appendix B).

OpenAI released GPT-2 in four sizes (Radford et al., 2019). Hugging Face hosts them as
``config.json`` + ``model.safetensors``: ``gpt2`` (124M parameters), ``gpt2-medium`` (355M),
``gpt2-large`` (774M) and ``gpt2-xl`` (1.5B). Our parameter names are Hugging Face's, so loading
is the conversion of Chapter 5 (``tinygpt.hf``) plus two chores: the hub's files name tensors
without the ``transformer.`` prefix (they were saved from the bare ``GPT2Model``) and hold the
causal mask (``attn.bias``) as if it were a weight; a folder written by ``save_pretrained`` has the
prefix. Both layouts load. Nothing is unpickled: safetensors files hold only tensors.

``load_gpt2("gpt2")`` downloads once into the Hugging Face cache and works offline afterwards;
``load_gpt2(folder)`` reads a local folder. ``gpt2_for_finetuning`` is what ``tinygpt train
--init-from`` uses: the same weights with a shorter window and dropout.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from pathlib import Path

import torch

from tinygpt.data import DataError
from tinygpt.hf import HF_BUFFERS, config_from_hf, from_hf_state_dict, to_hf_state_dict
from tinygpt.model import GPT, GPTConfig

# The four released sizes by hub name (layers and widths: Radford et al., 2019, Table 2; heads:
# the released hyperparameters). All share V = 50257, a 1024-token window and hs = 64.
GPT2_MODELS = {
    "gpt2": GPTConfig(n_layer=12, n_head=12, n_embd=768),  # 124M parameters
    "gpt2-medium": GPTConfig(n_layer=24, n_head=16, n_embd=1024),  # 355M
    "gpt2-large": GPTConfig(n_layer=36, n_head=20, n_embd=1280),  # 774M
    "gpt2-xl": GPTConfig(n_layer=48, n_head=25, n_embd=1600),  # 1558M
}
FILES = ("config.json", "model.safetensors")


def hub_cache_dir() -> Path:
    """Where the Hugging Face hub keeps downloads, read from the environment now:
    ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or Path("~") / ".cache" / "huggingface"
    return Path(home).expanduser() / "hub"


def _offline() -> bool:
    flags = (os.environ.get(v, "") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(f.upper() in ("1", "ON", "YES", "TRUE") for f in flags)


def gpt2_files(name_or_path: str | Path = "gpt2", cache_dir: str | Path | None = None):
    """(config.json, model.safetensors) of a local folder, or of a hub model (downloaded on first
    use, then read from the cache). Any failure is one DataError that says how to work offline."""
    folder = Path(name_or_path).expanduser()
    if folder.is_dir():
        paths = tuple(folder / name for name in FILES)
        absent = [p.name for p in paths if not p.is_file()]
        if absent:
            raise DataError(
                f"{folder} is not a GPT-2 folder: it has no {' and no '.join(absent)} (expected "
                f"{' + '.join(FILES)}, as GPT2LMHeadModel.save_pretrained writes them)"
            )
        return paths
    from huggingface_hub import hf_hub_download

    name = str(name_or_path)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else hub_cache_dir()
    hub_log = logging.getLogger("huggingface_hub")
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)  # its retry warnings would bury our one-line error
    try:
        return tuple(
            Path(hf_hub_download(name, f, cache_dir=cache, local_files_only=_offline()))
            for f in FILES
        )
    except Exception as err:  # no network, offline mode, unknown name, HTTP error ...
        reason = (str(err).strip() or "failed").splitlines()[0].split(". ")[0].rstrip(".")
        raise DataError(
            f"Could not get GPT-2 weights {name!r} ({' + '.join(FILES)}) from "
            f"https://huggingface.co/{name}: {type(err).__name__}: {reason}. To work offline, "
            f"download them once with network access into the Hugging Face cache (HF_HUB_CACHE, "
            f"or HF_HOME/hub; now {cache}), or pass a local folder holding {' + '.join(FILES)} "
            f"(there is no folder {folder})."
        ) from None
    finally:
        hub_log.setLevel(level)


def hf_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hub-style names ("h.0.attn.c_attn.weight", "wte.weight") get the ``transformer.``
    prefix that ``GPT2LMHeadModel`` uses; the causal-mask buffers are dropped."""
    return {
        name if name.startswith(("transformer.", "lm_head.")) else "transformer." + name: tensor
        for name, tensor in state.items()
        if not name.endswith(HF_BUFFERS)
    }


def _check_fits(state: dict[str, torch.Tensor], config: GPTConfig, where: Path) -> None:
    """Every tensor the config needs, with the right (Hugging Face, Conv1D) shape; no extras."""
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        expected = {n: tuple(t.shape) for n, t in to_hf_state_dict(GPT(config).weights()).items()}
    if config.tie_weights and "lm_head.weight" in state:  # a copy of wte: allowed, not used
        expected["lm_head.weight"] = expected["transformer.wte.weight"]
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{name} is {tuple(state[name].shape)}, expected {shape}"
        for name, shape in expected.items()
        if name in state and tuple(state[name].shape) != shape
    ]
    problems = []
    if wrong:
        problems.append(f"{len(wrong)} tensor(s) of the wrong shape: {'; '.join(wrong[:2])}")
    if missing:
        problems.append(f"{len(missing)} missing: {', '.join(missing[:3])}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected: {', '.join(unexpected[:3])}")
    if problems:
        raise DataError(
            f"{where} does not hold the GPT-2 its config.json describes (n_layer="
            f"{config.n_layer}, n_embd={config.n_embd}, vocab_size={config.vocab_size}): "
            + "; ".join(problems)
        )


def read_gpt2(
    name_or_path: str | Path = "gpt2", cache_dir: str | Path | None = None
) -> tuple[GPTConfig, dict[str, torch.Tensor]]:
    """Our GPTConfig and state dict (our layout: Linear matrices are (out, in)) for a GPT-2,
    checked name by name and shape by shape against its config."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from transformers import GPT2Config

    config_path, weights_path = gpt2_files(name_or_path, cache_dir)
    try:
        values = json.loads(config_path.read_text())
    except (OSError, ValueError) as err:  # json.JSONDecodeError is a ValueError
        raise DataError(f"{config_path} is not a readable config.json: {err}") from None
    kind = values.get("model_type", "gpt2")
    if kind != "gpt2":
        raise DataError(f"{config_path} describes a {kind!r} model, not GPT-2")
    try:
        config = config_from_hf(GPT2Config.from_dict(values))  # GPT-2's defaults fill the gaps
        state = hf_layout(load_file(weights_path))
    except ValueError as err:
        raise DataError(f"{config_path}: {err}") from None
    except (SafetensorError, OSError) as err:
        raise DataError(f"{weights_path} is not a readable safetensors file: {err}") from None
    _check_fits(state, config, weights_path.parent)
    return config, from_hf_state_dict(state)


def build(config: GPTConfig, state: dict[str, torch.Tensor], device=None) -> GPT:
    """A GPT of ``config`` holding ``state``, without first filling it with random numbers:
    built on the meta device (shapes only), then handed the loaded tensors themselves.

    ``state`` is emptied on the way, one tensor at a time, so that a transposed matrix's old
    copy is freed as soon as its new one exists: memory peaks near one copy of the weights."""
    with torch.device("meta"):
        model = GPT(config)
    weights = {}
    for name in list(state):
        weights[name] = state.pop(name).to(device=device, dtype=torch.float32).contiguous()
    if config.tie_weights:
        weights.pop("lm_head.weight", None)
        weights["lm_head.weight"] = weights["transformer.wte.weight"]
    model.load_state_dict(weights, assign=True)
    if config.tie_weights:  # assign replaced wte's Parameter; tie lm_head to the new one
        model.lm_head.weight = model.transformer.wte.weight
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f"tensors left without values: {left[:3]}")
    return model


def load_gpt2(
    name_or_path: str | Path = "gpt2", device=None, cache_dir: str | Path | None = None
) -> GPT:
    """OpenAI's GPT-2 as our GPT, in eval mode (on ``device``; None is the CPU).

    ``name_or_path``: a hub name (``gpt2``, ``gpt2-medium``, ``gpt2-large``, ``gpt2-xl``, or any
    GPT-2 repository) or a folder with config.json + model.safetensors. Offline, a hub name works
    if it is in the Hugging Face cache (``cache_dir``, else $HF_HUB_CACHE or $HF_HOME/hub).
    """
    config, state = read_gpt2(name_or_path, cache_dir)
    return build(config, state, device).eval()


def gpt2_for_finetuning(
    name_or_path: str | Path, block_size: int, dropout: float, cache_dir=None
) -> GPT:
    """A GPT-2 to train further: its weights, with the context window cropped to ``block_size``
    (the first rows of the position table: positions 0..block_size-1 mean what they meant) and
    ``dropout`` switched on. Shorter windows make each step cheaper on a CPU."""
    config, state = read_gpt2(name_or_path, cache_dir)
    if block_size > config.block_size:
        raise ValueError(
            f"block_size={block_size} is longer than {name_or_path}'s context window of "
            f"{config.block_size} tokens: its position table has no rows beyond that"
        )
    state["transformer.wpe.weight"] = state["transformer.wpe.weight"][:block_size].clone()
    return build(replace(config, block_size=block_size, dropout=dropout), state).train()
