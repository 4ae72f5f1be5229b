"""The chapters talk about the model, not about the project: no lesson mentions the test suite,
pytest, nbval, a draft or a working session. The introduction says once how the book is tested;
an engineering appendix (a notebook named ``appendix_c_*``) may talk about it too."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
LESSONS = [p for p in NOTEBOOKS if not p.stem.startswith("appendix_c")]
PROJECT_TALK = re.compile(
    r"\btests/|\btest suite\b|\bpytest\b|\bnbval\b|\bdrafts?\b|\bthis session\b|\bCPU budget\b"
    r"|\bthis book was built on\b",
    re.IGNORECASE,
)


def project_talk(markdown: str) -> list[str]:
    return [match.group() for match in PROJECT_TALK.finditer(markdown)]


def test_the_pattern_finds_talk_about_the_project():
    assert project_talk("The same checks run in `tests/test_hf.py` on every commit.") == ["tests/"]
    assert project_talk("(The test suite kills a process.)") == ["test suite"]
    assert project_talk("a reader of our draft found it") == ["draft"]
    assert project_talk("identical setups varied across this session") == ["this session"]
    assert project_talk("**CPU budget.** It runs in a minute") == ["CPU budget"]
    assert project_talk("on the 2-core CPU this book was built on") == ["this book was built on"]
    assert project_talk("The tests of attention: a draw, a drafting table?") == []


@pytest.mark.parametrize("notebook", LESSONS, ids=lambda p: p.stem)
def test_no_lesson_talks_about_the_project(notebook):
    cells = json.loads(notebook.read_text())["cells"]
    hits = [
        (number, word)
        for number, cell in enumerate(cells)
        if cell["cell_type"] == "markdown"
        for word in project_talk("".join(cell["source"]))
    ]
    assert not hits, f"{notebook.name}: markdown cells (number, words) about the project: {hits}"
