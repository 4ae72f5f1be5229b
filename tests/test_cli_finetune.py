"""`tinygpt finetune`, `tinygpt sample --adapter` and `tinygpt classify` end to end on a tiny
base, and one clear line for every bad input (nothing written, nothing lost)."""

import json

import pytest

from tinygpt.cli import main
from tinygpt.model import GPTConfig
from tinygpt.train import TrainConfig, train


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    out = tmp_path_factory.mktemp("base")
    model = GPTConfig(block_size=48, n_layer=1, n_head=2, n_embd=16)
    train(
        model,
        TrainConfig(batch_size=4, max_steps=3, eval_interval=3, eval_batches=1),
        out,
        progress=False,
    )
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    rows = [
        {"text": f"my lord, {w}", "label": "yes" if i % 2 else "no"}
        for i, w in enumerate("good bad fair foul sweet sour kind cruel true false".split())
    ]
    (folder / "labels.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    tasks = [
        {"instruction": "Say the first word.", "input": f"{w} and more", "response": w}
        for w in "good bad fair foul sweet sour kind cruel true false".split()
    ]
    (folder / "tasks.jsonl").write_text("\n".join(json.dumps(r) for r in tasks))
    return folder


def tune(base, out, *extra):
    return main(
        [
            "finetune",
            "--base",
            str(base),
            "--out",
            str(out),
            "--steps",
            "2",
            "--batch-size",
            "2",
            "--eval-interval",
            "1",
            *extra,
        ]
    )


