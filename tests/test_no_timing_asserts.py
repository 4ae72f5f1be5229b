"""No test and no notebook asserts a wall-clock time or a speed ratio: `make test` must pass on
a busy machine. Timings are printed (ignore-output cells) and measured in benchmarks/."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Words that name a duration, a rate or a comparison of speeds.
TIMING = re.compile(
    r"elapsed|seconds|wall|speed|ratio|per_s\b|tokens_per_s|throughput|duration|perf_counter"
    r"|monotonic|^time$|timings?|^past$|_results$",
    re.IGNORECASE,
)


def words_in(node: ast.AST) -> set[str]:
    found = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            found.add(sub.id)
        elif isinstance(sub, ast.Attribute):
            found.add(sub.attr)
        elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            found.add(sub.value)
    return found


def timing_asserts(source: str) -> list[str]:
    lines = source.splitlines()
    hits = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assert) and any(TIMING.search(w) for w in words_in(node.test)):
            line = lines[node.lineno - 1]
            # Allowed, and marked so: a measured time is positive and finite ("# sanity"), a
            # claim about the committed results of a benchmark ("# recorded"), or arithmetic on
            # a clock the test replaced with fixed readings ("# fake clock").
            if not any(mark in line for mark in ("# sanity", "# recorded", "# fake clock")):
                hits.append(line.strip())
    return hits


def code_of(notebook: Path) -> str:
    cells = json.loads(notebook.read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    # IPython magics are not Python; comment them out
    return "\n".join(re.sub(r"^\s*[%!].*$", "pass", c, flags=re.M) for c in code)


def test_the_check_finds_a_timing_assert():
    assert timing_asserts("elapsed = 3\nassert elapsed < 60\nassert x == 1\n") == [
        "assert elapsed < 60"
    ]
    assert timing_asserts('assert r["ratio_logits"] < 1.33') != []
    assert timing_asserts("assert t > 0  # sanity: a time is positive") == []


def test_no_notebook_or_test_asserts_a_time_or_a_speed():
    found = {}
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        found[path.name] = timing_asserts(code_of(path))
    for path in sorted((ROOT / "tests").glob("*.py")):
        if path.name != Path(__file__).name:
            found[path.name] = timing_asserts(path.read_text())
    found = {name: hits for name, hits in found.items() if hits}
    assert not found, found
