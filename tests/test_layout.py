"""What the rendered book's layout relies on, checked without a browser (tests/test_browser.py
measures the pages themselves): figure fonts large enough to read, figures drawn no wider than the
column, notebook code no wider than a 100-character line, and the bookkeeping cells hidden."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "book").glob("*.ipynb"))
PACKAGE_FIGURES = sorted((REPO / "src" / "tinygpt" / "book").rglob("*.py"))
MIN_POINTS = 9  # 12.5 px at 100 dpi; at least 10 px on screen at the 80 % the browser test allows
MAX_FIGURE_INCHES = 9.2  # 920 px at 100 dpi: the 1440 px column shows 912 px, so >= 80 %
FONT_KEYS = [
    "font.size", "axes.titlesize", "axes.labelsize", "xtick.labelsize", "ytick.labelsize",
    "legend.fontsize", "legend.title_fontsize", "figure.titlesize", "figure.labelsize",
]  # fmt: skip


def code_cells(path: Path) -> list[str]:
    cells = json.loads(path.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def without_magics(source: str) -> str:
    return "\n".join("pass" if line.lstrip().startswith(("%", "!")) else line
                     for line in source.splitlines())  # fmt: skip


def keyword_numbers(source: str, names: set[str]) -> list[tuple[str, float]]:
    """(keyword, value) for every call keyword in names given a literal number or tuple."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.keyword) and node.arg in names:
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                continue  # computed: not checked here
            found.append((node.arg, value))
    return found


def test_the_figure_style_sets_every_font_to_at_least_9_points():
    import matplotlib as mpl
    from matplotlib.font_manager import FontProperties

    from tinygpt.book import use_style

    with mpl.rc_context():
        use_style()
        sizes = {k: FontProperties(size=mpl.rcParams[k]).get_size_in_points() for k in FONT_KEYS}
        assert mpl.rcParams["figure.dpi"] == mpl.rcParams["savefig.dpi"] == 100
    small = {k: v for k, v in sizes.items() if v < MIN_POINTS}
    assert not small, f"the book's style sets fonts under {MIN_POINTS} pt: {small}"


@pytest.mark.parametrize("path", NOTEBOOKS + PACKAGE_FIGURES, ids=lambda p: "/".join(p.parts[-2:]))
def test_no_figure_sets_a_smaller_font_or_a_wider_figure(path):
    sources = code_cells(path) if path.suffix == ".ipynb" else [path.read_text()]
    problems = []
    for source in sources:
        for name, value in keyword_numbers(without_magics(source), {"fontsize", "figsize"}):
            if name == "fontsize" and isinstance(value, int | float) and value < MIN_POINTS:
                problems.append(f"fontsize={value}")
            if name == "figsize" and value[0] > MAX_FIGURE_INCHES:
                problems.append(f"figsize={value}: wider than the column")
    assert not problems, f"{path.name}: {problems}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(REPO)))
def test_notebook_code_fits_a_100_character_line(path):
    long = [line for src in code_cells(path) for line in src.splitlines() if len(line) > 100]
    assert not long, f"{path.name}: lines over 100 characters: {long[:3]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(REPO)))
def test_bookkeeping_cells_are_hidden_but_run(path):
    """A cell that reports how long the notebook ran is for the tests, not the reader: it is
    removed from the rendered page (remove-cell) and its changing output is not compared."""
    cells = json.loads(path.read_text())["cells"]
    for cell in cells:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and re.search(r"notebook (ran|executed) in", source):
            tags = set(cell.get("metadata", {}).get("tags", []))
            assert {"remove-cell", "nbval-ignore-output"} <= tags, f"{path.name}: {source!r}"
            assert cell.get("outputs"), f"{path.name}: the bookkeeping cell was not run"
