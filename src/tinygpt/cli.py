"""The ``tinygpt`` command: ``tinygpt train`` (Chapter 6) and ``tinygpt sample`` (Chapter 7).

Every field of GPTConfig and TrainConfig is a flag (``--n-layer 6``, ``--restrict-vocab false``).
Bad input ends with one line on stderr and exit status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
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


def add_config_flags(parser: argparse.ArgumentParser, config_class, group: str) -> None:
    section = parser.add_argument_group(group)
    for f in fields(config_class):
        if f.name in NOT_FLAGS:
            continue
        default = f.default if f.default is not MISSING else None
        kind = type(default)
        section.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            default=None,
            metavar=kind.__name__.upper(),
            type=parse_bool if kind is bool else kind,
            help=f"(preset value, or {default!r})",
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
    return parser


def run_train(args: argparse.Namespace) -> int:
    from tinygpt.train import TrainConfig, plot_losses, preset, train

    overrides = {
        f.name: getattr(args, f.name)
        for cls in (GPTConfig, TrainConfig)
        for f in fields(cls)
        if f.name not in NOT_FLAGS and getattr(args, f.name) is not None
    }
    model_config, train_config = preset(args.preset, **overrides)
    out = args.out or Path("runs") / args.preset
    print(f"tinygpt train: preset {args.preset}, writing to {out}", file=sys.stderr)
    result = train(
        model_config, train_config, out_dir=out, resume=args.resume, progress=not args.no_progress
    )
    if result.stopped == "interrupted":
        print(
            f"Stopped at step {result.step}; resume with: tinygpt train --preset {args.preset} "
            f"--out {out} --resume",
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


def _mean_throughput(metrics: list[dict]) -> float:
    rates = [m["tokens_per_s"] for m in metrics if m["kind"] == "train"]
    return sum(rates) / len(rates) if rates else 0.0


def main(argv: list[str] | None = None) -> int:
    from tinygpt.checkpoint import CheckpointError
    from tinygpt.data import DataError

    try:
        args = build_parser().parse_args(argv)
        if args.command == "train":
            return run_train(args)
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
