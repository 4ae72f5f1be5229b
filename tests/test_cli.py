"""`tinygpt sample` end to end on a small trained checkpoint: output and every bad input."""

import pytest
import torch

from tinygpt import checkpoint as ckpt
from tinygpt.cli import main
from tinygpt.generate import SamplingConfig, TextGenerator
from tinygpt.model import GPTConfig
from tinygpt.train import TrainConfig, train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    model = GPTConfig(block_size=16, n_layer=1, n_head=2, n_embd=16)
    train(
        model,
        TrainConfig(batch_size=4, max_steps=4, eval_interval=2, eval_batches=1, warmup_steps=1),
        out,
        progress=False,
    )
    return out


def sample(run_dir, *extra):
    return main(["sample", "--checkpoint", str(run_dir), "--max-new-tokens", "5", *extra])


def test_sample_streams_the_prompt_and_its_continuation(run_dir, capsys):
    assert sample(run_dir, "--prompt", "Leaving this place is something", "--seed", "0") == 0
    out = capsys.readouterr().out
    assert out.startswith("Leaving this place is something") and len(out) > 32


def test_sample_prints_exactly_what_text_generator_returns(run_dir, capsys):
    # Chapter 7 shows one line of this check on its own run.
    args = ("--prompt", "ROMEO:", "--temperature", "0.8", "--top-k", "50", "--seed", "0")
    assert sample(run_dir, *args) == 0
    generator = TextGenerator.from_checkpoint(run_dir / "best.safetensors")
    expected = generator("ROMEO:", 5, SamplingConfig(temperature=0.8, top_k=50, seed=0))[0]
    assert capsys.readouterr().out == expected + "\n"


def test_same_seed_same_text_and_several_samples(run_dir, capsys):
    args = ("--prompt", "ROMEO:", "--seed", "3", "--num-samples", "2", "--top-p", "0.9")
    sample(run_dir, *args)
    first = capsys.readouterr().out
    sample(run_dir, *args)
    assert capsys.readouterr().out == first
    assert first.count("--- sample") == 2


def test_empty_prompt_starts_a_fresh_text(run_dir, capsys):
    assert sample(run_dir, "--prompt", "", "--seed", "0") == 0
    assert capsys.readouterr().out.strip() != ""


def test_a_prompt_longer_than_the_window_is_cropped_with_a_notice(run_dir, capsys):
    assert sample(run_dir, "--prompt", "to be or not to be " * 10, "--seed", "0") == 0
    assert "the model sees only its last 16" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, words",
    [
        (("--temperature", "-1"), "temperature must be >= 0"),
        (("--top-p", "0"), r"top_p must be in (0, 1]"),
        (("--top-p", "1.5"), r"top_p must be in (0, 1]"),
        (("--top-k", "0"), "top_k must be >= 1"),
        (("--num-samples", "0"), "--num-samples must be >= 1"),
        (("--max-new-tokens", "0"), "--max-new-tokens must be >= 1"),
    ],
)
def test_bad_sampling_flags_are_one_line_errors(run_dir, capsys, extra, words):
    assert sample(run_dir, "--prompt", "x", *extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and words in err, err


def test_missing_and_mismatched_checkpoints(run_dir, tmp_path, capsys):
    assert main(["sample", "--checkpoint", str(tmp_path / "nowhere")]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    saved = ckpt.load(run_dir / "best.safetensors")
    saved.model_config["n_embd"] = 32  # the weights are 16 wide
    ckpt.save(tmp_path / "mismatched.safetensors", saved)
    assert main(["sample", "--checkpoint", str(tmp_path / "mismatched.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "does not fit" in err, err
    (tmp_path / "junk.safetensors").write_bytes(torch.randn(10).numpy().tobytes())
    assert main(["sample", "--checkpoint", str(tmp_path / "junk.safetensors")]) == 2
    assert "not a readable tinygpt checkpoint" in capsys.readouterr().err


def test_llama_preset_trains_and_samples_end_to_end(tmp_path, capsys):
    """Chapter 8's flags through the real CLI: RoPE, GQA, RMSNorm, SwiGLU, then sampling."""
    out = tmp_path / "llama"
    flags = ["--preset", "llama", "--block-size", "16", "--n-layer", "1", "--n-embd", "32"]
    flags += [
        "--max-steps",
        "2",
        "--eval-interval",
        "2",
        "--eval-batches",
        "1",
        "--batch-size",
        "2",
    ]
    assert main(["train", *flags, "--out", str(out), "--no-progress", "--device", "cpu"]) == 0
    saved = ckpt.load(out / "best.safetensors")
    assert saved.model_config["pos_embedding"] == "rope" and saved.model_config["n_kv_head"] == 2
    assert not any("wpe" in name for name in saved.model_state)
    capsys.readouterr()
    assert sample(out, "--prompt", "To be", "--seed", "0") == 0
    assert capsys.readouterr().out.startswith("To be")


def test_resume_reuses_the_runs_own_config_and_flags_given_now_override(tmp_path, capsys):
    """`tinygpt train --out RUN --resume` needs no other flag: the run's config.json is reused."""
    out = tmp_path / "run"
    small = ["--block-size", "16", "--n-layer", "1", "--n-head", "2", "--n-embd", "16"]
    budget = ["--eval-interval", "2", "--eval-batches", "1", "--batch-size", "2"]
    common = ["--out", str(out), "--no-progress", "--device", "cpu"]
    assert main(["train", *small, *budget, "--max-steps", "2", *common]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", "--max-steps", "4", *common]) == 0
    assert "as configured in" in capsys.readouterr().out
    last = ckpt.load(out / "last.safetensors")
    assert last.meta["step"] == 4 and last.model_config["n_layer"] == 1
    assert last.meta["elapsed_s"] > 0  # sanity: a time budget resumes where it stopped, too


def test_bare_command_prints_help_and_text_settings_list_their_choices(capsys):
    assert main([]) == 2
    assert "usage: tinygpt" in capsys.readouterr().out
    assert main(["train", "--pos-embedding", "alibi"]) == 2
    assert "choose from 'learned', 'rope'" in capsys.readouterr().err
