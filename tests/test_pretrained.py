"""Real GPT-2 weights (Appendix B), tested offline: randomly initialised Hugging Face GPT-2s
saved the way the hub and ``save_pretrained`` save them, loaded with ``tinygpt.pretrained``."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.utils import logging as hf_logging

from tinygpt import checkpoint as ckpt
from tinygpt.cli import main
from tinygpt.data import DataError
from tinygpt.hf import from_hf_state_dict
from tinygpt.model import GPTConfig
from tinygpt.pretrained import GPT2_MODELS, gpt2_for_finetuning, load_gpt2
from tinygpt.train import TrainConfig, TrainResult, train

hf_logging.disable_progress_bar()  # save_pretrained's "Writing model shards" bar
NO_DROPOUT = dict(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
TINY = dict(vocab_size=50257, n_positions=64, n_embd=16, n_layer=2, n_head=2)  # GPT-2's tokens


def save_hf(path, **kwargs):
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(**NO_DROPOUT, **kwargs)).eval()
    hf.save_pretrained(path)
    return hf


@pytest.fixture(scope="module")
def gpt2_124m(tmp_path_factory):
    """Hugging Face's GPT-2 at the real 124M configuration, random weights, saved to a folder."""
    folder = tmp_path_factory.mktemp("gpt2-124m")
    return save_hf(folder), folder  # GPT2Config() is GPT-2 small: 12 layers, C = 768, V = 50257


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    return save_hf(folder, **TINY), folder


def test_124m_from_a_folder_gives_hugging_faces_logits(gpt2_124m, gpt2):
    hf, folder = gpt2_124m
    model = load_gpt2(folder)
    assert model.config == GPTConfig() == GPT2_MODELS["gpt2"]  # GPT-2 small: the default
    assert model.num_parameters() == hf.num_parameters() == 124_439_808
    assert model.lm_head.weight is model.transformer.wte.weight  # still tied
    idx = torch.tensor([gpt2.encode_ordinary("Leaving this place is something")])
    idx = torch.cat([idx, torch.randint(0, 50257, (1, 58))], dim=1)  # (1, 64)
    with torch.no_grad():
        diff = (model(idx)[0] - hf(idx).logits).abs().max().item()
    print(f"GPT-2 124M (random weights) max abs logit difference: {diff:.2e}")
    assert diff < 1e-4


