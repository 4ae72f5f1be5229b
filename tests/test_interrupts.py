"""Ctrl-C and SIGTERM stop `tinygpt train` at a step boundary, and `--resume` then continues bit
for bit: interrupted and resumed runs end with every tensor (weights, optimizer state, random
generators) equal to an uninterrupted run's. Real subprocesses, real signals."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from tinygpt.interrupts import StopRequest

WORKER = Path(__file__).parent / "workers" / "signalling_train.py"
ARGS = [
    "train", "--block-size", "16", "--n-layer", "1", "--n-head", "2", "--n-embd", "16",
    "--dropout", "0.1", "--batch-size", "4", "--max-steps", "60", "--warmup-steps", "3",
    "--eval-interval", "7", "--eval-batches", "2", "--log-interval", "5", "--no-progress",
]  # fmt: skip
MAX_STEPS = 60


def tensors(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(path, framework="pt") as f:
        return {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118


def tinygpt(cli, out: Path, *extra: str) -> subprocess.CompletedProcess:
    """``python -m tinygpt train ...``, forked from a warm process (workers/warm_cli.py)."""
    return cli.run([*ARGS, "--out", str(out), *extra], streams(out), env=quiet())


def signalled(cli, out: Path, where: str, nth: int, name: str, count: int, *extra: str):
    worker = [where, str(nth), name, str(count), "--"]
    return cli.run([*worker, *ARGS, "--out", str(out), *extra], streams(out), env=quiet(),
                   script=str(WORKER))  # fmt: skip


def quiet() -> dict[str, str]:
    return {**os.environ, "PYTHONWARNINGS": "ignore"}


def streams(out: Path) -> Path:
    """A fresh folder beside the run for one process's stdout and stderr."""
    folder = out.parent / f"{out.name}-streams" / str(time.monotonic_ns())
    folder.mkdir(parents=True)
    return folder


def interrupted_at_random(cli, out: Path, seed: int, *extra: str) -> subprocess.CompletedProcess:
    """A real `tinygpt train` sent SIGINT at a random moment once its loop is running."""
    metrics = out / "metrics.jsonl"
    size = metrics.stat().st_size if metrics.is_file() else 0
    where = streams(out)
    pid = cli.start([*ARGS, "--out", str(out), *extra], where, env=quiet())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if metrics.is_file() and metrics.stat().st_size > size:  # the loop logs: it runs
            break
        time.sleep(0.01)
    time.sleep(random.Random(seed).uniform(0.0, 0.3))
    with contextlib.suppress(ProcessLookupError):  # it may have finished already
        os.kill(pid, signal.SIGINT)
    return cli.finish(where)


def assert_stopped(proc: subprocess.CompletedProcess, out: Path) -> None:
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"tinygpt train --out {out} --resume" in proc.stderr, proc.stderr
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def chain_interrupted_at_boundaries(cli, out: Path) -> Path:
    # SIGINT after the 3rd batch is drawn, before its step: the step finishes, then it stops
    assert_stopped(signalled(cli, out, "batch", 3, "SIGINT", 1), out)
    assert tensors(out / "last.safetensors")  # saved at step 3
    # SIGINT while evaluating (the 2nd evaluation since the resume)
    assert_stopped(signalled(cli, out, "eval", 3, "SIGINT", 1, "--resume"), out)
    # SIGTERM, as a job scheduler sends it, in the middle of writing a checkpoint
    assert_stopped(signalled(cli, out, "save", 2, "SIGTERM", 1, "--resume"), out)
    return out


def chain_interrupted_at_random(cli, out: Path) -> Path:
    first = interrupted_at_random(cli, out, seed=1)
    if first.returncode != 0:
        assert_stopped(first, out)
        second = interrupted_at_random(cli, out, 2, "--resume")
        assert second.returncode in (0, 130) and "Traceback" not in second.stderr
    return out


def chain_aborted_during_a_save(cli, out: Path) -> Path:
    # Two Ctrl-C in the middle of the 3rd checkpoint write: abort at once, the save abandoned
    proc = signalled(cli, out, "save", 3, "SIGINT", 2)
    assert proc.returncode == 130 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("tinygpt: error: aborted")
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]  # the temporary is gone
    assert tensors(out / "last.safetensors")  # and the last completed save is whole
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory, warm_pool) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("interrupts")
    chains = {
        "reference": lambda cli, out: (tinygpt(cli, out), out)[1],
        "at step boundaries": chain_interrupted_at_boundaries,
        "at random moments": chain_interrupted_at_random,
        "aborted during a save": chain_aborted_during_a_save,
    }

    def one(chain, out: Path) -> Path:
        with warm_pool.borrow() as cli:
            return chain(cli, out)

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(one, chain, root / name.replace(" ", "_")) for name, chain in
                   chains.items()}  # fmt: skip
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize(
    "chain", ["at step boundaries", "at random moments", "aborted during a save"]
)
def test_resumed_runs_end_bit_identical(runs, chain, warm_pool):
    out = runs[chain]
    if (out / "last.safetensors").is_file():
        meta = tinygpt_step(out)
        if meta < MAX_STEPS:
            with warm_pool.borrow() as cli:
                final = tinygpt(cli, out, "--resume")
            assert final.returncode == 0, final.stderr
    reference = runs["reference"]
    for name in ("last.safetensors", "best.safetensors"):
        want, got = tensors(reference / name), tensors(out / name)
        assert got.keys() == want.keys()
        differ = [k for k in want if not torch.equal(got[k], want[k])]
        assert not differ, f"{name}: {len(differ)} of {len(want)} tensors differ, e.g. {differ[:3]}"


def tinygpt_step(out: Path) -> int:
    from tinygpt import checkpoint as ckpt

    return ckpt.load(out / "last.safetensors").meta["step"]


def test_a_first_signal_is_recorded_a_second_aborts():
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and stop.signal_name == "SIGTERM"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
