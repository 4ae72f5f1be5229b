"""The ten-minute speedrun's record log (issue 17): one row per change to the recipe, measured.

A row is a set of flags for ``tinygpt train``, trained for the same wall-clock budget once per
seed, one run after another on a machine with nothing else running. Each run is scored on the
*full* validation split in GPT-2's token space (the ``final`` record that ``train`` writes; tokens
outside a restricted vocabulary are charged fairly), so rows with different vocabularies compare.
The row keeps every seed's loss, steps, epochs and tokens/s, and the median it is judged by.

    python benchmarks/speedrun.py run llama --flags="--preset llama"     # 3 seeds x 10 minutes
    python benchmarks/speedrun.py collect llama --flags="--preset llama" --runs runs/speedrun
    python benchmarks/speedrun.py show

``run`` trains (into ``--runs``, default ``runs/speedrun``), then does what ``collect`` does:
copy each run's config and metrics into ``book/results/speedrun/runs/NAME-sSEED/`` and append
the row to ``book/results/speedrun/records.jsonl``. ``collect`` records runs trained before.

    python benchmarks/speedrun.py ensemble +ens2 --members 2 --flags="--preset speedrun"

``ensemble`` spends each seed's budget on ``--members`` K models of ``minutes / K`` each (seeds
K*seed ... K*seed + K - 1), one after the other, and scores the mean of their probabilities
(``tinygpt.averaging.Ensemble``) on the full validation split, beside its best member.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from tinygpt.runs import read_metrics

RESULTS = Path(__file__).resolve().parents[1] / "book" / "results" / "speedrun"
SEEDS = (0, 1, 2)


def run_dir(runs: Path, name: str, seed: int) -> Path:
    return runs / f"{name}-s{seed}"


def train(name: str, flags: list[str], minutes: float, seeds: tuple[int, ...], runs: Path):
    """Train one run per seed through the CLI, one after the other."""
    for seed in seeds:
        _train_one(f"{name}-s{seed}", flags, minutes, seed, runs)


def _train_one(folder: str, flags: list[str], minutes: float, seed: int, runs: Path) -> None:
    command = [sys.executable, "-m", "tinygpt", "train", *flags, "--seed", str(seed)]
    command += ["--max-minutes", f"{minutes:g}", "--max-steps", "1000000", "--no-progress"]
    command += ["--overwrite", "--out", str(runs / folder)]
    print("$ tinygpt", shlex.join(command[3:]), flush=True)
    subprocess.run(command, check=True)


def seed_result(folder: Path) -> dict:
    """One run's numbers: its final full-validation record, and the epochs it trained."""
    metrics = read_metrics(folder / "metrics.jsonl")
    finals = [m for m in metrics if m["kind"] == "final"]
    if not finals:
        raise ValueError(f"{folder} has no final record: did the run finish?")
    final = finals[-1]
    settings = json.loads((folder / "config.json").read_text())
    model, train_config = settings["model"], settings["train"]
    tokens_per_step = train_config["batch_size"] * model["block_size"]
    train_tokens = final.get("train_tokens") or _train_tokens()  # older runs lack the field
    return {
        "seed": train_config["seed"],
        "nats_per_token": final["val_loss"],
        "nats_per_char": final["val_loss_per_char"],
        "steps": final["steps_run"],
        "best_step": final["step"],
        "tokens_per_s": final["tokens_per_s"],
        "tokens_trained": final["steps_run"] * tokens_per_step,
        "epochs": final["steps_run"] * tokens_per_step / train_tokens,
    }


def _train_tokens() -> int:
    """Tokens in the training split (the same for every vocabulary: one id per GPT-2 token)."""
    from tinygpt.train import prepare_corpus

    return len(prepare_corpus(restrict_vocab=False).train)


PROMPT = "Leaving this place is something"  # the original project's prompt (Chapter 6)


def sample_from(folder: Path, tokens: int = 60) -> str:
    """A sample from a run's best checkpoint, at the book's usual settings, fixed seed."""
    from tinygpt.generate import SamplingConfig, TextGenerator

    generator = TextGenerator.from_checkpoint(folder / "best.safetensors")
    return generator(PROMPT, tokens, SamplingConfig(temperature=0.8, top_k=50, seed=0))[0]


