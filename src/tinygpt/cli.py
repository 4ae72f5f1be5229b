"""The ``tinygpt`` command: ``tinygpt train`` (Chapter 6), ``tinygpt sample`` (Chapter 7), and
``tinygpt finetune`` and ``tinygpt classify`` (Chapter 10, in ``tinygpt.cli_finetune``).

Every field of GPTConfig and TrainConfig is a flag (``--n-layer 6``, ``--restrict-vocab false``).

``main`` is the one error boundary: every failure ends in one line on stderr, ``tinygpt: error:
WHAT IS WRONG; WHAT TO DO``, with exit status 2 for bad input (flags, files, data, devices) and
1 for anything else (a full disk, a bug), and never a traceback unless ``--debug`` (or
``TINYGPT_DEBUG=1``) asks for one. A command that is refused writes nothing: flags, devices,
the run folder and its ``config.json`` are checked before any work starts.
"""

from __future__ import annotations

import argparse
import errno
import inspect
import json
import os
import re
import shlex
import signal
import sys
import threading
import traceback
from dataclasses import MISSING, fields
from pathlib import Path

from tinygpt.cli_common import (
    DEBUG_ENV,
    DEBUG_HELP,
    InterruptedRunError,
    Parser,
    UsageError,
    parse_bool,
    path_flag,
)

NOT_FLAGS = {"vocab_size"}  # follows the data (GPT-2's, or the restricted vocabulary)
OFF = ("", "0", "false", "no", "off")
END_OF_TEXT = "<|endoftext|>"


# The allowed values of the text settings (the configs validate them too).
CHOICES = {
    "attn_implementation": ("sdpa", "eager"),
    "pos_embedding": ("learned", "rope"),
    "norm": ("layernorm", "rmsnorm"),
    "mlp": ("gelu", "swiglu", "relu2"),
    "lr_schedule": ("cosine", "constant", "wsd"),
    "optimizer": ("adamw", "muon"),
    "dtype": ("float32", "bfloat16"),
}


