"""Training: schedule, optimizer groups, exact resumption, atomic and safe checkpoints, the CLI."""

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
import types

import pytest
import torch
from safetensors.torch import save_file

from tinygpt import checkpoint as ckpt
from tinygpt.cli import main
from tinygpt.model import GPT, GPTConfig
from tinygpt.optim import configure_optimizer
from tinygpt.presets import preset
from tinygpt.runs import model_from_checkpoint
from tinygpt.train import TrainConfig, lr_at, train
from tinygpt.vocab import RestrictedVocab

TINY_MODEL = GPTConfig(block_size=16, n_layer=2, n_head=2, n_embd=16, dropout=0.1)


def tiny_train(**kwargs) -> TrainConfig:
    base = dict(
        batch_size=4,
        max_steps=8,
        warmup_steps=2,
        eval_interval=4,
        eval_batches=2,
        log_interval=1,
        seed=7,
    )
    return TrainConfig(**{**base, **kwargs})


def test_schedule_warms_up_then_decays_to_min_lr():
    config = TrainConfig(max_steps=1000, warmup_steps=100, learning_rate=1e-3, min_lr=1e-4)
    assert lr_at(0.0, config, 0) == pytest.approx(1e-5)
    assert lr_at(0.099, config, 99) == pytest.approx(1e-3)
    assert lr_at(0.5, config, 500) == pytest.approx(5.5e-4)
    assert lr_at(1.0, config, 1000) == pytest.approx(1e-4)


def test_weight_decay_only_on_matrices():
    model = GPT(TINY_MODEL)
    decay, no_decay = configure_optimizer(model, TrainConfig(), torch.device("cpu")).param_groups
    assert all(p.dim() >= 2 for p in decay["params"]) and decay["weight_decay"] == 0.1
    assert all(p.dim() == 1 for p in no_decay["params"]) and no_decay["weight_decay"] == 0.0
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


