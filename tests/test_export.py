"""The ONNX export (tinygpt.export) computes what the PyTorch model computes: the prompt's logits,
then every cached one-token step, for learned positions and for Llama's parts (RoPE, GQA), and
every layer's attention weights; the command writes the page's manifest beside the file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tinygpt import export
from tinygpt.model import GPT, GPTConfig

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

CONFIGS = {
    "gpt2": GPTConfig(vocab_size=97, block_size=32, n_layer=2, n_head=4, n_embd=64),
    "llama": GPTConfig(
        vocab_size=97, block_size=32, n_layer=2, n_head=4, n_kv_head=2, n_embd=64,
        bias=False, pos_embedding="rope", norm="rmsnorm", mlp="swiglu",
    ),
}  # fmt: skip


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run_cached(
    sess, prompt: list[int], new_tokens: int, shape
) -> tuple[list[int], list[np.ndarray]]:
    """Greedy decoding through the exported step: the prompt at once, then one token per call."""
    L, nkv, hs = shape
    past = np.zeros((L, 1, nkv, 0, hs), np.float32)
    feed = {"idx": np.array([prompt], np.int64), "past_keys": past, "past_values": past}
    ids, every_logits = list(prompt), []
    for _ in range(new_tokens):
        logits, keys, values, _ = sess.run(None, feed)
        every_logits.append(logits[0, -1])
        ids.append(int(logits[0, -1].argmax()))
        feed = {"idx": np.array([[ids[-1]]], np.int64), "past_keys": keys, "past_values": values}
    return ids, every_logits


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def exported(request, tmp_path_factory):
    torch.manual_seed(0)
    model = GPT(CONFIGS[request.param]).eval()
    path = tmp_path_factory.mktemp("onnx") / f"{request.param}.onnx"
    export.export_onnx(model, path, half_weights=False, source="abc")
    return model, path


def test_every_cached_step_gives_pytorchs_logits(exported):
    model, path = exported
    c = model.config
    ids, logits = run_cached(
        session(path), [5, 17, 3, 60], 20, (c.n_layer, c.kv_heads, c.head_size)
    )
    with torch.no_grad():
        full = model(torch.tensor([ids[:-1]]))[0][0]  # (T, V): every position at once, no cache
    for step, got in enumerate(logits):
        want = full[3 + step].numpy()
        assert np.abs(got - want).max() < 1e-4, f"step {step}"
    assert ids[4:] == [int(full[3 + s].argmax()) for s in range(20)]  # the same greedy tokens


def test_the_file_names_its_source_and_has_the_steps_inputs(exported):
    _, path = exported
    proto = onnx.load(str(path))
    props = {p.key: p.value for p in proto.metadata_props}
    assert props[export.SOURCE_KEY] == "abc"
    names = [i.name for i in session(path).get_inputs()]
    assert names == ["idx", "past_keys", "past_values"]
    assert [o.name for o in session(path).get_outputs()] == [
        "logits",
        "keys",
        "values",
        "attention",
    ]


def test_the_file_says_nothing_about_the_machine_that_wrote_it(exported, tmp_path):
    """No stack traces or source paths in the graph: the same weights exported from another
    checkout (here: again, to another folder) give the same bytes."""
    from pathlib import Path

    model, path = exported
    data = path.read_bytes()
    assert str(Path(export.__file__).parent).encode() not in data
    assert all(not node.metadata_props for node in onnx.load(str(path)).graph.node)
    again = tmp_path / "elsewhere" / "model.onnx"
    again.parent.mkdir()
    export.export_onnx(model, again, half_weights=False, source="abc")
    assert again.read_bytes() == data


def test_attention_output_equals_each_layers_weights(exported):
    """The prompt's attention (no past) equals attention_maps; a cached step's row equals the
    last row of the whole text's weights."""
    from tinygpt.book.probes import attention_maps

    model, path = exported
    c = model.config
    sess = session(path)
    ids = [5, 17, 3, 60, 8, 2]
    past = np.zeros((c.n_layer, 1, c.kv_heads, 0, c.head_size), np.float32)
    feed = {"idx": np.array([ids[:-1]], np.int64), "past_keys": past, "past_values": past}
    _, keys, values, prompt_weights = sess.run(None, feed)
    step = {"idx": np.array([ids[-1:]], np.int64), "past_keys": keys, "past_values": values}
    step_weights = sess.run(["attention"], step)[0]  # (L, 1, nh, 1, 6)
    maps = attention_maps(model, torch.tensor([ids]))  # per layer (1, nh, 6, 6)
    assert prompt_weights.shape == (c.n_layer, 1, c.n_head, 5, 5)
    for layer, want in enumerate(maps):
        want = want.numpy()
        assert np.abs(prompt_weights[layer] - want[:, :, :5, :5]).max() < 1e-5
        assert np.abs(step_weights[layer] - want[:, :, 5:, :]).max() < 1e-5


