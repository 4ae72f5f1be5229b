"""Quality under a wall-clock budget: Chapter 9's speedrun recipe, Chapter 6's default recipe
and the original (seed) config.

Each run is the real CLI (`tinygpt train --preset P [flags] --max-minutes M --out DIR/NAME`)
with the same budget, one after the other; then all are compared on the *full* validation split
(every token once, loss in GPT-2's token space; nats per token and per character), with their
throughput, their KV-cache size and a sample from each.

    python benchmarks/quality.py                 # 10 minutes per preset, three presets
    python benchmarks/quality.py --presets speedrun   # only the speedrun's final recipe
    python benchmarks/quality.py --minutes 2 --out /tmp/quality
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from tinygpt.generate import SamplingConfig, TextGenerator
from tinygpt.runs import read_metrics

PROMPT = "Leaving this place is something"


def train_and_measure(
    name: str, flags: list[str], minutes: float, out: Path, steps: int = 0
) -> dict:
    """Train one run through the CLI for ``minutes`` (or, given ``steps``, for that many steps
    whatever the time); its final metrics plus a sample."""
    run_dir = out / name
    command = [sys.executable, "-m", "tinygpt", "train", *flags, "--out", str(run_dir)]
    if steps:
        command += ["--max-steps", str(steps), "--max-minutes", "0", "--no-progress"]
    else:
        command += ["--max-minutes", str(minutes), "--max-steps", "1000000", "--no-progress"]
    command += ["--overwrite"]  # a benchmark run replaces the last one of its name
    print("$ tinygpt", " ".join(command[3:]), flush=True)
    subprocess.run(command, check=True)
    return measure(run_dir, flags)


def measure(run_dir: Path, flags: list[str]) -> dict:
    """A finished run's final metrics (full validation split), its size and a sample."""
    final = [m for m in read_metrics(run_dir / "metrics.jsonl") if m["kind"] == "final"][-1]
    generator = TextGenerator.from_checkpoint(run_dir / "best.safetensors")
    sample = generator(PROMPT, 60, SamplingConfig(temperature=0.8, top_k=50, seed=0))[0]
    config = generator.model.config
    # fp32 KV cache: keys and values, every layer, nkv heads of hs numbers, per token
    cache_bytes = 2 * config.n_layer * config.kv_heads * config.head_size * 4
    return {
        **final,
        "flags": " ".join(flags),
        "parameters": generator.model.num_parameters(),
        "kv_cache_bytes_per_token": cache_bytes,
        "sample": sample,
    }


def report(
    results: dict[str, dict], budget: str, out: Path, filename: str = "summary.json"
) -> None:
    """Print the comparison table and the samples; write ``OUT/filename``."""
    first = next(iter(results.values()))
    print(
        f"\nBudget: {budget} per run, full validation split "
        f"({first['val_tokens']} tokens, {first['val_chars']} characters)\n"
    )
    print(
        f"{'run':<18}{'params':>10}{'steps':>8}{'best step':>11}{'nats/token':>12}"
        f"{'nats/char':>11}{'tokens/s':>10}{'KV B/token':>12}"
    )
    for name, r in results.items():
        print(
            f"{name:<18}{r['parameters']:>10}{r['steps_run']:>8}{r['step']:>11}"
            f"{r['val_loss']:>12.4f}{r['val_loss_per_char']:>11.4f}{r['tokens_per_s']:>10.0f}"
            f"{r['kv_cache_bytes_per_token']:>12}"
        )
    for name, r in results.items():
        print(f"\n--- {name} (temperature 0.8, top-k 50, seed 0) ---\n{r['sample']}")
    (out / filename).write_text(json.dumps(results, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="budget per preset")
    parser.add_argument("--presets", nargs="+", default=["speedrun", "default", "seed"])
    parser.add_argument("--out", type=Path, default=Path("runs/quality"))
    args = parser.parse_args()
    results = {
        name: train_and_measure(name, ["--preset", name], args.minutes, args.out)
        for name in args.presets
    }
    report(results, f"{args.minutes:g} minutes", args.out)


if __name__ == "__main__":
    main()