def test_classifier_and_instruction_fine_tunes_end_to_end(base, data, tmp_path, capsys):
    assert tune(base, tmp_path / "c", "--data", str(data / "labels.jsonl"), "--lora-rank", "2") == 0
    assert (tmp_path / "c" / "finetuned.safetensors").is_file()
    metrics = [json.loads(line) for line in (tmp_path / "c" / "metrics.jsonl").open()]
    assert [m["step"] for m in metrics if m["kind"] == "val"] == [1, 2]
    assert (
        main(
            [
                "classify",
                "--checkpoint",
                str(base),
                "--adapter",
                str(tmp_path / "c"),
                "my lord, good",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.split("\t")[0].split("\n")[-1] in ("no", "yes")
    assert (
        tune(
            base,
            tmp_path / "i",
            "--task",
            "instruct",
            "--method",
            "full",
            "--data",
            str(data / "tasks.jsonl"),
        )
        == 0
    )
    assert (
        main(
            [
                "sample",
                "--checkpoint",
                str(base),
                "--adapter",
                str(tmp_path / "i"),
                "--instruction",
                "Say the first word.",
                "--prompt",
                "good and more",
                "--max-new-tokens",
                "3",
                "--temperature",
                "0",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.split("finetuned.safetensors\n", 1)[1]  # after finetune's lines
    assert out.startswith("TASK:\nSay the first word.\n\nPASSAGE:\ngood and more\n\nWORD:\n")
    assert "<|endoftext|>" not in out


def test_the_surprise_readout_labels_texts_from_the_command_line(base, data, tmp_path, capsys):
    assert tune(base, tmp_path / "s", "--data", str(data / "labels.jsonl"), "--method", "head",
                "--readout", "surprise") == 0  # fmt: skip
    assert "kept step" in capsys.readouterr().out
    args = ["classify", "--checkpoint", str(base), "--adapter", str(tmp_path / "s"), "my lord"]
    assert main(args) == 0
    assert capsys.readouterr().out.split("\t")[0] in ("no", "yes")


@pytest.mark.parametrize(
    "extra, words",
    [
        (("--lora-rank", "0"), "--lora-rank must be a positive integer"),
        (("--method", "head", "--task", "instruct"), "for instruct use lora or full"),
        (("--no-mask",), "--no-mask applies to --task instruct only"),
        (("--steps", "0"), "--steps must be >= 1"),
        (("--data", "missing.jsonl"), "no such file"),
        # A flag that does not apply is refused, not ignored:
        (("--method", "full", "--lora-rank", "4"), "--lora-rank applies to --method lora only"),
        (("--method", "head", "--lora-targets", "c_fc"), "--lora-targets applies to --method"),
        (("--block-size", "0"), "--block-size crops a GPT-2 base's window"),
        (("--task", "instruct", "--readout", "surprise"), "--readout applies to --task classify"),
        (("--max-minutes", "-1"), "--max-minutes must be >= 0"),
    ],
)
def test_bad_input_is_one_line(base, tmp_path, capsys, extra, words):
    assert tune(base, tmp_path / "x", *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinygpt: error: ") and words in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_a_bad_label_file_names_its_line(base, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "label": "x"}\n{"text": "b", label: "y"}\n')
    assert tune(base, tmp_path / "x", "--data", str(bad)) == 2
    assert f"--data {bad}, line 2: not JSON" in capsys.readouterr().err


def test_a_wrong_base_or_a_used_folder_is_refused_and_nothing_is_lost(base, data, tmp_path, capsys):
    assert tune(base, tmp_path / "c", "--data", str(data / "labels.jsonl")) == 0
    saved = (tmp_path / "c" / "finetuned.safetensors").read_bytes()
    assert tune(base, tmp_path / "c", "--data", str(data / "labels.jsonl")) == 2
    assert "already holds a fine-tune" in capsys.readouterr().err
    assert (tmp_path / "c" / "finetuned.safetensors").read_bytes() == saved
    other = tmp_path / "other"
    train(
        GPTConfig(block_size=48, n_layer=1, n_head=2, n_embd=16),
        TrainConfig(batch_size=4, max_steps=2, eval_interval=2, eval_batches=1, seed=1),
        other,
        progress=False,
    )
    assert (
        main(["classify", "--checkpoint", str(other), "--adapter", str(tmp_path / "c"), "x"]) == 2
    )
    assert "was fine-tuned from another base" in capsys.readouterr().err
    assert main(["sample", "--checkpoint", str(base), "--adapter", str(tmp_path / "c")]) == 2
    assert "is a classifier" in capsys.readouterr().err
    assert (
        main(
            [
                "finetune",
                "--base",
                str(tmp_path / "nothing"),
                "--data",
                str(data / "labels.jsonl"),
                "--out",
                str(tmp_path / "y"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("tinygpt: error: no checkpoint at") and err.count("\n") == 1


def test_gpt2_weights_are_a_base_like_any_other(data, tmp_path, capsys):
    """Appendix B's weights (here a random Hugging Face GPT-2 saved to a folder, offline)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=50257, n_positions=64, n_embd=16, n_layer=1, n_head=2)
    GPT2LMHeadModel(config).save_pretrained(tmp_path / "gpt2")
    assert (
        main(
            [
                "finetune",
                "--base",
                str(tmp_path / "gpt2"),
                "--task",
                "instruct",
                "--data",
                str(data / "tasks.jsonl"),
                "--out",
                str(tmp_path / "out"),
                "--steps",
                "1",
                "--batch-size",
                "2",
                "--block-size",
                "32",
                "--lora-targets",
                "c_attn",
            ]
        )
        == 0
    )
    assert "lora on instruct" in capsys.readouterr().out
    assert (tmp_path / "out" / "finetuned.safetensors").is_file()


def test_a_time_budget_alone_ends_the_run(base, data, tmp_path, capsys):
    """--max-minutes without --steps: the clock ends the run, not the default 300 steps."""
    args = ["finetune", "--base", str(base), "--out", str(tmp_path / "t"), "--method", "head",
            "--data", str(data / "labels.jsonl"), "--batch-size", "2",
            "--max-minutes", "0.005"]  # fmt: skip
    assert main(args) == 0
    from tinygpt.finetune import read

    config = read(tmp_path / "t")[0]
    assert config.max_minutes == 0.005 and config.steps > 300  # the clock, not 300 steps, ends it
    metrics = [json.loads(line) for line in (tmp_path / "t" / "metrics.jsonl").open()]
    assert metrics[-1]["kind"] == "kept" and metrics[-1]["step"] < config.steps