def hub_cache(root, name, state, config_json):
    """A Hugging Face cache holding ``name`` (what hf_hub_download leaves behind)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = root / f"models--{name}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(config_json)
    save_file(state, snapshot / "model.safetensors")
    return root


def test_hub_layout_loads_offline_from_the_cache(tiny, tmp_path, monkeypatch):
    hf, folder = tiny
    # The hub's files: no "transformer." prefix, no lm_head (tied), the causal mask as a tensor.
    saved = load_file(folder / "model.safetensors")
    state = {k.removeprefix("transformer."): v for k, v in saved.items()}
    assert "wte.weight" in state and "h.0.attn.c_attn.weight" in state
    for i in range(TINY["n_layer"]):
        state[f"h.{i}.attn.bias"] = torch.tril(torch.ones(1, 1, 64, 64))
    cache = hub_cache(tmp_path, "gpt2", state, (folder / "config.json").read_text())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    model = load_gpt2("gpt2", device="cpu")  # a hub name, found in the cache: no download
    idx = torch.randint(0, 50257, (2, 64))
    with torch.no_grad():
        assert (model(idx)[0] - hf(idx).logits).abs().max() < 1e-5


def test_offline_without_a_cached_copy_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(DataError) as info:
        load_gpt2("gpt2-medium")
    message = str(info.value)
    assert "\n" not in message and info.value.__cause__ is None
    for words in ("'gpt2-medium'", "https://huggingface.co/gpt2-medium", "HF_HUB_CACHE",
                  "HF_HOME", str(tmp_path / "empty-cache"), "local folder"):
        assert words in message, (words, message)


def rewrite_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))


@pytest.mark.parametrize(
    "spoil, words",
    [
        (lambda f: rewrite_config(f, n_embd=32), "wrong shape: transformer.wte.weight is"),
        (lambda f: rewrite_config(f, n_layer=3), "missing: transformer.h.2."),
        (lambda f: rewrite_config(f, n_layer=1), "unexpected: transformer.h.1."),
        (lambda f: (f / "model.safetensors").unlink(), "has no model.safetensors"),
        (lambda f: (f / "model.safetensors").write_text("not tensors"), "not a readable"),
        (lambda f: rewrite_config(f, model_type="llama"), "not GPT-2"),
    ],
)
def test_a_folder_that_does_not_fit_is_a_clear_error(tiny, tmp_path, spoil, words):
    folder = tmp_path / "spoilt"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        (folder / name).write_bytes((tiny[1] / name).read_bytes())
    spoil(folder)
    with pytest.raises(DataError, match=words) as info:
        load_gpt2(folder)
    assert str(folder) in str(info.value)


def test_finetuning_starts_from_the_folder_and_trains(tiny, tmp_path):
    _, folder = tiny
    asked = GPTConfig(block_size=16, n_layer=5, n_head=1, n_embd=8, dropout=0.1)
    config = dict(batch_size=4, max_steps=2, warmup_steps=1, eval_interval=2, eval_batches=1,
                  log_interval=1, restrict_vocab=False, init_from=str(folder), seed=3)
    start = train(asked, TrainConfig(**config), tmp_path / "a", progress=False, halt_at_step=0)
    saved = ckpt.load(tmp_path / "a" / "last.safetensors")
    assert start.step == 0 and saved.meta["step"] == 0
    # The shape is the folder's, with the window cropped and dropout on, as asked.
    shape = dict(vocab_size=50257, block_size=16, n_layer=2, n_head=2, n_embd=16, dropout=0.1)
    assert saved.model_config == GPTConfig(**shape).to_dict()
    expected = from_hf_state_dict(load_file(folder / "model.safetensors"))
    expected["transformer.wpe.weight"] = expected["transformer.wpe.weight"][:16]
    assert saved.model_state.keys() == expected.keys()
    assert all(torch.equal(saved.model_state[k], expected[k]) for k in expected)

    result = train(asked, TrainConfig(**config), tmp_path / "b", progress=False)
    losses = [m["loss"] for m in result.metrics if m["kind"] == "train"]
    assert result.step == 2 and len(losses) == 2 and all(math.isfinite(x) for x in losses)
    assert abs(losses[0] - math.log(50257)) < 0.5  # GPT-2's init: near-uniform predictions
    moved = ckpt.load(tmp_path / "b" / "last.safetensors").model_state
    assert not torch.equal(moved["transformer.h.0.attn.c_attn.weight"],
                           expected["transformer.h.0.attn.c_attn.weight"])


def test_finetuning_settings_that_cannot_work_are_refused(tiny, capsys):
    _, folder = tiny
    with pytest.raises(ValueError, match="needs restrict_vocab=False"):
        TrainConfig(init_from="gpt2")  # restrict_vocab defaults to True
    with pytest.raises(ValueError, match="longer than .* context window of 64"):
        gpt2_for_finetuning(folder, block_size=65, dropout=0.0)
    assert main(["train", "--init-from", str(folder), "--n-layer", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--n-layer does not apply with --init-from" in err, err


def test_cli_fine_tunes_with_the_full_vocabulary(tiny, tmp_path, monkeypatch):
    # What `tinygpt train --init-from` hands to train(); the training itself is tested above.
    calls = []

    def fake_train(model_config, train_config, out_dir, resume, progress):
        calls.append((model_config, train_config))
        return TrainResult(out_dir=out_dir, stopped="interrupted")

    monkeypatch.setattr("tinygpt.train.train", fake_train)
    folder = str(tiny[1])
    argv = ["train", "--init-from", folder, "--block-size", "256", "--learning-rate", "3e-5",
            "--min-lr", "3e-6", "--dropout", "0.1", "--out", str(tmp_path)]
    assert main(argv) == 130  # "interrupted": the CLI's report ends there
    model_config, train_config = calls[0]
    assert train_config.init_from == folder and train_config.learning_rate == 3e-5
    assert train_config.restrict_vocab is False  # set by the CLI: GPT-2's whole vocabulary
    assert (model_config.block_size, model_config.dropout) == (256, 0.1)
    assert main([*argv, "--restrict-vocab", "true"]) == 2  # asked for explicitly: refused
