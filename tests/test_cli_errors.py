"""Every bad input a user can give ``tinygpt``, end to end as a subprocess: one line on stderr
that starts ``tinygpt: error:`` and names the problem, the right exit status, no traceback, and
nothing lost (the run folder it was pointed at is byte for byte as it was)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tinygpt import checkpoint as ckpt
from tinygpt.model import GPTConfig
from tinygpt.train import TrainConfig, train

TINY = ["--block-size", "16", "--n-layer", "1", "--n-head", "2", "--n-embd", "16"]
TINY_TRAIN = [*TINY, "--batch-size", "2", "--eval-batches", "1", "--no-progress"]
OFFLINE = {"https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}


@dataclass
class Case:
    """``tinygpt ARGS`` (``{run}`` is a copy of a trained run, ``{tmp}`` an empty folder)."""

    name: str
    args: list[str]
    words: str  # must appear in the error line
    status: int = 2
    prepare: object = None  # prepare(run: Path, tmp: Path): damage the copy before the call
    env: dict = field(default_factory=dict)  # "{tmp}" in a value is replaced too
    limit_file_size: int | None = None  # RLIMIT_FSIZE in bytes: a disk that fills up
    unchanged: bool = True  # the run folder must be byte for byte as it was


def write(relative: str, data: bytes | str):
    def prepare(run: Path, tmp: Path) -> None:
        path = (run if relative.startswith("run/") else tmp) / relative.split("/", 1)[1]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)

    return prepare


def truncate(name: str):
    def prepare(run: Path, tmp: Path) -> None:
        data = (run / name).read_bytes()
        (run / name).write_bytes(data[: len(data) // 2])

    return prepare


def foreign(name: str):
    def prepare(run: Path, tmp: Path) -> None:
        save_file({"weight": torch.zeros(3)}, run / name)

    return prepare


def reshape(name: str):
    def prepare(run: Path, tmp: Path) -> None:
        saved = ckpt.load(run / name)
        saved.model_config["n_embd"] = 32  # the weights are 16 wide
        ckpt.save(run / name, saved)

    return prepare


def damage_vocab(run: Path) -> None:
    saved = ckpt.load(run / "best.safetensors")
    saved.meta["vocab"]["kept"] = saved.meta["vocab"]["kept"][:5]
    ckpt.save(run / "best.safetensors", saved)


def nan_weights(run: Path) -> None:
    saved = ckpt.load(run / "best.safetensors")
    saved.model_state = {k: torch.full_like(v, float("nan")) for k, v in saved.model_state.items()}
    ckpt.save(run / "best.safetensors", saved)


def best_as_last(run: Path, tmp: Path) -> None:
    shutil.copyfile(run / "best.safetensors", run / "last.safetensors")


def data_dir_with(content: bytes | None):
    def prepare(run: Path, tmp: Path) -> None:
        (tmp / "data").mkdir()
        if content is not None:
            (tmp / "data" / "tinyshakespeare.txt").write_bytes(content)

    return prepare


def data_dir_as_folder(run: Path, tmp: Path) -> None:
    (tmp / "data" / "tinyshakespeare.txt").mkdir(parents=True)


def empty_folder(run: Path, tmp: Path) -> None:
    (tmp / "empty").mkdir()


SAMPLE = ["sample", "--checkpoint", "{run}", "--max-new-tokens", "3"]
RESUME = ["train", "--out", "{run}", "--resume", "--no-progress"]
NEW = ["train", *TINY_TRAIN, "--max-steps", "2"]

CASES = [
    # --- flags of train ---
    Case("batch size 0", [*NEW, "--batch-size", "0", "--out", "{tmp}/new"], "batch_size must be"),
    Case("negative lr", [*NEW, "--learning-rate", "-0.1", "--out", "{tmp}/n"], "learning_rate"),
    Case("min lr above peak", [*NEW, "--min-lr", "1", "--out", "{tmp}/n"], "min_lr (1.0) must"),
    Case("unknown preset", ["train", "--preset", "huge"], "unknown preset 'huge'"),
    Case("misspelt flag", ["train", "--n-layers", "3"], "unrecognized arguments: --n-layers"),
    Case("n_embd not divisible", [*NEW, "--n-embd", "15", "--out", "{tmp}/n"], "divisible"),
    Case("not a boolean", ["train", "--tie-weights", "maybe"], "expected true or false"),
    Case("not an integer", ["train", "--max-steps", "many"], "invalid int value: 'many'"),
    Case("dropout of 1", [*NEW, "--dropout", "1", "--out", "{tmp}/n"], "dropout must be in"),
    Case("bad dtype", ["train", "--dtype", "float16"], "invalid choice: 'float16'"),
    Case("shape with init-from", ["train", "--init-from", "gpt2", "--n-layer", "3"], "--n-layer"),
    Case("unknown command", ["fly"], "invalid choice: 'fly'"),
    # --- devices ---
    Case("train on cuda", [*NEW, "--device", "cuda", "--out", "{tmp}/n"], "--device cpu"),
    Case("train on cuda:3", [*NEW, "--device", "cuda:3", "--out", "{tmp}/n"], "'cuda:3'"),
    Case("train on mps", [*NEW, "--device", "mps", "--out", "{tmp}/n"], "'mps'"),
    Case("train on a tpu", [*NEW, "--device", "tpu", "--out", "{tmp}/n"], "device must be"),
    Case("sample on cuda", [*SAMPLE, "--device", "cuda"], "--device cpu"),
    Case("sample on a tpu", [*SAMPLE, "--device", "tpu"], "unknown device 'tpu'"),
    # --- the run folder ---
    Case("out is a file", [*NEW, "--out", "{run}/config.json"], "is a file, not a folder"),
    Case("out below a file", [*NEW, "--out", "{run}/config.json/sub"], "is a file, not a"),
    Case("out holds a run", [*NEW, "--out", "{run}"], "already holds a run"),
    Case("resume and overwrite", [*RESUME, "--overwrite"], "give one"),
    Case("resume nothing", ["train", "--out", "{tmp}/empty", "--resume"], "nothing to resume",
         prepare=empty_folder),
    Case("config.json not JSON", RESUME, "config.json is not valid JSON",
         prepare=write("run/config.json", '{"model": {"n_layer": 1,')),
    Case("config.json empty", RESUME, "config.json is not valid JSON",
         prepare=write("run/config.json", "")),
    Case("config.json without keys", RESUME, 'lacks its "model" and "train"',
         prepare=write("run/config.json", "{}")),
    Case("config.json not an object", RESUME, 'lacks its "model"',
         prepare=write("run/config.json", "[1, 2]")),
    Case("config.json unknown field", RESUME, "config.json: unknown setting 'n_layers'",
         prepare=write("run/config.json", '{"model": {"n_layers": 1}, "train": {}}')),
    Case("config.json bad value", RESUME, "batch_size must be a positive integer, got -4 (the",
         prepare=write("run/config.json", '{"model": {}, "train": {"batch_size": -4}}')),
    Case("config.json not UTF-8", RESUME, "config.json is not UTF-8",
         prepare=write("run/config.json", b"\xff\xfe{}")),
    Case("truncated last checkpoint", RESUME, "not a readable tinygpt checkpoint",
         prepare=truncate("last.safetensors")),
    Case("foreign last checkpoint", RESUME, "not a tinygpt checkpoint",
         prepare=foreign("last.safetensors")),
    Case("last checkpoint of another shape", RESUME, "different model config",
         prepare=reshape("last.safetensors")),
    Case("best checkpoint as last", RESUME, "cannot be resumed", prepare=best_as_last),
    Case("resume with another shape", [*RESUME, "--n-layer", "3"], "different model config"),
    # --- data ---
    Case("data with a wrong sha256", [*NEW, "--out", "{tmp}/n"], "sha256 is",
         prepare=data_dir_with(b"To be, or not to be"), env={"TINYGPT_DATA_DIR": "{tmp}/data"}),
    Case("empty data file", [*NEW, "--out", "{tmp}/n"], "Delete it to download",
         prepare=data_dir_with(b""), env={"TINYGPT_DATA_DIR": "{tmp}/data"}),
    Case("data file is a folder", [*NEW, "--out", "{tmp}/n"], "is not a file",
         prepare=data_dir_as_folder, env={"TINYGPT_DATA_DIR": "{tmp}/data"}),
    Case("data dir is a file", [*NEW, "--out", "{tmp}/n"], "is a file, not a folder",
         env={"TINYGPT_DATA_DIR": "{run}/config.json"}),
    Case("data missing offline", [*NEW, "--out", "{tmp}/n"], "Could not download",
         prepare=data_dir_with(None), env={"TINYGPT_DATA_DIR": "{tmp}/data", **OFFLINE}),
    Case("vocabulary missing offline", [*SAMPLE, "--prompt", "x"], "TIKTOKEN_CACHE_DIR",
         prepare=empty_folder, env={"TIKTOKEN_CACHE_DIR": "{tmp}/empty", **OFFLINE}),
    # --- checkpoints given to sample ---
    Case("no such checkpoint", ["sample", "--checkpoint", "{tmp}/nowhere"], "no checkpoint at"),
    Case("run folder without best", ["sample", "--checkpoint", "{tmp}/empty"], "no checkpoint",
         prepare=empty_folder),
    Case("truncated checkpoint", SAMPLE, "not a readable", prepare=truncate("best.safetensors")),
    Case("foreign checkpoint", SAMPLE, "not a tinygpt checkpoint",
         prepare=foreign("best.safetensors")),
    Case("checkpoint of another shape", SAMPLE, "does not fit its own config",
         prepare=reshape("best.safetensors")),
    Case("text file as checkpoint", ["sample", "--checkpoint", "{run}/config.json"],
         "not a readable tinygpt checkpoint"),
    Case("checkpoint flag missing", ["sample", "--prompt", "x"], "required: --checkpoint"),
    # --- sampling flags and prompts ---
    Case("negative temperature", [*SAMPLE, "--temperature", "-1"], "temperature must be >= 0"),
    Case("top-p above 1", [*SAMPLE, "--top-p", "1.5"], "top_p must be in (0, 1]"),
    Case("top-k of 0", [*SAMPLE, "--top-k", "0"], "top_k must be >= 1"),
    Case("no new tokens", [*SAMPLE, "--max-new-tokens", "0"], "--max-new-tokens must be >= 1"),
    Case("samples not a number", [*SAMPLE, "--num-samples", "two"], "invalid int value"),
    Case("prompt not UTF-8", [*SAMPLE, "--prompt", b"caf\xe9".decode("utf-8", "surrogateescape")],
         "--prompt is not valid UTF-8"),
    # --- found by a black-box review: each once refused too late, or unclearly ---
    Case("empty out", [*NEW, "--out", ""], "argument --out: is empty"),
    Case("preset with resume", [*RESUME, "--preset", "seed"], "--preset does not apply"),
    Case("window longer than the text", [*NEW, "--block-size", "100000000", "--out", "{run}",
         "--overwrite"], "use a smaller --block-size"),
    Case("vocabulary left empty", [*NEW, "--vocab-min-count", "100000000", "--out", "{tmp}/n"],
         "use a smaller --vocab-min-count"),
    Case("seed too large", [*NEW, "--seed", "9" * 25, "--out", "{tmp}/n"], "seed must be below"),
    Case("sample seed too large", [*SAMPLE, "--seed", "9" * 25], "seed must be between"),
    Case("temperature overflows", [*SAMPLE, "--temperature", "1e308"], "between 1e-4 and 1e4"),
    Case("metrics.jsonl a folder", RESUME, "metrics.jsonl is not a regular file",
         prepare=lambda run, tmp: ((run / "metrics.jsonl").unlink(),
                                   (run / "metrics.jsonl").mkdir())),
    Case("last checkpoint a folder", RESUME, "last.safetensors is not a regular file",
         prepare=lambda run, tmp: ((run / "last.safetensors").unlink(),
                                   (run / "last.safetensors").mkdir())),
    Case("truncated best with resume", RESUME, "best.safetensors is not a readable",
         prepare=truncate("best.safetensors")),
    Case("checkpoint /dev/null", ["sample", "--checkpoint", "/dev/null"], "not a regular file"),
    Case("out a dangling link", [*NEW, "--out", "{tmp}/link"], "symbolic link to nothing",
         prepare=lambda run, tmp: (tmp / "link").symlink_to(tmp / "nowhere")),
    Case("damaged vocabulary", SAMPLE, "its vocabulary",
         prepare=lambda run, tmp: damage_vocab(run)),
    Case("weights of NaN", SAMPLE, "NaN or infinite", prepare=lambda run, tmp: nan_weights(run)),
    # --- the machine: a disk that fills up while a checkpoint is written ---
    Case("disk full during a save", [*RESUME, "--max-steps", "6"], "File too large", status=1,
         limit_file_size=30_000, unchanged=False),
]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def pristine_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pristine") / "run"
    model = GPTConfig(block_size=16, n_layer=1, n_head=2, n_embd=16)
    config = TrainConfig(batch_size=2, max_steps=4, eval_interval=2, eval_batches=1)
    train(model, config, out, progress=False)
    return out


def run_case(case: Case, pristine: Path, root: Path, cli) -> dict:
    run, tmp = root / "run", root / "tmp"
    shutil.copytree(pristine, run)
    tmp.mkdir()
    if case.prepare:
        case.prepare(run, tmp)
    before = snapshot(run)
    fill = {"{run}": str(run), "{tmp}": str(tmp)}

    def filled(text: str) -> str:
        for key, value in fill.items():
            text = text.replace(key, value)
        return text

    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("TINYGPT_DEBUG", None)
    env.update({k: filled(v) for k, v in case.env.items()})
    args = [filled(a) for a in case.args]
    proc = cli.run(args, root / "streams", env=env, limit_file_size=case.limit_file_size)
    return {"status": proc.returncode, "stderr": proc.stderr, "before": before,
            "after": snapshot(run), "run": run}  # fmt: skip


@pytest.fixture(scope="module")
def outcomes(pristine_run, tmp_path_factory, warm_pool) -> dict[str, dict]:
    """Every case, two at a time, each in a process forked from a warm one (most of a cold
    start is importing torch)."""
    roots = {case.name: tmp_path_factory.mktemp("case") for case in CASES}

    def one(case: Case) -> dict:
        with warm_pool.borrow() as cli:
            return run_case(case, pristine_run, roots[case.name], cli)

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {c.name: pool.submit(one, c) for c in CASES}
        return {name: future.result() for name, future in futures.items()}


def test_the_table_is_long_enough():
    assert len(CASES) >= 40 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_clear_line_and_loses_nothing(case, outcomes):
    outcome = outcomes[case.name]
    err = outcome["stderr"]
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tinygpt: error: "), err
    assert case.words in lines[0], lines[0]
    assert outcome["status"] == case.status, err
    if case.unchanged:
        assert outcome["after"] == outcome["before"], "the run folder changed"
    else:  # the failed save left the last good checkpoint whole, and no temporary files
        assert ckpt.load(outcome["run"] / "last.safetensors").meta["step"] == 4
        assert outcome["after"]["last.safetensors"] == outcome["before"]["last.safetensors"]
        assert not [p for p in outcome["run"].iterdir() if p.name.endswith(".tmp")]


def test_debug_shows_the_traceback(pristine_run, tmp_path):
    for how in (["--debug"], []):
        env = {**os.environ, "TINYGPT_DEBUG": "" if how else "1"}
        proc = subprocess.run(
            [sys.executable, "-m", "tinygpt", *SAMPLE[:2], str(tmp_path / "nowhere"), *how],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert proc.returncode == 2
        assert "Traceback" in proc.stderr and "CheckpointError" in proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith("tinygpt: error: no checkpoint")


@pytest.mark.parametrize(
    "prompt, notice",
    [("", None), ("to be or not to be " * 10, "the model sees only its last 16")],
    ids=["empty prompt", "prompt longer than the window"],
)
def test_edge_prompts_are_accepted(pristine_run, prompt, notice):
    before = snapshot(pristine_run)
    proc = subprocess.run(
        [sys.executable, "-m", "tinygpt", "sample", "--checkpoint", str(pristine_run),
         "--prompt", prompt, "--max-new-tokens", "3", "--seed", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout.startswith(prompt) and len(proc.stdout) > len(prompt)
    if notice:
        assert notice in proc.stderr
    assert snapshot(pristine_run) == before


@pytest.mark.parametrize(
    "err, words, status",
    [
        (OSError(28, "No space left on device", "/runs/x/last.safetensors"), "free some space", 1),
        (PermissionError(13, "Permission denied", "/runs/x"), "check its permissions", 2),
        (OSError(30, "Read-only file system", "/mnt/ro/run"), "choose another", 2),
        (FileNotFoundError(2, "No such file or directory", "/nowhere"), "/nowhere", 2),
    ],
)
def test_file_system_failures_read_as_one_line(err, words, status):
    """Failures a test running as root cannot cause (permissions, a read-only or full disk)."""
    from tinygpt.cli import describe_error

    message, code = describe_error(err)
    assert words in message and err.filename in message and "\n" not in message
    assert code == status


def test_an_unexpected_error_is_one_line_that_asks_for_a_report(monkeypatch, capsys):
    from tinygpt import cli

    def broken(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli, "run_sample", broken)
    assert cli.main(["sample", "--checkpoint", "x"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unexpected ZeroDivisionError" in err and "--debug" in err
