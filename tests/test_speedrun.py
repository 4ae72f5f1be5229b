"""benchmarks/speedrun.py: the record log keeps every seed and the median of each row."""

import json
import sys
from pathlib import Path

import pytest

from tinygpt.cli import build_parser

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import speedrun as record_log  # noqa: E402  (not "speedrun": the timing check reads names)


def fake_run(folder: Path, seed: int, loss: float, steps: int, final: bool = True) -> None:
    folder.mkdir(parents=True)
    settings = {"model": {"block_size": 128}, "train": {"batch_size": 32, "seed": seed}}
    (folder / "config.json").write_text(json.dumps(settings))
    records = [{"kind": "train", "step": 10, "loss": 6.0, "lr": 1e-3, "tokens_per_s": 5000.0}]
    if final:
        records.append(
            {
                "kind": "final",
                "step": steps - 3,
                "steps_run": steps,
                "val_loss": loss,
                "val_loss_per_char": loss / 3.09,
                "tokens_per_s": 6000.0 + seed,
                "train_tokens": 301_966,
            }
        )
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_a_row_keeps_every_seed_and_is_judged_by_the_median(tmp_path):
    runs, results = tmp_path / "runs", tmp_path / "results"
    for seed, loss, steps in [(0, 4.60, 800), (1, 4.55, 790), (2, 4.70, 805)]:
        fake_run(runs / f"llama-s{seed}", seed, loss, steps)
    flags = ["--preset", "llama"]
    row = record_log.collect("llama", flags, 10.0, (0, 1, 2), runs, results, "the start")
    assert row["median_nats_per_token"] == 4.60
    assert row["median_tokens_per_s"] == 6001.0  # recorded: the median of the runs' records
    assert [s["seed"] for s in row["seeds"]] == [0, 1, 2]
    assert row["seeds"][1]["epochs"] == pytest.approx(790 * 32 * 128 / 301_966)
    assert row["command"] == "tinygpt train --preset llama --max-minutes 10"
    assert record_log.read_records(results) == [row]  # appended to records.jsonl
    for seed in (0, 1, 2):  # the runs' files are kept beside the log
        kept = results / "runs" / f"llama-s{seed}"
        assert (kept / "config.json").is_file() and (kept / "metrics.jsonl").is_file()
    record_log.collect("llama", flags, 10.0, (0, 1, 2), runs, results / "again", "")
    assert len(record_log.read_records(results)) == 1


def test_an_unfinished_run_cannot_be_recorded(tmp_path):
    fake_run(tmp_path / "runs" / "x-s0", 0, 5.0, 10, final=False)
    with pytest.raises(ValueError, match="no final record"):
        record_log.collect("x", [], 10.0, (0,), tmp_path / "runs", tmp_path / "results", "")


def test_run_trains_each_seed_through_the_cli_for_the_budget(tmp_path, monkeypatch):
    commands = []
    monkeypatch.setattr(record_log.subprocess, "run", lambda cmd, check: commands.append(cmd))
    record_log.train(
        "+muon", ["--preset", "llama", "--learning-rate", "3e-3"], 10.0, (0, 1), tmp_path
    )
    assert len(commands) == 2
    for seed, command in zip((0, 1), commands, strict=True):
        assert command[1:4] == ["-m", "tinygpt", "train"]
        args = build_parser().parse_args(command[3:])
        assert (args.preset, args.seed, args.max_minutes) == ("llama", seed, 10.0)
        assert Path(args.out) == tmp_path / f"+muon-s{seed}"


def test_an_ensemble_row_trains_k_members_per_seed_and_scores_their_mean(tmp_path, monkeypatch):
    import torch

    from tinygpt import checkpoint as ckpt
    from tinygpt.averaging import Ensemble
    from tinygpt.model import GPT, GPTConfig
    from tinygpt.train import full_validation, prepare_corpus

    corpus = prepare_corpus(True, 2)
    commands = []

    def fake_training(command, check):  # a tiny untrained model stands in for each member
        commands.append(command)
        args = build_parser().parse_args(command[3:])
        fake_run(Path(args.out), args.seed, 5.0 + args.seed, 100)
        torch.manual_seed(args.seed)
        model = GPT(GPTConfig(vocab_size=corpus.vocab_size, block_size=32, n_layer=1, n_head=1,
                              n_embd=8))  # fmt: skip
        kept = ckpt.Checkpoint(model.config.to_dict(), model.weights(), {"step": 97})
        ckpt.save(Path(args.out) / "best.safetensors", kept)
        settings = json.loads((Path(args.out) / "config.json").read_text())
        settings["train"].update(restrict_vocab=True, vocab_min_count=2, dtype="float32")
        (Path(args.out) / "config.json").write_text(json.dumps(settings))

    monkeypatch.setattr(record_log.subprocess, "run", fake_training)
    runs, results = tmp_path / "runs", tmp_path / "results"
    row = record_log.train_ensemble("+ens2", ["--preset", "speedrun"], 10.0, (0, 1), 2, runs,
                                    results, "two halves")  # fmt: skip
    seeds_and_minutes = [build_parser().parse_args(c[3:]) for c in commands]
    assert [(a.seed, a.max_minutes) for a in seeds_and_minutes] == [(0, 5), (1, 5), (2, 5), (3, 5)]
    assert row["members"] == 2 and [s["seed"] for s in row["seeds"]] == [0, 1]
    assert row["seeds"][1]["best_member_nats_per_token"] == 7.0  # members 2 and 3: 7.0 and 8.0
    assert row["seeds"][0]["steps"] == 200  # both members' steps
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(GPT(GPTConfig(vocab_size=corpus.vocab_size, block_size=32, n_layer=1,
                                    n_head=1, n_embd=8)))  # fmt: skip
    scored = full_validation(Ensemble(models), corpus, torch.device("cpu"))
    assert row["seeds"][0]["nats_per_token"] == scored["val_loss"]
    assert record_log.read_records(results) == [row]
    assert (results / "runs" / "+ens2-s1-m1" / "metrics.jsonl").is_file()