def make_row(name: str, flags: list[str], minutes: float, results: list[dict], note: str) -> dict:
    """A record-log row: every seed, and the median nats/token it is judged by."""
    losses = [r["nats_per_token"] for r in results]
    return {
        "name": name,
        "command": shlex.join(["tinygpt", "train", *flags, "--max-minutes", f"{minutes:g}"]),
        "minutes": minutes,
        "seeds": results,
        "median_nats_per_token": statistics.median(losses),
        "median_nats_per_char": statistics.median(r["nats_per_char"] for r in results),
        "median_tokens_per_s": statistics.median(r["tokens_per_s"] for r in results),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {_cpu_count()} CPU cores, CPU",
        "note": note,
    }


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def collect(name, flags, minutes, seeds, runs: Path, results_dir: Path, note: str) -> dict:
    """Copy each seed's config and metrics into the results, and append the row."""
    found = []
    for seed in seeds:
        source = run_dir(runs, name, seed)
        kept = results_dir / "runs" / f"{name}-s{seed}"
        kept.mkdir(parents=True, exist_ok=True)
        for file in ("config.json", "metrics.jsonl"):
            shutil.copyfile(source / file, kept / file)
        found.append(seed_result(kept))
    row = make_row(name, flags, minutes, found, note)
    if (run_dir(runs, name, seeds[0]) / "best.safetensors").is_file():
        row["sample"] = {"seed": seeds[0], "prompt": PROMPT,
                         "text": sample_from(run_dir(runs, name, seeds[0]))}  # fmt: skip
    with (results_dir / "records.jsonl").open("a") as log:
        log.write(json.dumps(row) + "\n")
    return row


def read_records(results_dir: Path = RESULTS) -> list[dict]:
    path = results_dir / "records.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def train_ensemble(name, flags, minutes, seeds, members: int, runs: Path, results_dir: Path,
                   note: str) -> dict:  # fmt: skip
    """Per seed: K members of minutes / K each, trained one after the other, then scored."""
    found = []
    for seed in seeds:
        folders = []
        for k in range(members):
            member = f"{name}-s{seed}-m{k}"
            folders.append(runs / member)
            _train_one(member, flags, minutes / members, members * seed + k, runs)
        found.append(score_ensemble(folders, seed, results_dir / "runs", name))
    row = make_row(name, flags, minutes, found, note)
    row["members"] = members
    row["command"] += f"  # {members} members of {minutes / members:g} minutes each"
    with (results_dir / "records.jsonl").open("a") as log:
        log.write(json.dumps(row) + "\n")
    return row


def score_ensemble(folders: list[Path], seed: int, kept_runs: Path, name: str) -> dict:
    """The members' best checkpoints, scored together; each member's own numbers beside."""
    import torch

    from tinygpt import checkpoint as ckpt
    from tinygpt.averaging import Ensemble
    from tinygpt.runs import model_from_checkpoint
    from tinygpt.train import full_validation, prepare_corpus

    results, models = [], []
    for folder in folders:
        kept = kept_runs / folder.name
        kept.mkdir(parents=True, exist_ok=True)
        for file in ("config.json", "metrics.jsonl"):
            shutil.copyfile(folder / file, kept / file)
        results.append(seed_result(kept))
        models.append(model_from_checkpoint(ckpt.load(folder / "best.safetensors")))
    settings = json.loads((folders[0] / "config.json").read_text())["train"]
    corpus = prepare_corpus(settings["restrict_vocab"], settings["vocab_min_count"])
    with torch.no_grad():
        scored = full_validation(Ensemble(models), corpus, torch.device("cpu"), settings["dtype"])
    best = min(results, key=lambda r: r["nats_per_token"])
    return {
        "seed": seed,
        "nats_per_token": scored["val_loss"],
        "nats_per_char": scored["val_loss_per_char"],
        "best_member_nats_per_token": best["nats_per_token"],
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in results),
        "steps": sum(r["steps"] for r in results),  # all members' steps
        "tokens_trained": sum(r["tokens_trained"] for r in results),
        "epochs": sum(r["epochs"] for r in results),
        "members": results,
    }


def show(records: list[dict]) -> None:
    print(f"{'row':<22}{'median nats/token':>18}{'nats/char':>10}{'tokens/s':>10}  seeds")
    for row in records:
        seeds = ", ".join(f"{s['nats_per_token']:.4f}" for s in row["seeds"])
        print(
            f"{row['name']:<22}{row['median_nats_per_token']:>18.4f}"
            f"{row['median_nats_per_char']:>10.4f}{row['median_tokens_per_s']:>10.0f}  {seeds}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["run", "collect", "show", "ensemble"])
    parser.add_argument("name", nargs="?", help="the row's name, e.g. llama or +muon")
    parser.add_argument("--flags", default="", help="flags for tinygpt train, in one string")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--runs", type=Path, default=Path("runs/speedrun"))
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--note", default="", help="what the change is, and why")
    parser.add_argument("--members", type=int, default=2, help="ensemble: models per seed")
    args = parser.parse_args()
    if args.action == "show":
        show(read_records(args.results))
        return
    if not args.name:
        parser.error(f"{args.action} needs a row name")
    flags, seeds = shlex.split(args.flags), tuple(args.seeds)
    if args.action == "ensemble":
        row = train_ensemble(args.name, flags, args.minutes, seeds, args.members, args.runs,
                             args.results, args.note)  # fmt: skip
        show([row])
        return
    if args.action == "run":
        train(args.name, flags, args.minutes, seeds, args.runs)
    row = collect(args.name, flags, args.minutes, seeds, args.runs, args.results, args.note)
    show([row])


if __name__ == "__main__":
    main()