def test_half_weights_halve_the_file_and_match_the_rounded_model(tmp_path):
    torch.manual_seed(0)
    model = GPT(CONFIGS["llama"]).eval()
    full, half = tmp_path / "full.onnx", tmp_path / "half.onnx"
    size_full = export.export_onnx(model, full, half_weights=False)
    size_half = export.export_onnx(model, half, half_weights=True)
    big = [w for w in onnx.load(str(half)).graph.initializer if np.prod(w.dims) >= export.HALF_FROM]
    assert big and all(w.data_type == onnx.TensorProto.FLOAT16 for w in big)
    saved = sum(2 * int(np.prod(w.dims)) for w in big)  # two bytes per number
    assert size_full - size_half == pytest.approx(saved, rel=0.05)
    c = model.config
    ids, logits = run_cached(session(half), [1, 2, 3], 8, (c.n_layer, c.kv_heads, c.head_size))
    with torch.no_grad():
        rounded = export.half_rounded(model)(torch.tensor([ids[:-1]]))[0][0]
    for step, got in enumerate(logits):
        assert np.abs(got - rounded[2 + step].numpy()).max() < 1e-4


CASES = ["missing checkpoint", "not a checkpoint", "no arguments", "unknown flag"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_writes_nothing(case, tmp_path, capsys):
    out = tmp_path / "model.onnx"
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    argv = {
        "missing checkpoint": [str(tmp_path / "no-run" / "best.safetensors"), str(out)],
        "not a checkpoint": [str(tmp_path / "notes.txt"), str(out)],
        "no arguments": [],
        "unknown flag": [str(tmp_path), str(out), "--lable", "x"],
    }[case]
    assert export.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tinygpt: error:") and not out.exists()


def test_the_command_writes_the_file_and_the_pages_manifest(tmp_path, capsys):
    """``python -m tinygpt.export`` on a checkpoint with a restricted vocabulary: the ONNX file
    names the checkpoint's sha256, and model.json holds the sizes, the GPT-2 id of each local id,
    the unknown bucket, no end-of-text (this vocabulary lacks it) and the file's sha256; and
    model_from_onnx rebuilds the PyTorch model with the weights the file holds."""
    import hashlib
    import json

    from tinygpt import checkpoint as ckpt
    from tinygpt.vocab import RestrictedVocab

    torch.manual_seed(0)
    vocab = RestrictedVocab([11, 262, 4000, 198])  # 4 GPT-2 tokens + the unknown bucket
    config = GPTConfig(vocab_size=vocab.size, block_size=16, n_layer=1, n_head=2, n_embd=32)
    model = GPT(config)
    source = tmp_path / "best.safetensors"
    ckpt.save(source, ckpt.Checkpoint(config.to_dict(), model.weights(), {"vocab": vocab.state()}))
    out = tmp_path / "live" / "model.onnx"
    assert export.main([str(source), str(out), "--label", "a tiny model"]) == 0
    assert "model.onnx" in capsys.readouterr().out
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props[export.SOURCE_KEY] == sha
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["vocab"] == {"kept": vocab.kept.tolist(), "unk": 4, "eot": None}
    assert manifest["label"] == "a tiny model"
    assert manifest["config"]["vocab_size"] == 5 and manifest["config"]["n_head"] == 2
    assert manifest["source_sha256"] == sha
    assert manifest["onnx_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    rebuilt = export.model_from_onnx(out)  # the file's own weights, back in PyTorch
    assert rebuilt.config == model.config
    rounded = export.half_rounded(model).state_dict()
    assert all(torch.equal(w, rounded[name]) for name, w in rebuilt.state_dict().items())
