"""Ablations, each run trained by the CLI on Tiny Shakespeare, one after the other (so each has
the machine to itself), and compared on the full validation split.

``--study positions`` (Chapter 8): learned positions vs RoPE, MHA vs GQA vs MQA, and the full
Llama set, for the same wall-clock budget. Every run starts from the ``default`` preset
(4 layers, C 192, 4 heads, window 128) and changes only what its name says; ``llama`` is the
``llama`` preset (RoPE + GQA with 2 key/value heads + RMSNorm + SwiGLU, no biases).

``--study fixes`` (Chapter 6): the six changes that turn the original ``seed`` configuration
into the ``default`` recipe, added one at a time to the seed (``+tied`` … ``+width``, which *is*
the default) and removed one at a time from the default (``default-tied`` …). Give
``--minutes`` for equal wall-clock time or ``--steps`` for equal steps (every run takes 4,096
tokens a step, so equal steps are equal tokens). Early stopping is off in every run
(``--patience 0``), so each one uses its whole budget.

    python benchmarks/ablation.py --minutes 4 --out runs/ablation
    cp runs/ablation/summary.json book/results/ablation.json   # what Chapter 8 shows
    python benchmarks/ablation.py --study fixes --minutes 4 --out runs/fixes-time
    python benchmarks/ablation.py --study fixes --steps 300 --out runs/fixes-steps
"""

from __future__ import annotations

import argparse
from pathlib import Path

from quality import report, train_and_measure

POSITIONS = {
    "learned": ["--preset", "default"],
    "rope": ["--preset", "default", "--pos-embedding", "rope"],
    "rope+gqa2": ["--preset", "default", "--pos-embedding", "rope", "--n-kv-head", "2"],
    "rope+mqa": ["--preset", "default", "--pos-embedding", "rope", "--n-kv-head", "1"],
    "llama": ["--preset", "llama"],
}

# Each fix: the flags that turn it on (from the seed) and the flags that turn it off (from the
# default). The schedule fix is the default's whole optimisation recipe: warmup, cosine decay
# from a 2x higher peak, and gradient clipping. The context fix keeps 4,096 tokens a step.
FIXES = {
    "tied": (["--tie-weights", "true"], ["--tie-weights", "false"]),
    "vocab": (["--restrict-vocab", "true"], ["--restrict-vocab", "false"]),
    "regularise": (
        ["--dropout", "0.1", "--weight-decay", "0.1"],
        ["--dropout", "0", "--weight-decay", "0"],
    ),
    "schedule": (
        ["--learning-rate", "2e-3", "--min-lr", "1e-4", "--warmup-steps", "50",
         "--lr-schedule", "cosine", "--grad-clip", "1.0"],
        ["--learning-rate", "1e-3", "--min-lr", "1e-3", "--warmup-steps", "0",
         "--lr-schedule", "constant", "--grad-clip", "0"],
    ),  # fmt: skip
    "context": (["--block-size", "128", "--batch-size", "32"],
                ["--block-size", "64", "--batch-size", "64"]),  # fmt: skip
    "width": (["--n-embd", "192"], ["--n-embd", "128"]),
}


def fixes_runs() -> dict[str, list[str]]:
    """seed, +tied, …, +width (the default), then default-tied, …, default-context.
    default-width is +context (the same settings), so it is run once, under that name."""
    runs = {"seed": ["--preset", "seed", "--patience", "0"]}
    flags = list(runs["seed"])
    for name, (turn_on, _) in FIXES.items():
        flags += turn_on
        runs[f"+{name}"] = list(flags)
    for name, (_, turn_off) in list(FIXES.items())[:-1]:
        runs[f"default-{name}"] = ["--preset", "default", "--patience", "0", *turn_off]
    return runs


STUDIES = {"positions": POSITIONS, "fixes": fixes_runs()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", choices=list(STUDIES), default="positions")
    parser.add_argument("--minutes", type=float, default=4.0, help="budget per run")
    parser.add_argument("--steps", type=int, default=0, help="steps per run instead of minutes")
    parser.add_argument("--runs", nargs="+", default=None, help="a subset, by name")
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"))
    args = parser.parse_args()
    variants = STUDIES[args.study]
    unknown = set(args.runs or []) - set(variants)
    if unknown:
        parser.error(f"unknown run {sorted(unknown)[0]!r}; choose from {', '.join(variants)}")
    results = {
        name: train_and_measure(name, variants[name], args.minutes, args.out, args.steps)
        for name in args.runs or variants
    }
    budget = f"{args.steps} steps" if args.steps else f"{args.minutes:g} minutes"
    report(results, budget, args.out)


if __name__ == "__main__":
    main()
