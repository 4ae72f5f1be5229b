"""Data-parallel training: two CPU processes under torchrun (gloo) behave like one big batch."""

import json
import os
import subprocess
import sys

import pytest


def torchrun(*args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    # --standalone: a local rendezvous on a free port, so parallel test runs cannot collide
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def test_averaged_gradients_equal_single_process_gradients_on_the_combined_batch(tmp_path):
    """tinygpt.distributed.gradient_check, the check Appendix A runs."""
    result_file = tmp_path / "grads.json"
    proc = torchrun("-m", "tinygpt.distributed", str(result_file))
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(result_file.read_text())
    assert result["world_size"] == 2
    assert result["max_grad"] > 1e-3  # the gradients are not trivially zero
    assert result["max_abs_diff"] < 1e-6


@pytest.mark.usefixtures("shakespeare")
def test_tinygpt_train_runs_under_torchrun_and_only_rank_0_writes(tmp_path):
    out = tmp_path / "run"
    proc = torchrun(
        "-m", "tinygpt", "train", "--preset", "seed", "--n-layer", "1", "--n-head", "2",
        "--n-embd", "32", "--block-size", "16", "--batch-size", "4", "--max-steps", "6",
        "--eval-interval", "3", "--eval-batches", "1", "--log-interval", "3",
        "--restrict-vocab", "true", "--device", "cpu", "--no-progress", "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "best.safetensors").is_file() and (out / "last.safetensors").is_file()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    kinds = [(r["kind"], r["step"]) for r in records]
    # one writer: every record exactly once, the final full-validation line last
    assert kinds == [("train", 3), ("eval", 3), ("train", 6), ("eval", 6), ("final", 3)] or (
        kinds == [("train", 3), ("eval", 3), ("train", 6), ("eval", 6), ("final", 6)]
    )
    assert proc.stdout.count("best checkpoint") == 1  # rank 0 alone reports
    assert not list(out.glob(".*tmp*"))  # no half-written files left by another rank


@pytest.mark.usefixtures("shakespeare")
def test_ctrl_c_under_torchrun_stops_every_rank_at_the_same_step(tmp_path):
    """Ctrl-C in a terminal signals the whole process group: torchrun and both ranks. The ranks
    agree on the step to stop at (a rank that went on would wait forever for the other's
    gradients), rank 0 saves, and everything exits."""
    import signal
    import time

    from tinygpt import checkpoint as ckpt

    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "tinygpt", "train", "--preset", "seed", "--n-layer", "1", "--n-head", "2",
        "--n-embd", "32", "--block-size", "16", "--batch-size", "4", "--max-steps", "100000",
        "--eval-interval", "20", "--eval-batches", "1", "--log-interval", "5",
        "--restrict-vocab", "true", "--device", "cpu", "--no-progress", "--out", str(out),
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.is_file() and metrics.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)  # no rank hangs
    assert err.count("SIGINT: stopping after this step") == 2, err[-2000:]
    saved = ckpt.load(out / "last.safetensors")
    assert f"Stopped at step {saved.meta['step']}; resume with" in err
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert max(r["step"] for r in records) <= saved.meta["step"]
    assert not list(out.glob(".*tmp*"))
