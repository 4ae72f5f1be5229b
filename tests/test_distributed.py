"""Data-parallel training: two CPU processes under torchrun (gloo) behave like one big batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKERS = Path(__file__).parent / "workers"


def torchrun(*args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    # --standalone: a local rendezvous on a free port, so parallel test runs cannot collide
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def test_averaged_gradients_equal_single_process_gradients_on_the_combined_batch(tmp_path):
    result_file = tmp_path / "grads.json"
    proc = torchrun(str(WORKERS / "ddp_gradients.py"), str(result_file))
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
