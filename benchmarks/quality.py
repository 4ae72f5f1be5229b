"""Quality under a wall-clock budget: the default recipe against the original (seed) config.

Each preset is trained by the real CLI (`tinygpt train --preset P --max-minutes M --out DIR/P`)
for the same budget, one after the other, then both are compared on the *full* validation split
(every token once, loss in GPT-2's token space; nats per token and per character), with their
throughput and a sample from each.

    python benchmarks/quality.py                 # 10 minutes per preset
    python benchmarks/quality.py --minutes 2 --out /tmp/quality
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from tinygpt.generate import SamplingConfig, TextGenerator
from tinygpt.train import read_metrics

PROMPT = "Leaving this place is something"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="budget per preset")
    parser.add_argument("--presets", nargs="+", default=["default", "seed"])
    parser.add_argument("--out", type=Path, default=Path("runs/quality"))
    args = parser.parse_args()

    rows = []
    for name in args.presets:
        out = args.out / name
        command = [
            sys.executable,
            "-m",
            "tinygpt",
            "train",
            "--preset",
            name,
            "--out",
            str(out),
            "--max-minutes",
            str(args.minutes),
            "--max-steps",
            "1000000",
            "--no-progress",
        ]
        print("$", " ".join(command[2:]), flush=True)
        subprocess.run(command, check=True)
        final = [m for m in read_metrics(out / "metrics.jsonl") if m["kind"] == "final"][-1]
        generator = TextGenerator.from_checkpoint(out / "best.safetensors")
        sample = generator(PROMPT, 60, SamplingConfig(temperature=0.8, top_k=50, seed=0))[0]
        rows.append((name, final, sample))

    print(
        f"\nBudget: {args.minutes:g} minutes per preset, full validation split "
        f"({rows[0][1]['val_tokens']} tokens, {rows[0][1]['val_chars']} characters)\n"
    )
    print(
        f"{'preset':<10}{'steps':>8}{'best step':>11}{'nats/token':>12}{'nats/char':>11}"
        f"{'tokens/s':>10}"
    )
    for name, final, _ in rows:
        print(
            f"{name:<10}{final['steps_run']:>8}{final['step']:>11}{final['val_loss']:>12.4f}"
            f"{final['val_loss_per_char']:>11.4f}{final['tokens_per_s']:>10.0f}"
        )
    for name, _, sample in rows:
        print(f"\n--- {name} (temperature 0.8, top-k 50, seed 0) ---\n{sample}")
    (args.out / "summary.json").write_text(
        json.dumps({name: {**final, "sample": sample} for name, final, sample in rows}, indent=2)
        + "\n"
    )


if __name__ == "__main__":
    main()
