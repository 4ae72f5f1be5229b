"""A trained GPT as an ONNX file, for running it outside PyTorch (the rendered book's live model).

The exported graph is one decoding step with a KV cache passed in and out as tensors::

    (idx (B, T), past_keys, past_values (L, B, nkv, P, hs))
        -> (logits (B, T, V), keys, values (L, B, nkv, P + T, hs), attention (L, B, nh, T, P + T))

where ``keys``/``values`` hold the P cached positions followed by the T new ones, ready to be
fed back, and ``attention`` holds every layer's attention weights (what the book's attention
explorer draws; a caller that asks only for the other outputs never reads them). The first
call passes an empty past (P = 0) and the prompt; every later call passes one token, so each new
token costs one position. Attention is the package's own (``eager``) path: the fast path hands
PyTorch's fused kernel ``is_causal=(T == T_k)``, a Python ``bool`` that an exported graph with a
symbolic length cannot hold.

``half_weights`` stores the large weight matrices in float16 (half the file) with a cast to
float32 in front of each: the arithmetic stays float32, only the weights are rounded.

    python -m tinygpt.export runs/speedrun/speedrun+wd1.6-10min-s0 book/live/model.onnx \\
        --label "Chapter 9's ten-minute record (seed 0, 4.495 nats/token)"

also writes ``book/live/model.json``: what a page needs beside the graph (the sizes, the restricted
vocabulary's GPT-2 ids, which ids are unknown and end-of-text, and both files' sha256).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from tinygpt import attention
from tinygpt.model import GPT, GPTConfig

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


@contextlib.contextmanager
def recording_attention() -> Iterator[list[torch.Tensor]]:
    """Collect the weights of every call to ``attention.scaled_dot_product_attention`` (the
    ``eager`` path of each layer, in order) while the block runs, without touching the model.

    The function that ``CausalSelfAttention`` calls is looked up in its module at each call, so
    wrapping it there for the duration of one forward pass sees every layer."""
    weights: list[torch.Tensor] = []
    original = attention.scaled_dot_product_attention

    def recorder(*args, **kwargs):
        out, w = original(*args, **kwargs)
        weights.append(w)  # (B, nh, T, P + T)
        return out, w

    attention.scaled_dot_product_attention = recorder
    try:
        yield weights
    finally:
        attention.scaled_dot_product_attention = original


class CachedStep(nn.Module):
    """One decoding step of ``model`` with its cache as inputs and outputs (the exported graph)."""

    def __init__(self, model: GPT) -> None:
        super().__init__()
        self.model = model

    def forward(self, idx, past_keys, past_values):
        cache = TensorCache(past_keys, past_values)
        with recording_attention() as weights:
            logits, _ = self.model(idx, cache=cache)  # (B, T, V)
        keys, values = torch.stack(cache.keys), torch.stack(cache.values)  # (L, B, nkv, P+T, hs)
        return logits, keys, values, torch.stack(weights)  # attention (L, B, nh, T, P+T)


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """Silence the exporter's notes that concern other models (torchvision's operators, a
    deprecation inside PyTorch): the one thing a reader should see is whether it worked."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        logger.setLevel(level)


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
    with quiet_exporter():
        program = torch.onnx.export(
            # not optimized: the weights keep their names (model_from_onnx reads them back); the
            # runtime folds the constants itself when it loads the file
            step, example, dynamo=True, verbose=False, optimize=False,
            input_names=["idx", "past_keys", "past_values"],
            output_names=["logits", "keys", "values", "attention"],
            dynamic_shapes={"idx": {1: T}, "past_keys": {3: P}, "past_values": {3: P}},
        )  # fmt: skip
    proto = program.model_proto
    drop_trace_metadata(proto)
    if half_weights:
        store_weights_in_half(proto)
    if source:
        onnx.helper.set_model_props(proto, {SOURCE_KEY: source})
    with files.atomic_path(Path(path)) as tmp:
        onnx.save(proto, tmp)
    return Path(path).stat().st_size


def drop_trace_metadata(proto) -> None:
    """Remove what the exporter records about where each node came from (Python stack traces,
    module paths; a tenth of the book's model's file): it names the folder it ran in, so the
    same weights exported from two checkouts would give two different files."""
    for node in proto.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""


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


