"""Every file the package writes is written atomically, and a killed write's leftovers are
cleaned up when the run starts again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinygpt import files
from tinygpt.cli import main


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "config.json"
    files.write_text(path, "old")

    def torn(self, data):  # half the bytes reach the disk, then the disk is full
        with open(self, "wb") as f:
            f.write(data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", torn)
    with pytest.raises(OSError, match="No space"):
        files.write_text(path, "new content")
    monkeypatch.undo()
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_append_line_adds_whole_lines(tmp_path):
    log = tmp_path / "metrics.jsonl"
    for i in range(3):
        files.append_line(log, json.dumps({"step": i}))
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [0, 1, 2]


def test_stale_temporaries_are_recognised_and_only_they(tmp_path):
    stale = [".last.safetensors.k2j_9xq1.tmp", ".config.json.abcdefgh.tmp", ".tmpA1b2C3"]
    kept = ["last.safetensors", "notes.tmp", ".hidden", "loss.png"]
    for name in stale + kept:
        (tmp_path / name).write_text("x")
    removed = files.remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)


TINY = ["--block-size", "16", "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--batch-size",
        "2", "--eval-batches", "1", "--eval-interval", "2", "--no-progress"]  # fmt: skip


def test_every_file_of_a_run_is_written_atomically(tmp_path, monkeypatch):
    """A whole `tinygpt train` (fresh, then resumed) in this process, with a spy on the two
    ways of writing: each file in the run folder must have come through them."""
    written: set[str] = set()
    real_atomic, real_append = files.atomic_path, files.append_line

    def atomic_spy(path):
        written.add(Path(path).name)
        return real_atomic(path)

    def append_spy(path, line):
        written.add(Path(path).name)
        return real_append(path, line)

    monkeypatch.setattr(files, "atomic_path", atomic_spy)
    monkeypatch.setattr(files, "append_line", append_spy)
    out = tmp_path / "run"
    assert main(["train", *TINY, "--max-steps", "4", "--out", str(out)]) == 0
    (out / ".last.safetensors.deadbeef.tmp").write_bytes(b"half a checkpoint")  # a killed save
    (out / ".tmpAbC123").write_bytes(b"safetensors' own temporary")
    assert main(["train", "--out", str(out), "--resume", "--max-steps", "6"]) == 0
    on_disk = {p.name for p in out.iterdir()}
    assert on_disk == {"config.json", "metrics.jsonl", "last.safetensors", "best.safetensors",
                       "loss.png"}  # fmt: skip  (the stale temporaries are gone)
    assert on_disk <= written
