"""Files written whole or not at all, so a crash, a kill or a full disk never leaves half a file.

Every file the package writes goes first to a hidden temporary file in the same folder
(``.NAME.RANDOM.tmp``), is flushed to disk, and then replaces ``NAME`` with ``os.replace``, which
is atomic on POSIX and Windows: a reader sees the old file or the new one, never a mixture. A
process killed mid-write leaves only its temporary file behind; ``remove_stale_temporaries``
deletes those the next time the run starts.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Ours: ".NAME.RANDOM.tmp" (tempfile.mkstemp). safetensors' save_file writes ".tmpRANDOM" in the
# target's folder and renames it onto our temporary file, so a kill can leave one of those too.
STALE_TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$|^\.tmp[A-Za-z0-9]{6}$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to; it replaces ``path`` only if the
    ``with`` block finishes, and is deleted if it does not."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; give it normal rights
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Replace ``path`` with ``data`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Replace ``path`` with ``text`` (UTF-8) atomically."""
    return write_bytes(path, text.encode("utf-8"))


def append_line(path: str | Path, line: str) -> None:
    """Add one line to a log in a single ``write`` call on an ``O_APPEND`` descriptor: each line
    lands whole, after the others. (Only a crash mid-call can tear the last line; readers of
    the log, e.g. ``tinygpt.runs.read_metrics``, skip a torn last line.)"""
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files that killed writes left in ``folder``; return their paths."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.iterdir() if p.is_file() and STALE_TEMPORARY.match(p.name)]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale
