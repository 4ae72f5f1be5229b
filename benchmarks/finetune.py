"""Chapter 10's measurements: fine-tuning the ten-minute model on the two Tiny Shakespeare tasks.

Word order (classification; the test split is 870 speech openings from text the base never
trained on, each as written and with two words swapped): the majority class, logistic
regressions (scikit-learn) on words and on words plus word pairs, the same network from random
weights, the pretrained model with only a new head trained, with everything trained, and with
LoRA at two ranks, all for the same number of steps on the same batches. Instructions (say the
blanked word, the first word or the last word of a passage): the pretrained model untuned, then
tuned with the loss on the response only and on every token. Accuracies come with 95% Wilson
intervals; every run records its trainable parameters, optimizer state and tokens/s.

    python benchmarks/finetune.py                          # about 35 minutes on 2 cores
    python benchmarks/finetune.py --base runs/llama --steps 50 --results /tmp/ft   # a quick look
    python benchmarks/finetune.py --classify reply --steps 300 --only baselines,scratch,head,full \
        --results book/results/finetune/reply          # the first task tried: all at chance

The base is a ``tinygpt train`` run folder; without one, it trains Chapter 8's model for ten
minutes first (``tinygpt train --preset llama --max-minutes 10 --seed 0``).
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from tinygpt import files, tasks
from tinygpt import finetune as ft
from tinygpt.data import load_text
from tinygpt.train import read_metrics

RESULTS = Path("book/results/finetune")
DEFAULT_BASE = Path("runs/speedrun/llama-s0")  # Chapter 9's record log: llama, seed 0


def base_run(path: Path) -> Path:
    if not (path / "best.safetensors").is_file():
        command = [sys.executable, "-m", "tinygpt", "train", "--preset", "llama"]
        command += ["--max-minutes", "10", "--seed", "0", "--no-progress", "--out", str(path)]
        print("$ tinygpt", " ".join(command[3:]), flush=True)
        subprocess.run(command, check=True)
    return path


def optimizer_bytes(model: torch.nn.Module) -> int:
    """AdamW keeps two moments per trainable number: 2 x 4 bytes each in float32."""
    return 8 * sum(p.numel() for p in model.parameters() if p.requires_grad)


def run(base: Path, config: ft.FinetuneConfig, data: dict, keep: int = 0) -> dict:
    """Fine-tune a fresh copy of the base; its curves, test score and costs."""
    generator, sha = ft.load_base(base)
    start = time.perf_counter()
    model, metrics = ft.fit(generator, config, data["train"], data["val"])
    seconds = time.perf_counter() - start
    eot = ft.add_end_of_text(generator) if config.task == "instruct" else None  # fit's token
    pad_id = eot if eot is not None else 0
    test, train = (ft.Encoded(generator, data[name], eot) for name in ("test", "train"))
    tokens = 0
    draws = torch.Generator().manual_seed(config.seed)  # fit's batches again, for counting
    for _ in range(config.steps):  # real tokens, padding not counted
        for i in torch.randint(len(train), (config.batch_size,), generator=draws).tolist():
            tokens += (
                len(train.rows[i])
                if config.task == "classify"
                else (len(train.prompts[i]) + len(train.responses[i]) - 1)
            )
    result = {
        "config": asdict(config),
        "base_sha256": sha,
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "all_parameters": sum(p.numel() for p in model.parameters()),
        "optimizer_bytes": optimizer_bytes(model),
        "seconds": seconds,
        "tokens_per_s": tokens / seconds,
        "curve": metrics,
    }
    if config.task == "classify":
        right = int((ft.predict(model, test, pad_id) == test.labels).sum())
        result.update(score(right, len(test)))
    else:
        generator.model = model
        answers = [ft.answer(generator, e.prompt) for e in data["test"]]
        result.update(exact_match(answers, data["test"]))
        result["test_loss"] = ft.mean_response_loss(model, test, pad_id)
        result["examples"] = [
            {"instruction": e.instruction, "input": e.input, "response": e.response, "answer": a}
            for e, a in list(zip(data["test"], answers))[:keep]
        ]
    return result


def exact_match(answers: list[str], examples: list) -> dict:
    """Exact match (answer, stripped, equals the response), overall and per instruction."""
    hits = [a.strip() == e.response for a, e in zip(answers, examples)]
    by = {
        i: score(
            sum(h for h, e in zip(hits, examples) if e.instruction == i),
            sum(e.instruction == i for e in examples),
        )  # fmt: skip
        for i in tasks.INSTRUCTIONS
    }
    return {**score(sum(hits), len(hits)), "by_instruction": by}


def score(right: int, n: int) -> dict:
    low, high = ft.wilson_interval(right, n)
    return {"test_correct": right, "test_n": n, "test_accuracy": right / n, "ci95": [low, high]}


def bag_of_words(data: dict, ngrams: int = 1) -> dict:
    """Logistic regression on counts of words (letters and apostrophes, lower-cased; for a reply
    pair, A's words and B's words kept apart), and with ``ngrams=2`` of neighbouring word pairs
    too; its regularisation C chosen on the validation examples."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    def words(examples):
        return [
            " ".join(
                f"{side}_{w}"
                for side, part in zip("ab", e.text.split("\n\n", 1))
                for w in re.findall(r"[a-z']+", part.lower())
            )
            for e in examples
        ]

    vectorizer = CountVectorizer(token_pattern=r"\S+", ngram_range=(1, ngrams), min_df=2)
    x = {
        k: (vectorizer.fit_transform if k == "train" else vectorizer.transform)(words(v))
        for k, v in data.items()
    }
    y = {k: [e.label for e in v] for k, v in data.items()}
    best = None
    for c in (0.01, 0.1, 1.0, 10.0):
        model = LogisticRegression(C=c, max_iter=2000).fit(x["train"], y["train"])
        val = model.score(x["val"], y["val"])
        if best is None or val > best[0]:
            best = (val, c, model)
    right = int((best[2].predict(x["test"]) == y["test"]).sum())
    return {
        "C": best[1],
        "val_accuracy": best[0],
        "features": x["train"].shape[1],
        **score(right, len(y["test"])),
    }


