"""Chapter 8's ablation: learned positions vs RoPE, MHA vs GQA vs MQA, and the full Llama set,
each trained by the CLI for the same wall-clock budget on Tiny Shakespeare.

Every run starts from the ``default`` preset (4 layers, C 192, 4 heads, window 128) and changes
only what its name says; ``llama`` is the ``llama`` preset (RoPE + GQA with 2 key/value heads +
RMSNorm + SwiGLU, no biases). Runs go one after the other, so each has the machine to itself.

    python benchmarks/ablation.py --minutes 4 --out runs/ablation
    cp runs/ablation/summary.json book/results/ablation.json   # what Chapter 8 shows
"""

from __future__ import annotations

import argparse
from pathlib import Path

from quality import report, train_and_measure

VARIANTS = {
    "learned": ["--preset", "default"],
    "rope": ["--preset", "default", "--pos-embedding", "rope"],
    "rope+gqa2": ["--preset", "default", "--pos-embedding", "rope", "--n-kv-head", "2"],
    "rope+mqa": ["--preset", "default", "--pos-embedding", "rope", "--n-kv-head", "1"],
    "llama": ["--preset", "llama"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=4.0, help="budget per run")
    parser.add_argument("--runs", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"))
    args = parser.parse_args()
    results = {
        name: train_and_measure(name, VARIANTS[name], args.minutes, args.out)
        for name in args.runs
    }
    report(results, args.minutes, args.out)


if __name__ == "__main__":
    main()