def page_manifest(model: GPT, vocab, source_sha256: str, onnx_sha256: str, label: str = "") -> dict:
    """What a page needs beside the graph: the sizes, and the vocabulary as GPT-2 ids.

    ``vocab`` is the checkpoint's ``RestrictedVocab`` (or None for all of GPT-2): ``kept[i]`` is
    the GPT-2 id of local id i, ``unk`` the bucket every other GPT-2 id falls into (a sampler never
    picks it) and ``eot`` the local id of ``<|endoftext|>``, where a sample stops (None when the
    vocabulary lacks it). ``label`` is what the page calls the model."""
    c = model.config
    eot = 50256
    if vocab is None:
        words = {"kept": None, "unk": None, "eot": eot}
    else:
        kept = vocab.kept.tolist()
        words = {"kept": kept, "unk": vocab.unk_id, "eot": kept.index(eot) if eot in kept else None}
    return {
        "model_config": c.to_dict(),
        "config": {
            "n_layer": c.n_layer, "n_head": c.n_head, "n_kv_head": c.kv_heads,
            "head_size": c.head_size, "block_size": c.block_size, "vocab_size": c.vocab_size,
            "parameters": model.num_parameters(),
        },
        "vocab": words,
        "source_sha256": source_sha256,
        "onnx_sha256": onnx_sha256,
        "label": label,
    }  # fmt: skip


def model_from_onnx(path: str | Path) -> GPT:
    """The PyTorch model that an exported file holds, rebuilt from the file's weights (float16
    ones cast back to float32) and its ``model.json``: the reference a page is checked against,
    since the checkpoint itself is not shipped with the book."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    path = Path(path)
    manifest = json.loads(path.with_suffix(".json").read_text())
    model = GPT(GPTConfig.from_dict(manifest["model_config"]))
    names = set(model.state_dict())
    weights = {}
    for tensor in onnx.load(str(path)).graph.initializer:
        name = tensor.name.removeprefix("model.").removesuffix(".fp16")
        if name in names:
            weights[name] = torch.from_numpy(numpy_helper.to_array(tensor).astype(np.float32))
    if model.config.tie_weights and "lm_head.weight" in weights:  # the tied matrix, once
        weights["transformer.wte.weight"] = weights.pop("lm_head.weight")
    model.load_weights(weights)
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    from tinygpt import checkpoint as ckpt
    from tinygpt import files
    from tinygpt.cli import describe_error
    from tinygpt.cli_common import Parser, UsageError
    from tinygpt.data import sha256_of
    from tinygpt.runs import model_from_checkpoint
    from tinygpt.vocab import RestrictedVocab

    parser = Parser(
        prog="python -m tinygpt.export", description="Export a trained GPT for the HTML book."
    )
    parser.add_argument("checkpoint", type=Path, help="a run folder or a checkpoint file")
    parser.add_argument("out", type=Path, help="the ONNX file; model.json is written beside it")
    parser.add_argument("--label", default="", help="what the page calls the model")
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
        source, out = args.checkpoint, args.out
        if source.is_dir():  # a run folder: its best model
            source = source / "best.safetensors"
        saved = ckpt.load(source)
        model = model_from_checkpoint(saved)
        state = saved.meta.get("vocab")
        vocab = RestrictedVocab.from_state(state) if state is not None else None
        sha = sha256_of(source)
        size = export_onnx(model, out, half_weights=True, source=sha)
        manifest = page_manifest(model, vocab, sha, sha256_of(out), args.label)
        with files.atomic_path(out.with_suffix(".json")) as tmp:
            tmp.write_text(json.dumps(manifest, separators=(",", ":")) + "\n")
    except KeyboardInterrupt:
        print("tinygpt: error: interrupted; run the export again", file=sys.stderr)
        return 130
    except Exception as err:  # the same one line as `tinygpt`'s, for the same error
        message, status = describe_error(err)
        if isinstance(err, UsageError):
            message += f" (usage: {parser.format_usage()[7:].strip()})"
        print(f"tinygpt: error: {message}", file=sys.stderr)
        return status
    print(f"{out}: {size / 1e6:.1f} MB, from {source.name} (sha256 {sha[:12]}…)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