def untuned(base: Path, data: list) -> dict:
    """The pretrained model given the template but no tuning: its first generated word."""
    generator, _ = ft.load_base(base)
    ft.add_end_of_text(generator)
    answers = [ft.answer(generator, e.prompt) for e in data]
    first = [(a.split() or [""])[0].strip(".,;:!?") for a in answers]
    examples = [{"instruction": e.instruction, "input": e.input, "response": e.response,
                 "answer": a} for e, a in zip(data[:12], answers)]  # fmt: skip
    return {**exact_match(first, data), "examples": examples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, default=DEFAULT_BASE)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--only", default="", help="comma-separated run names (default: all)")
    parser.add_argument("--classify", choices=("order", "reply"), default="order")
    args = parser.parse_args()
    base = base_run(args.base)
    split = tasks.split_speeches(load_text())
    make = tasks.order_examples if args.classify == "order" else tasks.reply_examples
    reply = {k: make(v) for k, v in split.items()}  # the classification task's examples
    cloze = {k: tasks.instruction_examples(v) for k, v in split.items()}
    labels = tasks.ORDER_LABELS if args.classify == "order" else tasks.REPLY_LABELS
    common = dict(steps=args.steps, batch_size=32, eval_interval=max(1, args.steps // 8))
    runs = {
        "scratch": ft.FinetuneConfig("classify", "scratch", labels=labels, **common),
        "head": ft.FinetuneConfig("classify", "head", labels=labels, **common),
        "full": ft.FinetuneConfig("classify", "full", labels=labels, **common),
        "lora-r4": ft.FinetuneConfig(
            "classify", "lora", lora_rank=4, lora_alpha=8, labels=labels, **common
        ),
        "lora-r16": ft.FinetuneConfig(
            "classify", "lora", lora_rank=16, lora_alpha=32, labels=labels, **common
        ),
        # Instruction tuning at full fine-tuning's default rate learned only each instruction's
        # commonest answer; a probe at 1e-3 learned to copy (Chapter 10), so both are kept.
        "instruct-masked": ft.FinetuneConfig("instruct", "full", learning_rate=1e-3, **common),
        "instruct-unmasked": ft.FinetuneConfig(
            "instruct", "full", mask_prompt=False, learning_rate=1e-3, **common
        ),
        "instruct-masked-lr3e-4": ft.FinetuneConfig("instruct", "full", **common),
        "instruct-unmasked-lr3e-4": ft.FinetuneConfig(
            "instruct", "full", mask_prompt=False, **common
        ),
    }
    chosen = [n for n in args.only.split(",") if n] or list(runs)
    path = args.results / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    base_final = [m for m in read_metrics(base / "metrics.jsonl") if m["kind"] == "final"][-1]
    results["setup"] = {
        "base": str(base),
        "base_val_loss": base_final["val_loss"],
        "base_config": json.loads((base / "config.json").read_text()),
        "classify": args.classify,
        "steps": args.steps,
        "sizes": {
            t: {k: len(v) for k, v in d.items()}
            for t, d in ((args.classify, reply), ("instructions", cloze))
        },
        "date": time.strftime("%Y-%m-%d"),
        "threads": torch.get_num_threads(),
    }
    if "baselines" in chosen or not args.only:
        majority = collections.Counter(e.label for e in reply["train"]).most_common(1)[0][0]
        right = sum(e.label == majority for e in reply["test"])
        common = {  # per instruction, its most common answer in the training examples
            i: collections.Counter(
                e.response for e in cloze["train"] if e.instruction == i
            ).most_common(1)[0][0]
            for i in tasks.INSTRUCTIONS
        }
        results["baselines"] = {
            "majority": {"label": labels[majority], **score(right, len(reply["test"]))},
            "bag_of_words": bag_of_words(reply),
            "word_bigrams": bag_of_words(reply, ngrams=2),
            "common_answer": {
                "answers": common,
                **exact_match([common[e.instruction] for e in cloze["test"]], cloze["test"]),
            },
            "untuned": untuned(base, cloze["test"]),
        }
        print(json.dumps({k: v.get("test_accuracy") for k, v in results["baselines"].items()}))
        files.write_text(path, json.dumps(results, indent=1) + "\n")
    for name in chosen:
        if name not in runs:
            continue
        config = runs[name]
        data = reply if config.task == "classify" else cloze
        print(f"{name}: {config.task} {config.method}", flush=True)
        results.setdefault("runs", {})[name] = run(base, config, data, keep=12)
        r = results["runs"][name]
        print(
            f"  test {r['test_accuracy']:.4f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}], "
            f"{r['trainable_parameters']:,} trainable, {r['tokens_per_s']:.0f} tokens/s, "
            f"{r['seconds']:.0f} s",
            flush=True,
        )
        files.write_text(path, json.dumps(results, indent=1) + "\n")  # after every run
    files.write_text(path, json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