@pytest.mark.parametrize(
    "field, value",
    [
        ("learning_rate", -1.0),
        ("batch_size", 0),
        ("max_steps", -5),
        ("lr_schedule", "step"),
        ("dtype", "float16"),
        ("beta2", 1.0),
        ("device", "tpu"),
        ("grad_clip", math.nan),
    ],
)
def test_invalid_train_config_is_a_clear_error(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_presets_and_unknown_fields():
    model, config = preset("seed")
    assert (model.block_size, model.n_layer, model.n_head, model.n_embd) == (64, 4, 4, 128)
    assert config.batch_size == 64 and not config.restrict_vocab and not model.tie_weights
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        preset("huge")
    with pytest.raises(ValueError, match="unknown config field 'n_layers'"):
        preset("default", n_layers=3)


def test_restricted_vocab_loss_is_fair():
    vocab = RestrictedVocab([0, 1, 2], full_size=10)  # local ids 0..2, unk = 3 stands for 7 ids
    logits = torch.log(torch.tensor([[0.4, 0.3, 0.2, 0.1]]))
    targets = torch.tensor([[1]]), torch.tensor([[9]])
    assert vocab.nll(logits, targets[0]).item() == pytest.approx(-math.log(0.3))
    assert vocab.nll(logits, targets[1]).item() == pytest.approx(-math.log(0.1 / 7))
    # The implied distribution over all 10 ids sums to one: the loss is a real log-likelihood.
    total = sum(math.exp(-vocab.nll(logits, torch.tensor([[t]])).item()) for t in range(10))
    assert total == pytest.approx(1.0)


def test_training_reduces_the_loss_and_writes_everything(tmp_path):
    result = train(TINY_MODEL, tiny_train(max_steps=20, eval_interval=10), tmp_path, progress=False)
    evals = [m for m in result.metrics if m["kind"] == "eval"]
    assert evals[-1]["train_loss"] < evals[0]["train_loss"] + 0.5
    assert {p.name for p in tmp_path.iterdir()} >= {
        "last.safetensors",
        "best.safetensors",
        "metrics.jsonl",
        "config.json",
    }
    best = ckpt.load(tmp_path / "best.safetensors")
    model = model_from_checkpoint(best)
    assert model.config.vocab_size == len(best.meta["vocab"]["kept"]) + 1


def test_resume_is_bit_identical(tmp_path):
    straight = train(TINY_MODEL, tiny_train(), tmp_path / "a", progress=False)
    half = train(TINY_MODEL, tiny_train(), tmp_path / "b", progress=False, halt_at_step=4)
    assert half.stopped == "interrupted" and half.step == 4
    resumed = train(TINY_MODEL, tiny_train(), tmp_path / "b", resume=True, progress=False)
    losses = [(m["step"], m["loss"]) for m in straight.metrics if m["kind"] == "train"]
    resumed_losses = [(m["step"], m["loss"]) for m in resumed.metrics if m["kind"] == "train"]
    assert len(losses) == 8 and resumed_losses == losses  # exactly equal, not approximately
    a = ckpt.load(tmp_path / "a" / "last.safetensors").model_state
    b = ckpt.load(tmp_path / "b" / "last.safetensors").model_state
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_with_another_config_is_refused(tmp_path):
    train(TINY_MODEL, tiny_train(max_steps=2), tmp_path, progress=False)
    bigger = GPTConfig(**{**TINY_MODEL.to_dict(), "n_layer": 3})
    with pytest.raises(ckpt.CheckpointError, match="n_layer=2 in the checkpoint, 3 now"):
        train(bigger, tiny_train(max_steps=2), tmp_path, resume=True, progress=False)
    with pytest.raises(ckpt.CheckpointError, match="nothing to resume"):
        train(TINY_MODEL, tiny_train(), tmp_path / "empty", resume=True, progress=False)


def small_checkpoint() -> ckpt.Checkpoint:
    model = GPT(GPTConfig(vocab_size=11, block_size=4, n_layer=1, n_head=1, n_embd=4))
    return ckpt.Checkpoint(model.config.to_dict(), model.weights(), {"step": 3})


def test_checkpoint_round_trip_keeps_optimizer_and_rng(tmp_path):
    model = GPT(TINY_MODEL)
    optimizer = configure_optimizer(model, TrainConfig(), torch.device("cpu"))
    model(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long))[1].backward()
    optimizer.step()
    saved = ckpt.Checkpoint(
        TINY_MODEL.to_dict(),
        model.weights(),
        {"step": 1},
        optimizer.state_dict(),
        {"torch": torch.get_rng_state()},
    )
    ckpt.save(tmp_path / "c.safetensors", saved)
    loaded = ckpt.load(tmp_path / "c.safetensors")
    assert loaded.meta == {"step": 1}
    assert torch.equal(loaded.rng["torch"], saved.rng["torch"])
    fresh = configure_optimizer(GPT(TINY_MODEL), TrainConfig(), torch.device("cpu"))
    fresh.load_state_dict(loaded.optimizer_state)
    restored, original = fresh.state_dict()["state"], optimizer.state_dict()["state"]
    assert restored.keys() == original.keys()
    for index, values in original.items():
        assert all(torch.equal(restored[index][k], v) for k, v in values.items())


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "truncated"),
        (lambda p: p.write_text("First Citizen: not a checkpoint"), "not a readable"),
        (lambda p: save_file({"x": torch.zeros(2)}, p), "not a tinygpt checkpoint"),
        (lambda p: p.unlink(), "no checkpoint at"),
    ],
)
def test_bad_checkpoints_give_one_clear_error(tmp_path, make, words):
    path = tmp_path / "c.safetensors"
    ckpt.save(path, small_checkpoint())
    make(path)
    with pytest.raises(ckpt.CheckpointError, match=words) as info:
        ckpt.load(path)
    assert str(path) in str(info.value)
    assert info.value.__cause__ is None


def test_a_kill_during_save_leaves_the_previous_checkpoint(tmp_path):
    path = tmp_path / "c.safetensors"
    ckpt.save(path, small_checkpoint())
    before = path.read_bytes()
    # A process that saves a large checkpoint over and over, killed with SIGKILL mid-write.
    script = textwrap.dedent(f"""
        import torch
        from tinygpt import checkpoint as ckpt
        big = ckpt.Checkpoint({{"n": 1}}, {{"w": torch.randn(4_000_000)}}, {{"step": 99}})
        print("ready", flush=True)
        while True:
            ckpt.save({str(path)!r}, big)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"ready"
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    loaded = ckpt.load(path)  # whichever version is there is whole
    assert loaded.meta["step"] in (3, 99)
    if loaded.meta["step"] == 3:
        assert path.read_bytes() == before
    leftovers = [p for p in tmp_path.iterdir() if p.name != "c.safetensors"]
    # At most orphaned hidden temporaries (ours, ".c.safetensors.*.tmp", and the one safetensors
    # itself writes before its own rename, ".tmp*"); never a second, visible checkpoint.
    assert all(p.name.startswith(".") and "tmp" in p.name for p in leftovers), leftovers


def test_cli_errors_are_one_line(capsys):
    for argv, words in [
        (["train", "--learning-rate", "-0.1"], "learning_rate must be a positive number"),
        (["train", "--batch-size", "0"], "batch_size must be a positive integer"),
        (["train", "--preset", "huge"], "unknown preset 'huge'"),
        (["train", "--n-layers", "3"], "unrecognized arguments: --n-layers"),
        (["train", "--n-embd", "130"], "not divisible by n_head"),
        (["train", "--tie-weights", "maybe"], "expected true or false"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and words in err, err


def test_ctrl_c_saves_and_exits_cleanly(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tinygpt",
            "train",
            "--out",
            str(out),
            "--block-size",
            "16",
            "--n-layer",
            "1",
            "--n-head",
            "1",
            "--n-embd",
            "8",
            "--batch-size",
            "2",
            "--max-steps",
            "100000",
            "--eval-interval",
            "5",
            "--eval-batches",
            "1",
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )
    deadline = time.time() + 60
    while not (out / "last.safetensors").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert b"Traceback" not in err and b"--resume" in err
    saved = ckpt.load(out / "last.safetensors")
    assert saved.meta["step"] >= 5


def test_throughput_counts_the_steps_since_the_last_record_or_evaluation(monkeypatch):
    """tokens/s divides the tokens of the steps actually timed by their time: after an
    evaluation at step 37, the record at step 40 covers 3 steps, not a whole log interval."""
    from tinygpt import runs

    clock = iter([100.0, 110.0, 130.0, 133.0])  # start, record at 10, restart at 37, record at 40
    fake_time = types.SimpleNamespace(perf_counter=lambda: next(clock))
    monkeypatch.setattr(runs, "time", fake_time)  # the meter's clock only
    meter = runs.Meter(tokens_per_step=1_000, step=0)
    loss = torch.tensor(2.0)
    first = meter.record(10, loss, 1e-3, None, 100.0)
    assert first["tokens_per_s"] == 10 * 1_000 / 10.0  # fake clock
    meter.restart(37)
    record = meter.record(40, loss, 1e-3, torch.tensor(0.5), 100.0)
    assert record["tokens_per_s"] == 3 * 1_000 / 3.0  # fake clock
    assert record["grad_norm"] == 0.5 and record["elapsed_s"] == 33.0  # fake clock


@pytest.mark.parametrize("grad_clip", [1e-3, 0.5, 1e9])
def test_train_step_clips_the_global_gradient_norm_as_the_formula_says(grad_clip):
    """The returned norm is the norm of all gradients as one vector, and every gradient is
    scaled by min(1, grad_clip / norm): the direction is kept, the length capped."""
    from tinygpt.optim import configure_optimizer
    from tinygpt.train import TrainConfig, train_step

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, block_size=8, n_layer=2, n_head=2, n_embd=16)).double()
    x, y = torch.randint(0, 50, (2, 4, 8), generator=torch.Generator().manual_seed(0))
    _, loss = model(x, y)
    loss.backward()
    raw = [p.grad.clone() for p in model.parameters()]
    norm = torch.cat([g.flatten() for g in raw]).norm()
    config = TrainConfig(grad_clip=grad_clip)
    optimizer = configure_optimizer(model, config, torch.device("cpu"))
    _, returned = train_step(model, optimizer, x, y, 0.0, config)  # lr 0: only the gradients
    assert torch.allclose(returned, norm, rtol=1e-10)
    scale = min(1.0, grad_clip / (norm.item() + 1e-6))  # torch adds 1e-6 against a zero norm
    for before, p in zip(raw, model.parameters(), strict=True):
        assert torch.allclose(p.grad, before * scale, rtol=1e-9, atol=1e-15)


def test_a_run_stopped_by_the_clock_is_evaluated_at_its_last_step(tmp_path, monkeypatch):
    """When --max-minutes runs out between evaluations, the run is scored at the step it
    stopped, not at its last multiple of eval_interval: the final weights can be the best."""
    from tinygpt import train as train_module

    ticks = iter(range(10_000))  # every reading of train's clock is one second later
    fake_time = types.SimpleNamespace(perf_counter=lambda: next(ticks))
    monkeypatch.setattr(train_module, "time", fake_time)
    config = tiny_train(max_steps=1_000, eval_interval=5, max_minutes=0.5, patience=0)
    result = train(TINY_MODEL, config, tmp_path, progress=False)
    assert result.stopped == "time" and result.step % 5 != 0  # fake clock
    evals = [m["step"] for m in result.metrics if m["kind"] == "eval"]
    assert evals[-1] == result.step and evals[:-1] == list(range(5, result.step, 5))
    assert ckpt.load(tmp_path / "last.safetensors").meta["step"] == result.step
