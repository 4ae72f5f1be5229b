"""Chapter 10's measurements: what the ten-minute model knows, and fine-tuning it to show it.

Word order (classification; the test split is 870 speech openings from text the base never
trained on, each as written and with two words swapped):

* **zero-shot**: for each pair, does the language model give the text as written the lower total
  loss? The same with a bigram model of the base's training text (``tinygpt.zeroshot``).
* **baselines**: the majority class and logistic regressions (scikit-learn) on words and on
  words plus word pairs.
* **networks**, one example at a time: from scratch, a new head only, LoRA (r = 4, 16) and full
  fine-tuning, reading the last token; and the "surprise" readout (the model's own largest
  surprise) with the model frozen or fully trained. Each method's peak learning rate is chosen
  on the validation split from a grid of three, each tried for ``--grid-minutes``; the chosen
  one then trains for ``--minutes``, keeps its best validation weights, and is tested once.
  Full fine-tuning of the last-token head runs once more for three times as long
  (``full-long``), to see whether it was still climbing; so does full instruction tuning.

Instructions (say the blanked word, the first word or the last word of a passage): the
pretrained model untuned, then full fine-tuning and LoRA with the loss on the response only
(rates chosen the same way), and full fine-tuning with the loss on every token at the masked
run's rate. Accuracies come with 95% Wilson intervals; every run records its trainable
parameters, optimizer state, steps, wall time and tokens/s.

    python benchmarks/finetune.py                          # about 110 minutes on 2 cores
    python benchmarks/finetune.py --base runs/x --minutes 0.2 --grid-minutes 0.1 \
        --results /tmp/ft                                  # a quick look
    python benchmarks/finetune.py --classify reply --only baselines,scratch,head,full \
        --minutes 4 --results book/results/finetune/reply   # the first task tried: at chance

The base is a ``tinygpt train`` run folder; without one, it trains Chapter 9's record recipe
for ten minutes first (``tinygpt train --preset speedrun --max-minutes 10 --seed 0``).
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from tinygpt import files, tasks, zeroshot
from tinygpt import finetune as ft
from tinygpt.data import load_text, split_text
from tinygpt.runs import read_metrics

RESULTS = Path("book/results/finetune")
DEFAULT_BASE = Path("runs/speedrun/speedrun+wd1.6-10min-s0")  # Chapter 9's record, seed 0


def base_run(path: Path) -> Path:
    if not (path / "best.safetensors").is_file():
        command = [sys.executable, "-m", "tinygpt", "train", "--preset", "speedrun"]
        command += ["--max-minutes", "10", "--seed", "0", "--no-progress", "--out", str(path)]
        print("$ tinygpt", " ".join(command[3:]), flush=True)
        subprocess.run(command, check=True)
    return path


def optimizer_bytes(model: torch.nn.Module) -> int:
    """AdamW keeps two moments per trainable number: 2 x 4 bytes each in float32."""
    return 8 * sum(p.numel() for p in model.parameters() if p.requires_grad)


def run(base: Path, config: ft.FinetuneConfig, data: dict, test: bool = True) -> dict:
    """Fine-tune a fresh copy of the base; its curves, costs, and (once) its test score."""
    generator, sha = ft.load_base(base)
    start = time.perf_counter()
    model, metrics = ft.fit(generator, config, data["train"], data["val"])
    wall = time.perf_counter() - start
    eot = ft.add_end_of_text(generator) if config.task == "instruct" else None  # fit's token
    pad_id = eot if eot is not None else 0
    train = ft.Encoded(generator, data["train"], eot)
    steps = max(m["step"] for m in metrics)
    seconds = max(m["seconds"] for m in metrics)  # training time, validation not counted
    tokens = 0
    draws = torch.Generator().manual_seed(config.seed)  # fit's batches again, for counting
    for _ in range(steps):  # real tokens, padding not counted
        for i in torch.randint(len(train), (config.batch_size,), generator=draws).tolist():
            tokens += (
                len(train.rows[i])
                if config.task == "classify"
                else (len(train.prompts[i]) + len(train.responses[i]) - 1)
            )
    kept = metrics[-1]
    result = {
        "config": asdict(config),
        "base_sha256": sha,
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "all_parameters": sum(p.numel() for p in model.parameters()),
        "optimizer_bytes": optimizer_bytes(model),
        "steps": steps,
        "kept_step": kept["step"],
        "val_score": kept["score"],
        "seconds": seconds,
        "wall_seconds": wall,
        "tokens_per_s": tokens / seconds,
        "curve": metrics,
    }
    if not test:
        return result
    test_data = ft.Encoded(generator, data["test"], eot)
    if config.task == "classify":
        scores = ft.class_scores(model, test_data, pad_id)  # (N, K)
        right = int((scores.argmax(-1) == test_data.labels).sum())
        result.update(score(right, len(test_data)))
        result["pairwise"] = pairwise(scores, test_data.labels)
    else:
        generator.model = model
        answers = [ft.answer(generator, e.prompt) for e in data["test"]]
        result.update(exact_match(answers, data["test"]))
        result["test_loss"] = ft.mean_response_loss(model, test_data, pad_id)
        result["answers"] = answers  # every test answer, in the order of the test prompts
    return result


def pairwise(scores: torch.Tensor, labels: torch.Tensor) -> dict:
    """A classifier's pairwise accuracy on word order: of each test pair (as written, then
    swapped), is the one as written given the higher log-odds of "as written"?"""
    log_odds = scores[:, 1] - scores[:, 0]  # (N,)
    assert bool((labels[0::2] == 1).all() and (labels[1::2] == 0).all()), "pairs out of order"
    right = float(zeroshot.pairwise_accuracy(-log_odds[0::2], -log_odds[1::2])) * (len(labels) // 2)
    return score(round(right), len(labels) // 2)


def zero_shot(base: Path, data: dict) -> dict:
    """Minimal pairs: the language model's and a bigram model's total loss, text as written
    against text swapped, on the validation and test pairs; and four test pairs to show."""
    generator, _ = ft.load_base(base)
    ids = generator.encode(split_text(load_text())[0])  # the text the base trained on
    bigram = zeroshot.BigramModel(ids, generator.model.config.vocab_size)
    window = generator.model.config.block_size
    out = {"bigram_k": bigram.k, "bigram_tokens": len(ids)}
    for name in ("val", "test"):
        rows = [generator.encode(e.text)[-window:] for e in data[name]]
        start = time.perf_counter()
        lm = torch.stack([loss.sum() for loss in zeroshot.token_losses(generator.model, rows)])
        seconds = time.perf_counter() - start
        bi = torch.stack([bigram.token_losses(r).sum() for r in rows]).float()
        for model, totals in (("lm", lm), ("bigram", bi)):
            n = len(rows) // 2
            right = round(zeroshot.pairwise_accuracy(totals[0::2], totals[1::2]) * n)
            out[f"{model}_{name}"] = {
                **score(right, n),
                "seconds": seconds if model == "lm" else None,
            }
        if name == "test":
            out["examples"] = [
                {"written": data[name][i].text, "swapped": data[name][i + 1].text,
                 "lm": [lm[i].item(), lm[i + 1].item()], "bigram": [bi[i].item(), bi[i + 1].item()]}
                for i in range(0, 8, 2)
            ]  # fmt: skip
    return out


def choose_rate(base: Path, config: ft.FinetuneConfig, rates: tuple, data: dict, minutes: float):
    """Each rate tried for ``minutes``; the one with the best validation score, and all scores."""
    tried = {}
    for rate in rates:
        trial = replace(config, learning_rate=rate, max_minutes=minutes)
        r = run(base, trial, data, test=False)
        tried[f"{rate:g}"] = {"val_score": r["val_score"], "steps": r["steps"],
                              "kept_step": r["kept_step"]}  # fmt: skip
        print(f"    lr {rate:g}: validation {r['val_score']:.4f} at step {r['kept_step']} "
              f"of {r['steps']}", flush=True)  # fmt: skip
    best = max(tried, key=lambda k: tried[k]["val_score"])
    return float(best), tried


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


def plans(labels: tuple[str, ...], eval_interval: int) -> dict:
    """Every network run: its settings and the peak learning rates its grid tries."""
    common = dict(steps=100_000, batch_size=32, eval_interval=eval_interval)  # time ends a run
    order = dict(task="classify", labels=labels, **common)
    lora = lambda r: dict(method="lora", lora_rank=r, lora_alpha=2.0 * r)  # noqa: E731
    return {
        "scratch": (ft.FinetuneConfig(method="scratch", **order), (3e-4, 1e-3, 3e-3)),
        "head": (ft.FinetuneConfig(method="head", **order), (1e-3, 3e-3, 1e-2)),
        "lora-r4": (ft.FinetuneConfig(**lora(4), **order), (5e-4, 2e-3, 8e-3)),
        "lora-r16": (ft.FinetuneConfig(**lora(16), **order), (5e-4, 2e-3, 8e-3)),
        "full": (ft.FinetuneConfig(method="full", **order), (3e-5, 1e-4, 3e-4)),
        "surprise-head": (
            ft.FinetuneConfig(method="head", readout="surprise", **order),
            (3e-3, 1e-2, 3e-2),
        ),
        "surprise-full": (
            ft.FinetuneConfig(method="full", readout="surprise", **order),
            (3e-5, 1e-4, 3e-4),
        ),
        "instruct-full": (ft.FinetuneConfig("instruct", "full", **common), (3e-4, 1e-3, 3e-3)),
        "instruct-lora-r16": (
            ft.FinetuneConfig("instruct", **lora(16), **common),
            (1e-3, 3e-3, 1e-2),
        ),
        # The loss on every token, at the masked run's chosen rate: what the mask is worth.
        "instruct-full-unmasked": (
            ft.FinetuneConfig("instruct", "full", mask_prompt=False, **common),
            (),
        ),
        # Full fine-tuning of the last-token classifier, at its chosen rate, for three times
        # the budget: does it keep climbing?
        "full-long": (ft.FinetuneConfig(method="full", **order), ()),
        # And instruction tuning of the whole model, likewise.
        "instruct-full-long": (ft.FinetuneConfig("instruct", "full", **common), ()),
    }


# A run without a grid takes another run's chosen rate, and a multiple of the budget.
BORROWS = {
    "instruct-full-unmasked": ("instruct-full", 1.0),
    "full-long": ("full", 3.0),
    "instruct-full-long": ("instruct-full", 3.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, default=DEFAULT_BASE)
    parser.add_argument("--minutes", type=float, default=4.0, help="each chosen run's budget")
    parser.add_argument("--grid-minutes", type=float, default=0.67, help="each grid trial's")
    parser.add_argument("--eval-interval", type=int, default=50)
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
    runs = plans(labels, args.eval_interval)
    chosen = [n for n in args.only.split(",") if n] or ["zero_shot", "baselines", *runs]
    path = args.results / "results.json"
    results = {}  # a full run starts afresh; --only adds to (or replaces in) what is there
    if path.exists() and args.only:
        results = json.loads(path.read_text())
    base_final = [m for m in read_metrics(base / "metrics.jsonl") if m["kind"] == "final"][-1]
    results["setup"] = {
        "base": str(base),
        "base_val_loss": base_final["val_loss"],
        "base_config": json.loads((base / "config.json").read_text()),
        "classify": args.classify,
        "minutes": args.minutes,
        "grid_minutes": args.grid_minutes,
        "sizes": {
            t: {k: len(v) for k, v in d.items()}
            for t, d in ((args.classify, reply), ("instructions", cloze))
        },
        "date": time.strftime("%Y-%m-%d"),
        "threads": torch.get_num_threads(),
    }

    def save() -> None:
        files.write_text(path, json.dumps(results, indent=1) + "\n")

    if "zero_shot" in chosen and args.classify == "order":
        results["zero_shot"] = zero_shot(base, reply)
        print(json.dumps({k: v["test_accuracy"] for k, v in results["zero_shot"].items()
                          if isinstance(v, dict)}), flush=True)  # fmt: skip
        save()
    if "baselines" in chosen:
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
        save()
    for name in chosen:
        if name not in runs:
            continue
        config, rates = runs[name]
        data = reply if config.task == "classify" else cloze
        print(f"{name}: {config.task} {config.method} {config.readout}", flush=True)
        minutes = args.minutes
        if rates:
            rate, tried = choose_rate(base, config, rates, data, args.grid_minutes)
        else:
            lender, factor = BORROWS[name]
            rate, tried = results["runs"][lender]["config"]["learning_rate"], {}
            minutes *= factor
        config = replace(config, learning_rate=rate, max_minutes=minutes)
        results.setdefault("runs", {})[name] = {**run(base, config, data), "grid": tried}
        r = results["runs"][name]
        print(
            f"  lr {rate:g}: test {r['test_accuracy']:.4f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]"
            f", kept step {r['kept_step']} of {r['steps']}, {r['trainable_parameters']:,} "
            f"trainable, {r['tokens_per_s']:.0f} tokens/s, {r['wall_seconds']:.0f} s",
            flush=True,
        )
        save()  # after every run


if __name__ == "__main__":
    main()
