"""The fine-tuning commands (Chapter 10): ``tinygpt finetune``, ``tinygpt classify``, and the
``--adapter`` of ``tinygpt sample``. ``tinygpt.cli.main`` is their error boundary, as for every
command: a failure is one ``tinygpt: error:`` line, and a refused command writes nothing."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tinygpt.cli_common import DEBUG_HELP, InterruptedRunError, path_flag


def add_parsers(commands) -> None:
    from tinygpt.finetune import LEARNING_RATES, METHODS, READOUTS, TASKS

    defaults = argparse.ArgumentDefaultsHelpFormatter
    tune = commands.add_parser(
        "finetune", help="fine-tune a trained model (Chapter 10)", formatter_class=defaults
    )
    tune.add_argument(
        "--base",
        required=True,
        help="a tinygpt train run folder or checkpoint, or GPT-2: a hub name (gpt2) or a folder "
        "with config.json and model.safetensors",
    )
    tune.add_argument(
        "--task",
        choices=TASKS,
        default="classify",
        help="classify: a label per text; instruct: a response per prompt",
    )
    tune.add_argument("--method", choices=METHODS, default="lora", help="what trains")
    tune.add_argument(
        "--data",
        type=path_flag,
        default=None,
        help="JSON Lines of your own examples: {text, label} or {instruction, input, response}; "
        "the last 10%% validate (default: the book's word-order or instruction task)",
    )
    tune.add_argument(
        "--out", type=path_flag, default=None, help="folder to write (default: runs/finetune-TASK)"
    )
    tune.add_argument("--overwrite", action="store_true", help="replace a fine-tune in OUT")
    # Flags that apply to some runs only default to None, so that one given where it does not
    # apply is refused (check_flags) rather than silently ignored.
    tune.add_argument("--lora-rank", type=int, default=None, help="lora: the adapters' rank r (8)")
    tune.add_argument(
        "--lora-alpha", type=float, default=None, help="lora: updates scale by alpha/r (16)"
    )
    tune.add_argument(
        "--lora-targets", default=None, help="lora: layers to adapt (c_attn,c_proj,c_fc)"
    )
    tune.add_argument(
        "--readout",
        choices=READOUTS,
        default=None,
        help="classify: what the head reads: the last token's state, or the model's surprise "
        "(last)",
    )
    tune.add_argument("--no-mask", action="store_true", help="instruct: learn the prompts too")
    tune.add_argument(
        "--steps", type=int, default=None, help="the most steps (300; none with --max-minutes)"
    )
    tune.add_argument(
        "--max-minutes", type=float, default=0.0, help="training time budget; 0 = none"
    )
    tune.add_argument("--batch-size", type=int, default=32)
    rates = ", ".join(f"{k} {v:g}" for k, v in LEARNING_RATES.items())
    tune.add_argument("--learning-rate", type=float, default=0.0, help=f"0 = by method: {rates}")
    tune.add_argument("--eval-interval", type=int, default=50)
    tune.add_argument("--seed", type=int, default=0)
    tune.add_argument(
        "--block-size", type=int, default=None, help="GPT-2 bases: the window, cropped (128)"
    )
    tune.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)

    classify = commands.add_parser("classify", help="label texts with a classifier fine-tune")
    classify.add_argument("--checkpoint", type=path_flag, required=True, help="the base model")
    classify.add_argument("--adapter", type=path_flag, required=True, help="the fine-tune")
    classify.add_argument("text", nargs="+", help="texts to label")
    classify.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP
    )


def run(args: argparse.Namespace) -> int:
    return run_finetune(args) if args.command == "finetune" else run_classify(args)


def with_adapter(generator, base: Path, adapter: Path, instruction: str | None, prompt: str) -> str:
    """Apply an instruction fine-tune to ``generator``; return the prompt to continue."""
    from tinygpt.data import sha256_of
    from tinygpt.finetune import apply
    from tinygpt.model import GPT
    from tinygpt.tasks import TEMPLATE

    model = apply(generator, adapter.expanduser(), sha256_of(base))
    if not isinstance(model, GPT):
        raise ValueError(f"--adapter {adapter} is a classifier: it labels texts (tinygpt classify)")
    if instruction is None:
        return prompt
    return TEMPLATE.format(instruction=instruction, input=prompt)


def run_classify(args: argparse.Namespace) -> int:
    import torch

    from tinygpt.finetune import apply, load_base, read
    from tinygpt.model import GPT

    generator, base_sha = load_base(args.checkpoint)
    model = apply(generator, args.adapter.expanduser(), base_sha)
    if isinstance(model, GPT):
        raise ValueError(f"--adapter {args.adapter} writes text; use tinygpt sample --adapter")
    labels = read(args.adapter.expanduser())[0].labels
    window = model.gpt.config.block_size
    for text in args.text:
        ids = torch.tensor([generator.encode(text)[-window:]])
        with torch.no_grad():
            probs = model(ids, torch.tensor([ids.size(1)])).softmax(-1)[0].tolist()
        best = max(range(len(labels)), key=probs.__getitem__)
        shares = ", ".join(f"{name} {p:.2f}" for name, p in zip(labels, probs))
        print(f"{labels[best]}\t({shares})\t{' '.join(text.split())[:60]}")
    return 0


def run_finetune(args: argparse.Namespace) -> int:
    """Fine-tune ``--base`` and write OUT/finetuned.safetensors, config.json, metrics.jsonl."""
    from tinygpt import files
    from tinygpt import finetune as ft

    check_flags(args)
    given = {
        k: v
        for k, v in vars(args).items()
        if k in ("lora_rank", "lora_alpha", "lora_targets", "readout") and v is not None
    }
    config = ft.FinetuneConfig(
        task=args.task,
        method=args.method,
        mask_prompt=not args.no_mask,
        steps=args.steps if args.steps is not None else (10**9 if args.max_minutes else 300),
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        eval_interval=args.eval_interval,
        max_minutes=args.max_minutes,
        seed=args.seed,
        **given,
    )
    out = (args.out or Path("runs") / f"finetune-{args.task}").expanduser()
    if (out / "finetuned.safetensors").exists() and not args.overwrite:
        raise ValueError(f"{out} already holds a fine-tune; choose another --out or --overwrite")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    train_set, val_set, labels = finetune_data(args.task, args.data)
    config.labels = labels
    generator, base_sha = ft.load_base(args.base, args.block_size or 128)
    print(
        f"tinygpt finetune: {args.method} on {args.task} ({len(train_set)} training and "
        f"{len(val_set)} validation examples), writing to {out}",
        flush=True,
    )
    try:
        model, metrics = ft.fit(generator, config, train_set, val_set, print_validation)
    except KeyboardInterrupt:
        raise InterruptedRunError(f"interrupted; nothing was written to {out}") from None
    out.mkdir(parents=True, exist_ok=True)
    ft.save(out / "finetuned.safetensors", model, config, base_sha)
    files.write_text(out / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in metrics))
    kept = metrics[-1]  # the best validation score's step: its weights are the ones saved
    shown = ", ".join(f"{k} {v:.4f}" for k, v in kept.items() if k.startswith("val_"))
    print(f"kept step {kept['step']} ({shown}); wrote {out / 'finetuned.safetensors'}")
    return 0


def check_flags(args: argparse.Namespace) -> None:
    """Refuse a flag given where it does not apply: it would be ignored without a word."""
    from tinygpt.finetune import is_gpt2_base

    if args.no_mask and args.task != "instruct":
        raise ValueError("--no-mask applies to --task instruct only")
    if args.readout is not None and args.task != "classify":
        raise ValueError("--readout applies to --task classify only")
    for flag in ("lora_rank", "lora_alpha", "lora_targets"):
        if getattr(args, flag) is not None and args.method != "lora":
            name = "--" + flag.replace("_", "-")
            raise ValueError(f"{name} applies to --method lora only (this is {args.method})")
    if args.block_size is not None and not is_gpt2_base(args.base):
        raise ValueError(
            f"--block-size crops a GPT-2 base's window; {args.base} is a tinygpt run, whose "
            "window is the one it was trained with: leave --block-size out"
        )


def finetune_data(task: str, data: Path | None) -> tuple[list, list, tuple[str, ...]]:
    """(train, validation, label names): your JSON Lines file's, or the book's task's."""
    from tinygpt import tasks
    from tinygpt.data import load_text

    if data is not None:
        examples, labels = tasks.read_jsonl(data, task)
        n_val = max(1, len(examples) // 10)
        return examples[:-n_val], examples[-n_val:], labels
    split = tasks.split_speeches(load_text())
    if task == "classify":
        make, labels = tasks.order_examples, tasks.ORDER_LABELS
    else:
        make, labels = tasks.instruction_examples, ()
    return make(split["train"]), make(split["val"]), labels


def print_validation(entry: dict) -> None:
    if entry["kind"] == "val":
        shown = ", ".join(f"{k} {v:.4f}" for k, v in entry.items() if k.startswith("val_"))
        print(f"step {entry['step']}: {shown}", file=sys.stderr, flush=True)