def field_comments(config_class) -> dict[str, str]:
    """The comment after each field in the dataclass's source: the flag's help text."""
    comments = {}
    for line in inspect.getsource(config_class).splitlines():
        match = re.match(r"\s+(\w+): [^=]+=[^#]*#\s*(.+)$", line)
        if match:
            text = re.sub(r"\[<?ch\w+\]\s*", "", match.group(2))  # the book's chapter tags
            comments[match.group(1)] = text.strip()
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
    from tinygpt.model import GPTConfig
    from tinygpt.presets import PRESETS
    from tinygpt.train import TrainConfig

    parser = Parser(
        prog="tinygpt",
        description="Train and sample the book's GPT.",
        epilog=f"--debug (or {DEBUG_ENV}=1) prints the traceback of an error, for bug reports.",
    )
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    train = commands.add_parser("train", help="train a GPT on Tiny Shakespeare")
    train.add_argument(
        "--preset",
        default=None,
        help=f"starting configuration: {', '.join(PRESETS)} (default: default)",
    )
    train.add_argument(
        "--out",
        type=path_flag,
        default=None,
        help="folder for checkpoints and metrics (default: runs/PRESET)",
    )
    train.add_argument(
        "--resume", action="store_true", help="continue exactly from OUT/last.safetensors"
    )
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh in an OUT that already holds a run (its files are replaced)",
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    add_config_flags(train, GPTConfig, "model")
    add_config_flags(train, TrainConfig, "training")

    sample = commands.add_parser(
        "sample",
        help="write text with a trained model",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sample.add_argument(
        "--checkpoint",
        type=path_flag,
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
    sample.add_argument(
        "--adapter",
        type=path_flag,
        default=None,
        help="a fine-tune of the checkpoint (tinygpt finetune --task instruct) to apply",
    )
    sample.add_argument(
        "--instruction",
        default=None,
        help="with an instruction fine-tune: the instruction; --prompt becomes its input",
    )
    sample.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    from tinygpt import cli_finetune

    cli_finetune.add_parsers(commands)
    return parser


def run_train(args: argparse.Namespace) -> int:
    from tinygpt import checkpoint as ckpt
    from tinygpt.model import GPTConfig
    from tinygpt.presets import preset
    from tinygpt.train import TrainConfig, pick_device, train

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
    if args.resume and args.preset is not None:
        raise ValueError("--preset does not apply with --resume: the run keeps its own settings")
    name = args.preset or "default"
    out = (args.out or Path("runs") / name).expanduser()
    check_run_folder(out, args.resume, args.overwrite)
    if args.resume:
        # Resume the run as it was configured; flags given now override (e.g. more --max-steps).
        model_values, train_values, source = saved_configs(out)
        for cls, values in ((GPTConfig, model_values), (TrainConfig, train_values)):
            unknown = sorted(set(values) - {f.name for f in fields(cls)})
            if unknown:
                raise ValueError(f"{source}: unknown setting {unknown[0]!r}; remove it")
        try:
            model_config = GPTConfig(**{**model_values, **_fields_in(GPTConfig, overrides)})
            train_config = TrainConfig(**{**train_values, **_fields_in(TrainConfig, overrides)})
        except (TypeError, ValueError) as err:
            raise ValueError(f"{err} (the settings of {source}, with the flags given)") from None
        for checkpoint in ("last.safetensors", "best.safetensors"):  # damaged: say so now
            if (out / checkpoint).exists():
                ckpt.load(out / checkpoint)
        where = f"resuming {out} as configured in {source}"
    else:
        model_config, train_config = preset(name, **overrides)
        where = f"preset {name}, writing to {out}"
    pick_device(train_config.device)  # a device that is not there: say so before any work
    if int(os.environ.get("RANK", "0")) == 0:  # stdout: stderr is for problems (and progress)
        print(f"tinygpt train: {where}", flush=True)
    resume_command = f"tinygpt train --out {shlex.quote(str(out))} --resume"
    try:
        result = train(
            model_config, train_config, out, resume=args.resume, progress=not args.no_progress
        )
    except KeyboardInterrupt:  # a second Ctrl-C
        if not (out / "last.safetensors").is_file():
            raise InterruptedRunError(
                "aborted before the first checkpoint; nothing to resume"
            ) from None
        raise InterruptedRunError(
            f"aborted; {out} holds the run as its last completed save left it (resume it with: "
            f"{resume_command})"
        ) from None
    if not result.is_main:  # a torchrun rank > 0: rank 0 reports
        return 0
    if result.stopped == "interrupted":
        print(f"Stopped at step {result.step}; resume with: {resume_command}", file=sys.stderr)
        return 130
    try:
        return _finish_run(out, name, train_config, result)
    except KeyboardInterrupt:
        raise InterruptedRunError(
            f"interrupted during the final validation; the training itself is saved in {out} "
            f"({resume_command} measures it again)"
        ) from None


def _finish_run(out: Path, name: str, train_config, result) -> int:
    """The whole validation split on the best weights, a line in metrics.jsonl, loss.png."""
    from tinygpt import checkpoint as ckpt
    from tinygpt import files
    from tinygpt.runs import model_from_checkpoint, plot_losses
    from tinygpt.train import full_validation, pick_device, prepare_corpus

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
        train_tokens=len(corpus.train),  # for epochs: steps * batch_size * block_size / this
    )
    files.append_line(out / "metrics.jsonl", json.dumps(final))
    import matplotlib

    matplotlib.use("Agg")
    ax = plot_losses({name: result.metrics}, title=f"tinygpt train --preset {name}")
    with files.atomic_path(out / "loss.png") as tmp:
        ax.figure.savefig(tmp, format="png")
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
    try:
        args.prompt.encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8 arrive as lone surrogates
        raise ValueError("--prompt is not valid UTF-8; check the terminal's encoding") from None
    if args.instruction is not None and args.adapter is None:
        raise ValueError("--instruction needs --adapter: an instruction fine-tune to follow it")
    device = pick_device(args.device)
    checkpoint = args.checkpoint.expanduser()
    path = checkpoint / "best.safetensors" if checkpoint.is_dir() else checkpoint
    generator = TextGenerator.from_checkpoint(path, device)
    if args.adapter is not None:
        from tinygpt.cli_finetune import with_adapter

        args.prompt = with_adapter(generator, path, args.adapter, args.instruction, args.prompt)
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
            sys.stdout.write(pieces[0].replace(END_OF_TEXT, ""))
            sys.stdout.flush()
        sys.stdout.write("\n")
        return 0
    texts = generator(args.prompt, args.max_new_tokens, config, args.num_samples)
    for i, text in enumerate(texts, start=1):
        print(f"--- sample {i} ---\n{text.replace(END_OF_TEXT, '')}")
    return 0


def _fields_in(config_class, values: dict) -> dict:
    names = {f.name for f in fields(config_class)}
    return {k: v for k, v in values.items() if k in names}


def _mean_throughput(metrics: list[dict]) -> float:
    rates = [m["tokens_per_s"] for m in metrics if m["kind"] == "train"]
    return sum(rates) / len(rates) if rates else 0.0


def check_run_folder(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse, before any work, a run folder that cannot be written or would lose a run."""
    from tinygpt.runs import RUN_FILES

    if out.is_symlink() and not out.exists():
        raise ValueError(f"--out {out} is a symbolic link to nothing; remove it or choose another")
    for name in RUN_FILES:
        path = out / name
        if path.exists() and not path.is_file():
            raise ValueError(f"{path} is not a regular file; move it away, or choose another --out")
    for folder in (out, *out.parents):
        if folder.exists():
            if not folder.is_dir():
                raise ValueError(f"--out {out}: {folder} is a file, not a folder")
            if not os.access(folder, os.W_OK | os.X_OK):
                raise ValueError(f"--out {out}: no permission to write in {folder}")
            break
    has_run = any((out / name).is_file() for name in ("last.safetensors", "best.safetensors"))
    if resume and overwrite:
        raise ValueError("--resume continues a run and --overwrite replaces it: give one")
    if resume and not (out / "last.safetensors").is_file():
        raise ValueError(
            f"nothing to resume in {out}: it has no last.safetensors (leave out --resume to "
            f"start a new run there)"
        )
    if has_run and not resume and not overwrite:
        raise ValueError(
            f"{out} already holds a run; continue it with --resume, replace it with "
            f"--overwrite, or choose another --out"
        )


def saved_configs(out: Path) -> tuple[dict, dict, Path]:
    """The model and training settings a run was started with: its config.json, or, if that
    is gone, the copy inside its last checkpoint. Errors name the file and what is wrong."""
    from tinygpt import checkpoint as ckpt

    path = out / "config.json"
    if not path.exists():
        last = ckpt.load(out / "last.safetensors")
        model, train = last.model_config, last.meta.get("train_config")
        if not isinstance(train, dict):
            raise ValueError(f"{out} has no config.json and its last.safetensors has no settings")
        return _without_not_flags(model), train, out / "last.safetensors"
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path} is not valid JSON ({err.msg} at line {err.lineno}); repair it, or delete "
            f"it to resume with the settings saved in last.safetensors"
        ) from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text; repair or delete it") from None
    if not isinstance(saved, dict) or not all(
        isinstance(saved.get(key), dict) for key in ("model", "train")
    ):
        raise ValueError(
            f'{path} lacks its "model" and "train" settings; repair it, or delete it to resume '
            f"with the settings saved in last.safetensors"
        )
    return _without_not_flags(saved["model"]), saved["train"], path


def _without_not_flags(model_values: dict) -> dict:
    return {k: v for k, v in model_values.items() if k not in NOT_FLAGS}


def describe_os_error(err: OSError) -> tuple[str, int]:
    """One line for a failed file operation, and the exit status: 2 if the user can fix the
    input (a path, a permission), 1 if the machine is at fault (a full disk)."""
    where = f" {err.filename}" if err.filename else ""
    reason = err.strerror or str(err)
    if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return f"cannot write{where}: {reason}; free some space and run again", 1
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot access{where}: {reason}; check its permissions, or choose another", 2
    return f"{reason}{':' if where else ''}{where}; check the path", 2


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM before or after training: end like a Ctrl-C, with a line


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv or os.environ.get(DEBUG_ENV, "").lower() not in OFF
    if sys.stdout is None:  # started with stdout closed: write nowhere rather than fail
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:  # torch and the rest are imported in here, so a Ctrl-C while they load is caught too
        parser = build_parser()
        if not argv:  # bare `tinygpt`: say what it does
            parser.print_help()
            return 2
        args = parser.parse_args(argv)
        if args.command in ("finetune", "classify"):  # Chapter 10
            from tinygpt import cli_finetune

            return cli_finetune.run(args)
        return run_train(args) if args.command == "train" else run_sample(args)
    except InterruptedRunError as err:
        return _fail(str(err), 130, debug)
    except KeyboardInterrupt:  # before anything was written
        return _fail("interrupted before any work was done; nothing was written", 130, debug)
    except BrokenPipeError:  # the reader went away (e.g. `| head`): stop quietly
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return 141
    except Exception as err:
        return _fail(*describe_error(err), debug)
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)


def describe_error(err: Exception) -> tuple[str, int]:
    """The error line and exit status: 2 for input the user can fix, 1 for anything else."""
    from tinygpt.checkpoint import CheckpointError
    from tinygpt.data import DataError
    from tinygpt.tokenizer import VocabularyError

    if isinstance(err, UnicodeEncodeError):  # printing text the terminal cannot show
        encoding = getattr(sys.stdout, "encoding", "?")
        return (
            f"the output's encoding ({encoding}) cannot show the text; set "
            f"PYTHONIOENCODING=utf-8 (or a UTF-8 locale) and run again",
            2,
        )
    if (
        isinstance(err, MemoryError)
        or "can't allocate memory" in str(err)
        or (type(err).__name__ == "OutOfMemoryError")
    ):
        return (
            "not enough memory for this model and batch; use a smaller --batch-size, "
            "--block-size, --n-embd or --n-layer",
            2,
        )
    if isinstance(err, (UsageError, ValueError, CheckpointError, DataError, VocabularyError)):
        return str(err), 2
    if isinstance(err, OSError):
        return describe_os_error(err)
    return (
        f"unexpected {type(err).__name__}: {err} (a bug? run again with --debug and report "
        f"the traceback)",
        1,
    )


def _fail(message: str, status: int, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    print(f"tinygpt: error: {' '.join(message.split())}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
