"""A warm ``python -m tinygpt``: imports torch and the package once, then runs each command in a
forked child, so a table of CLI cases costs one import of torch instead of one per case.

Reads one JSON request per line on stdin::

    {"args": [...], "env": {...}, "stdout": PATH, "stderr": PATH,
     "limit_file_size": N | null, "script": PATH | null}

and answers two JSON lines per request: ``{"pid": PID}`` once the child runs (so a test can
signal it) and ``{"status": EXIT_STATUS}`` once it has ended. With ``script`` the child runs that
file as ``python SCRIPT ARGS`` would (a test's worker), else ``tinygpt ARGS``. ``WarmCli`` below
is the test's side.

Each child is a process of its own, as ``python -m tinygpt`` would be: its own environment
(replaced whole), standard streams (written to the given files), file-size limit, exit status,
signals, and a traceback on stderr if anything escaped ``main``. Only what is read when a module
is imported is shared, and the package reads its environment variables (``TINYGPT_DATA_DIR``,
``TIKTOKEN_CACHE_DIR``, ``TINYGPT_DEBUG``, proxies) when they are used, not when it is imported.

The parent never runs a torch operation: a child forked after OpenMP's threads exist could hang.
"""

from __future__ import annotations

import json
import os
import resource
import runpy
import signal
import subprocess
import sys
import traceback
import warnings
from pathlib import Path

import torch  # noqa: F401  (the point: imported once)

import tinygpt.checkpoint  # noqa: F401
import tinygpt.cli
import tinygpt.cli_finetune  # noqa: F401
import tinygpt.data  # noqa: F401
import tinygpt.generate  # noqa: F401
import tinygpt.tokenizer  # noqa: F401
import tinygpt.train  # noqa: F401


def run_child(request: dict) -> None:
    """In the forked child: become ``python -m tinygpt ARGS`` and exit with its status."""
    status = 1
    try:
        signal.alarm(300)  # a case that hangs is killed, as subprocess.run(timeout=300) would
        os.environ.clear()
        os.environ.update(request["env"])
        for fd, path, flags in (
            (0, os.devnull, os.O_RDONLY),
            (1, request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
            (2, request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        ):
            opened = os.open(path, flags, 0o644)
            os.dup2(opened, fd)
            os.close(opened)
        if request.get("limit_file_size"):
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit: EFBIG
            resource.setrlimit(resource.RLIMIT_FSIZE, (request["limit_file_size"],) * 2)
        if os.environ.get("PYTHONWARNINGS") == "ignore":  # read at start-up by a new interpreter
            warnings.simplefilter("ignore")
        if request.get("script"):
            sys.argv = [request["script"], *request["args"]]
            runpy.run_path(request["script"], run_name="__main__")
            status = 0
        else:
            sys.argv = ["tinygpt", *request["args"]]
            status = tinygpt.cli.main(request["args"])
    except SystemExit as stop:  # as the interpreter turns sys.exit into a status
        code = stop.code
        if code is not None and not isinstance(code, int):
            print(code, file=sys.stderr)
        status = code if isinstance(code, int) else (0 if code is None else 1)
    except BaseException:  # what escapes main: a traceback, as python -m would print
        traceback.print_exc()
        status = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(status)


def serve() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            run_child(request)
        print(json.dumps({"pid": pid}), flush=True)
        _, wait_status = os.waitpid(pid, 0)
        print(json.dumps({"status": os.waitstatus_to_exitcode(wait_status)}), flush=True)


class WarmCli:
    """The test's side: one warm process, one command at a time."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def _answer(self) -> dict:
        line = self.proc.stdout.readline()
        assert line, "the warm tinygpt process died"
        return json.loads(line)

    def start(self, args: list[str], out: Path, env: dict | None = None,
              limit_file_size: int | None = None, script: str | None = None) -> int:  # fmt: skip
        """Start ``tinygpt ARGS`` (or ``python SCRIPT ARGS``), its streams written to files in
        ``out``; return its pid. ``finish`` waits for it."""
        out.mkdir(parents=True, exist_ok=True)
        request = {"args": args, "env": dict(os.environ if env is None else env),
                   "stdout": str(out / "stdout"), "stderr": str(out / "stderr"),
                   "limit_file_size": limit_file_size, "script": script}  # fmt: skip
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return self._answer()["pid"]

    def finish(self, out: Path) -> subprocess.CompletedProcess:
        status = self._answer()["status"]
        read = lambda name: (out / name).read_bytes().decode(errors="replace")
        return subprocess.CompletedProcess([], status, read("stdout"), read("stderr"))

    def run(self, args: list[str], out: Path, **options) -> subprocess.CompletedProcess:
        self.start(args, out, **options)
        return self.finish(out)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


if __name__ == "__main__":
    serve()
