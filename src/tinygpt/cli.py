"""The ``tinygpt`` command: ``tinygpt train`` (Chapter 6) and ``tinygpt sample`` (Chapter 7).

Every field of GPTConfig and TrainConfig is a flag (``--n-layer 6``, ``--restrict-vocab false``).
Bad input ends with one line on stderr and exit status 2; no traceback.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import sys
from dataclasses import MISSING, fields
from pathlib import Path

from tinygpt.model import GPTConfig

NOT_FLAGS = {"vocab_size"}  # follows the data (GPT-2's, or the restricted vocabulary)


class UsageError(Exception):
    """Bad command-line input: reported as one line."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + error
        raise UsageError(message)


def parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


# The allowed values of the text settings (the configs validate them too).
CHOICES = {
    "attn_implementation": ("sdpa", "eager"),
    "pos_embedding": ("learned", "rope"),
    "norm": ("layernorm", "rmsnorm"),
    "mlp": ("gelu", "swiglu"),
    "lr_schedule": ("cosine", "constant"),
    "dtype": ("float32", "bfloat16"),
}


def field_comments(config_class) -> dict[str, str]:
    """The comment after each field in the dataclass's source: the flag's help text."""
    comments = {}
    for line in inspect.getsource(config_class).splitlines():
        match = re.match(r"\s+(\w+): [^=]+=[^#]*#\s*(.+)$", line)
        if match:
            comments[match.group(1)] = match.group(2).strip()
    return comments


def add_config_flags(parser: argparse.ArgumentParser, config_class, group: str) -> None:
    section = parser.add_argument_group(group)
    comments = field_comments(config_class)
    for f in fields(config_class):
        if f.name in NOT_FLAGS:
            continue
        default = f.default if f.default is not MISSING else None
        kind = type(default)
        if default is None:  # an optional field, e.g. n_kv_head: int | None
            kind = {"int": int, "float": float, "str": str}[str(f.type).split("|")[0].strip()]
        choices = CHOICES.get(f.name)
        explanation = comments.get(f.name, "")
        section.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            default=None,
            metavar="|".join(choices) if choices else kind.__name__.upper(),
            choices=choices,
            type=parse_bool if kind is bool else kind,
            help=f"{explanation + ' ' if explanation else ''}(preset value, or {default!r})",
        )


