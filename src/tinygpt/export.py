"""A trained GPT as an ONNX file, for running it outside PyTorch (the rendered book's live model).

The exported graph is one decoding step with a KV cache passed in and out as tensors::

    (idx (B, T), past_keys, past_values (L, B, nkv, P, hs)) -> (logits (B, T, V), keys, values)

where ``keys``/``values`` hold the P cached positions followed by the T new ones, ready to be
fed back. The first call passes an empty past (P = 0) and the prompt; every later call passes one
token, so each new token costs one position. Attention is the package's own (``eager``) path:
PyTorch's fused kernel decides on causality with a Python ``bool`` that an exported graph with a
symbolic length cannot hold.

``half_weights`` stores the large weight matrices in float16 (half the file) with a cast to
float32 in front of each: the arithmetic stays float32, only the weights are rounded.

    python -m tinygpt.export runs/speedrun/best.safetensors book/static/model.onnx
"""

from __future__ import annotations

import copy
import hashlib
import sys
from pathlib import Path

import torch
from torch import nn

from tinygpt.model import GPT

SOURCE_KEY = "tinygpt.source_sha256"  # metadata: which checkpoint the file was exported from
HALF_FROM = 1024  # weights with at least this many numbers are stored in float16 (not gains)


class TensorCache:
    """The KV cache as tensors: the past comes in, the past plus the new positions go out.

    It offers what ``CausalSelfAttention`` asks of ``tinygpt.attention.KVCache`` (``length`` and
    ``append``), but appends by concatenation, which an exported graph can express for any P."""

    def __init__(self, past_keys: torch.Tensor, past_values: torch.Tensor) -> None:
        self.past_keys, self.past_values = past_keys, past_values  # (L, B, nkv, P, hs)
        self.length = past_keys.size(-2)
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        k = torch.cat([self.past_keys[layer], k], dim=-2)  # (B, nkv, P + T, hs)
        v = torch.cat([self.past_values[layer], v], dim=-2)
        self.keys.append(k)
        self.values.append(v)
        return k, v


class CachedStep(nn.Module):
    """One decoding step of ``model`` with its cache as inputs and outputs (the exported graph)."""

    def __init__(self, model: GPT) -> None:
        super().__init__()
        self.model = model

    def forward(self, idx, past_keys, past_values):
        cache = TensorCache(past_keys, past_values)
        logits, _ = self.model(idx, cache=cache)  # (B, T, V)
        return logits, torch.stack(cache.keys), torch.stack(cache.values)  # (L, B, nkv, P+T, hs)


def empty_past(model: GPT, batch_size: int = 1) -> torch.Tensor:
    """A cache holding no position yet: (L, B, nkv, 0, hs)."""
    c = model.config
    return torch.zeros(c.n_layer, batch_size, c.kv_heads, 0, c.head_size)


def export_onnx(model: GPT, path: str | Path, half_weights: bool = True, source: str = "") -> int:
    """Write ``model`` as an ONNX decoding step to ``path``; return the file's size in bytes."""
    import onnx

    from tinygpt import files

    step = CachedStep(copy.deepcopy(model).float()).eval()
    for block in step.model.transformer.h:
        block.attn.implementation = "eager"
    c = model.config
    T = torch.export.Dim("T", max=c.block_size)
    P = torch.export.Dim("P", max=c.block_size)
    past = torch.zeros(c.n_layer, 1, c.kv_heads, 3, c.head_size)
    # two different tensors: the same one twice would be exported as a single input
    example = (torch.zeros(1, 4, dtype=torch.long), past, past.clone())
    program = torch.onnx.export(
        step, example, dynamo=True, verbose=False,
        input_names=["idx", "past_keys", "past_values"],
        output_names=["logits", "keys", "values"],
        dynamic_shapes={"idx": {1: T}, "past_keys": {3: P}, "past_values": {3: P}},
    )  # fmt: skip
    proto = program.model_proto
    if half_weights:
        store_weights_in_half(proto)
    if source:
        onnx.helper.set_model_props(proto, {SOURCE_KEY: source})
    with files.atomic_path(Path(path)) as tmp:
        onnx.save(proto, tmp)
    return Path(path).stat().st_size


def store_weights_in_half(proto) -> int:
    """Store every float32 weight of ``HALF_FROM`` or more numbers as float16, cast back to
    float32 where the graph reads it. Returns how many were converted."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph, casts = proto.graph, []
    for weight in list(graph.initializer):
        values = numpy_helper.to_array(weight)
        if values.dtype != np.float32 or values.size < HALF_FROM:
            continue
        half = numpy_helper.from_array(values.astype(np.float16), weight.name + ".fp16")
        graph.initializer.remove(weight)
        graph.initializer.append(half)
        casts.append(helper.make_node("Cast", [half.name], [weight.name], to=TensorProto.FLOAT))
    for cast in reversed(casts):
        graph.node.insert(0, cast)  # before every node that reads the weight
    return len(casts)


def half_rounded(model: GPT) -> GPT:
    """``model`` with the weights the half-weight file holds (float16-rounded, computed in
    float32): the PyTorch model that file must agree with."""
    rounded = copy.deepcopy(model).float().eval()
    with torch.no_grad():
        for p in rounded.parameters():
            if p.numel() >= HALF_FROM:
                p.copy_(p.half().float())
    return rounded


def main(argv: list[str] | None = None) -> int:
    from tinygpt import checkpoint as ckpt
    from tinygpt.runs import model_from_checkpoint

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m tinygpt.export CHECKPOINT OUT.onnx", file=sys.stderr)
        return 2
    source, out = Path(args[0]), Path(args[1])
    try:
        model = model_from_checkpoint(ckpt.load(source))
        sha = hashlib.sha256(source.read_bytes()).hexdigest()
        size = export_onnx(model, out, half_weights=True, source=sha)
    except (ckpt.CheckpointError, OSError) as err:
        print(f"tinygpt: error: {err}", file=sys.stderr)
        return 2
    print(f"{out}: {size / 1e6:.1f} MB, from {source.name} (sha256 {sha[:12]}…)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
