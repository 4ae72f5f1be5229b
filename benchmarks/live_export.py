"""What storing the live model's weights in float16 costs, measured on the run it came from.

Exports the run's best checkpoint twice (float32 and float16 weights) into a temporary folder,
then compares the float16 file's model (``tinygpt.export.half_rounded``, which equals
``model_from_onnx`` of that file) with the checkpoint's own float32 model: the loss over the
whole validation split, the largest logit difference on it, and greedy continuations of a few
prompts. Writes ``book/results/live/export.json``, which Chapter 7 prints.

    python benchmarks/live_export.py runs/speedrun/speedrun+wd1.6-10min-s0
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from pathlib import Path

import torch

from tinygpt import checkpoint as ckpt
from tinygpt import files
from tinygpt.export import export_onnx, half_rounded
from tinygpt.generate import SamplingConfig, TextGenerator
from tinygpt.runs import model_from_checkpoint
from tinygpt.train import full_validation, prepare_corpus

REPO = Path(__file__).resolve().parents[1]
PROMPTS = [
    "Mary had a little",
    "ROMEO:\n",
    "First Citizen:\n",
    "To be, or not to be",
    "KING HENRY:",
]


@torch.no_grad()
def largest_logit_gap(a, b, ids: torch.Tensor, window: int) -> float:
    """max |logits_a - logits_b| over every validation window."""
    gap = 0.0
    for start in range(0, len(ids) - window, window):
        x = ids[start : start + window].unsqueeze(0)
        gap = max(gap, float((a(x)[0] - b(x)[0]).abs().max()))
    return gap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a run folder (its best.safetensors)")
    parser.add_argument(
        "--out", type=Path, default=REPO / "book" / "results" / "live" / "export.json"
    )
    args = parser.parse_args()
    source = args.run / "best.safetensors"
    saved = ckpt.load(source)
    full = model_from_checkpoint(saved).eval()
    half = half_rounded(full)
    with tempfile.TemporaryDirectory() as tmp:
        sizes = {
            name: export_onnx(full, Path(tmp) / f"{name}.onnx", half_weights=name == "float16")
            for name in ("float32", "float16")
        }
    corpus = prepare_corpus(True, saved.meta["train_config"]["vocab_min_count"])
    losses = {
        name: full_validation(model, corpus, torch.device("cpu"))["val_loss"]
        for name, model in (("float32", full), ("float16", half))
    }
    gap = largest_logit_gap(full, half, corpus.val, full.config.block_size)
    generators = [TextGenerator(m, corpus.vocab) for m in (full, half)]
    greedy = SamplingConfig(temperature=0)
    same = [a(p, 64, greedy) == b(p, 64, greedy) for p in PROMPTS for a, b in [generators]]
    result = {
        "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "file_bytes": sizes,
        "val_loss": losses,
        "val_tokens": int(len(corpus.val) - 1),
        "largest_logit_gap": gap,
        "greedy_64_same": sum(same),
        "greedy_prompts": len(PROMPTS),
    }
    with files.atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