def build_parser() -> Parser:
    from tinygpt.train import PRESETS, TrainConfig

    parser = Parser(prog="tinygpt", description="Train and sample the book's GPT.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    train = commands.add_parser("train", help="train a GPT on Tiny Shakespeare")
    train.add_argument(
        "--preset",
        default="default",
        help=f"starting configuration: {', '.join(PRESETS)} (default: default)",
    )
    train.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for checkpoints and metrics (default: runs/PRESET)",
    )
    train.add_argument(
        "--resume", action="store_true", help="continue exactly from OUT/last.safetensors"
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_flags(train, GPTConfig, "model")
    add_config_flags(train, TrainConfig, "training")

    sample = commands.add_parser(
        "sample",
        help="write text with a trained model",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sample.add_argument(
        "--checkpoint",
        type=Path,
        required=True,
        help="a run folder (uses its best.safetensors) or a checkpoint file",
    )
    sample.add_argument(
        "--prompt",
        default="",
        help="text to continue; empty starts from <|endoftext|> (a fresh text)",
    )
    sample.add_argument("--max-new-tokens", type=int, default=200)
    sample.add_argument("--num-samples", type=int, default=1)
    sample.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    sample.add_argument("--top-k", type=int, default=None, help="keep the k likeliest tokens")
    sample.add_argument(
        "--top-p", type=float, default=None, help="keep the likeliest tokens up to probability p"
    )
    sample.add_argument(
        "--repetition-penalty", type=float, default=1.0, help="> 1 discourages repeats"
    )
    sample.add_argument("--seed", type=int, default=None, help="fix the random draws")
    sample.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    sample.add_argument("--no-stream", action="store_true", help="print each sample when done")
    return parser


def run_train(args: argparse.Namespace) -> int:
    from tinygpt.train import TrainConfig, plot_losses, preset, train

    overrides = {
        f.name: getattr(args, f.name)
        for cls in (GPTConfig, TrainConfig)
        for f in fields(cls)
        if f.name not in NOT_FLAGS and getattr(args, f.name) is not None
    }
    if overrides.get("init_from"):  # fine-tuning GPT-2 (Appendix B): its shape, its vocabulary
        kept = ("block_size", "dropout")
        shape = [f.name for f in fields(GPTConfig) if f.name in overrides and f.name not in kept]
        if shape:
            raise ValueError(
                f"--{shape[0].replace('_', '-')} does not apply with --init-from: the model is "
                f"the pretrained GPT-2 (only --block-size and --dropout change it)"
            )
        overrides.setdefault("restrict_vocab", False)  # GPT-2's head scores all 50257 tokens
    out = args.out or Path("runs") / args.preset
    saved_config = out / "config.json"
    if args.resume and saved_config.is_file():
        # Resume the run as it was configured; flags given now override (e.g. more --max-steps).
        saved = json.loads(saved_config.read_text())
        model_values = {k: v for k, v in saved["model"].items() if k not in NOT_FLAGS}
        model_config = GPTConfig(**{**model_values, **_fields_in(GPTConfig, overrides)})
        train_config = TrainConfig(**{**saved["train"], **_fields_in(TrainConfig, overrides)})
        where = f"resuming {out} as configured in {saved_config}"
    else:
        model_config, train_config = preset(args.preset, **overrides)
        where = f"preset {args.preset}, writing to {out}"
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"tinygpt train: {where}", file=sys.stderr)
    result = train(
        model_config, train_config, out_dir=out, resume=args.resume, progress=not args.no_progress
    )
    if not result.is_main:  # a torchrun rank > 0: rank 0 reports
        return 0
    if result.stopped == "interrupted":
        print(
            f"Stopped at step {result.step}; resume with: tinygpt train --out {out} --resume",
            file=sys.stderr,
        )
        return 130
    from tinygpt import checkpoint as ckpt
    from tinygpt.train import full_validation, model_from_checkpoint, pick_device, prepare_corpus

    best = ckpt.load(out / "best.safetensors")
    model = model_from_checkpoint(best).to(pick_device(train_config.device))
    corpus = prepare_corpus(train_config.restrict_vocab, train_config.vocab_min_count)
    final = full_validation(model, corpus, pick_device(train_config.device), train_config.dtype)
    final.update(
        kind="final",
        step=best.meta["step"],
        stopped=result.stopped,
        steps_run=result.step,
        tokens_per_s=_mean_throughput(result.metrics),
    )
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps(final) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    ax = plot_losses({args.preset: result.metrics}, title=f"tinygpt train --preset {args.preset}")
    ax.figure.savefig(out / "loss.png")
    print(
        f"best checkpoint (step {final['step']}): full validation loss "
        f"{final['val_loss']:.4f} nats/token, {final['val_loss_per_char']:.4f} nats/char; "
        f"{final['tokens_per_s']:.0f} tokens/s; stopped: {result.stopped}"
    )
    return 0


def run_sample(args: argparse.Namespace) -> int:
    from tinygpt.generate import SamplingConfig, TextGenerator
    from tinygpt.train import pick_device

    config = SamplingConfig(
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        repetition_penalty=args.repetition_penalty,
        seed=args.seed,
    )
    if args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    if args.num_samples < 1:
        raise ValueError(f"--num-samples must be >= 1, got {args.num_samples}")
    path = args.checkpoint / "best.safetensors" if args.checkpoint.is_dir() else args.checkpoint
    generator = TextGenerator.from_checkpoint(path, pick_device(args.device))
    ids = generator.encode(args.prompt)
    window = generator.model.config.block_size
    if len(ids) > window:
        print(
            f"tinygpt sample: the prompt is {len(ids)} tokens; the model sees only its last "
            f"{window}",
            file=sys.stderr,
        )
    if generator.vocab is not None and args.prompt:
        unknown = sum(i == generator.vocab.unk_id for i in ids)
        if unknown:
            print(
                f"tinygpt sample: {unknown} prompt token(s) never occur in the training text; "
                f"the model sees them as 'unknown'",
                file=sys.stderr,
            )
    if args.num_samples == 1 and not args.no_stream:
        sys.stdout.write(args.prompt)
        for pieces in generator.stream(args.prompt, args.max_new_tokens, config):
            sys.stdout.write(pieces[0])
            sys.stdout.flush()
        sys.stdout.write("\n")
        return 0
    texts = generator(args.prompt, args.max_new_tokens, config, args.num_samples)
    for i, text in enumerate(texts, start=1):
        print(f"--- sample {i} ---\n{text}")
    return 0


def _fields_in(config_class, values: dict) -> dict:
    names = {f.name for f in fields(config_class)}
    return {k: v for k, v in values.items() if k in names}


def _mean_throughput(metrics: list[dict]) -> float:
    rates = [m["tokens_per_s"] for m in metrics if m["kind"] == "train"]
    return sum(rates) / len(rates) if rates else 0.0


def main(argv: list[str] | None = None) -> int:
    from tinygpt.checkpoint import CheckpointError
    from tinygpt.data import DataError

    try:
        parser = build_parser()
        if not (sys.argv[1:] if argv is None else argv):  # bare `tinygpt`: say what it does
            parser.print_help()
            return 2
        args = parser.parse_args(argv)
        if args.command == "train":
            return run_train(args)
        if args.command == "sample":
            return run_sample(args)
    except UsageError as err:
        print(f"tinygpt: error: {err}", file=sys.stderr)
        return 2
    except (ValueError, CheckpointError, DataError) as err:
        print(f"tinygpt: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tinygpt: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
