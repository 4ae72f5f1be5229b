"""What both command modules (``tinygpt.cli`` and ``tinygpt.cli_finetune``) share: the parser
that reports bad input as one line, the flag types, and the errors the boundary in
``tinygpt.cli.main`` turns into ``tinygpt: error:`` lines."""

from __future__ import annotations

import argparse
from pathlib import Path

DEBUG_ENV = "TINYGPT_DEBUG"
DEBUG_HELP = f"on an error, print its traceback too (or set {DEBUG_ENV}=1)"


class UsageError(Exception):
    """Bad command-line input: reported as one line."""


class InterruptedRunError(Exception):
    """Ctrl-C or SIGTERM ended the command early; the message says what is on disk."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + error
        raise UsageError(message)


def path_flag(text: str) -> Path:
    """A path given on the command line; ``~`` is the home folder, as in a shell."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty; give a path")
    return Path(text).expanduser()


def parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
