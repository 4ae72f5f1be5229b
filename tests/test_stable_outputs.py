"""The notebooks' compared outputs show only what every CPU prints.

nbval re-runs the notebooks on other CPU kernels than the ones that wrote their outputs
(book/conftest.py), which catches a digit that moves on this machine. Some digits move only on
another CPU, so this file also reads the saved outputs for the usual culprit: a rounding error
printed with its digits (``4.8e-07``), which is what it is because of the order in which one CPU
added, where the page should print the bound it is checked against (``< 1e-6``,
``tinygpt.book.below``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
# 1e-5 and smaller, in scientific notation: the size of float32 and float64 rounding. A bound,
# "< 1e-6", is what should be printed; a setting, "norm_eps=1e-05", and a constant,
# "2^-23 ≈ 1.2e-7", are no rounding errors.
PRINTED_ROUNDING_ERROR = re.compile(r"(?<![\d.=])(?<!< )(?<!≈ )\d(?:\.\d+)?e-(?:0?[5-9]|[1-9]\d)\b")


def compared_outputs(notebook: Path) -> list[tuple[int, str]]:
    """(code cell number as nbval counts it, text) of every output that nbval compares."""
    cells = json.loads(notebook.read_text())["cells"]
    found = []
    for number, cell in enumerate(c for c in cells if c["cell_type"] == "code"):
        tags = cell.get("metadata", {}).get("tags", [])
        if "nbval-ignore-output" in tags or "nbval-skip" in tags:
            continue
        for output in cell.get("outputs", []):
            text = output.get("text") or output.get("data", {}).get("text/plain", "")
            found.append((number, "".join(text)))
    return found


def test_the_pattern_finds_printed_rounding_errors_only():
    caught = ["max |a - b| = 4.8e-07", "7.5e-09 and more", "diff 1e-05", "1.1e-15"]
    passed = ["< 1e-6", "norm_eps=1e-05", "2^-23 ≈ 1.2e-7", "lr 3e-4", "2.9e-03", "1.29e-01",
              "loss 8.516", "step 1e-05x"]  # fmt: skip
    assert all(PRINTED_ROUNDING_ERROR.search(t) for t in caught)
    assert not any(PRINTED_ROUNDING_ERROR.search(t) for t in passed), passed


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_compared_output_prints_a_rounding_error(notebook):
    hits = [
        f"Cell {number}: {match.group()}"
        for number, text in compared_outputs(notebook)
        for match in PRINTED_ROUNDING_ERROR.finditer(text)
    ]
    assert not hits, (
        f"{notebook.name} prints rounding errors that another CPU prints differently: {hits}; "
        "print the bound instead (tinygpt.book.below) or tag the cell nbval-ignore-output"
    )


def book_conftest():
    spec = importlib.util.spec_from_file_location("book_conftest", ROOT / "book" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def other_kernels(notebook: str = "05_gpt") -> dict[str, str]:
    """The environment book/conftest.py starts a notebook's kernel with (unset: left out)."""
    return {k: v for k, v in book_conftest().other_kernels(notebook).items() if v is not None}


PROBE = """
import torch
torch.manual_seed(0)
x, w = torch.randn(64, 384), torch.randn(384, 512)
print(torch.backends.cpu.get_cpu_capability())
print((x @ w).tolist(), torch.softmax(x, -1).tolist())
print(torch.nn.functional.layer_norm(x, (384,)).tolist())
"""


def test_the_notebooks_other_kernels_add_in_another_order():
    """What nbval's kernels compute differs in the last digits from what this CPU's own kernels
    compute, so the comparison of book/conftest.py is a real one here."""
    varied = ("ATEN_CPU_CAPABILITY", "DNNL_MAX_CPU_ISA")
    base = {k: v for k, v in os.environ.items() if k not in varied}

    def probe(env: dict[str, str]) -> list[str]:
        done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                              text=True, check=True)  # fmt: skip
        return done.stdout.splitlines()

    native = probe(base)
    if native[0] == "DEFAULT":
        pytest.skip("this CPU's own kernels are PyTorch's plain loops already")
    other = probe({**base, **other_kernels()})
    assert other[0] == "DEFAULT"
    assert other[1:] != native[1:]  # a matrix product, a softmax, a layer norm: in other orders


def test_each_notebook_runs_on_other_kernels_than_this_cpus():
    """Every notebook's kernel but Appendix A's (which compiles) runs on other ATen kernels: the
    plain loops with oneDNN's AVX2 code, or one vector width down for the notebooks that train."""
    conftest = book_conftest()
    assert conftest.NATIVE_NOTEBOOKS == {"appendix_a_performance"}
    for notebook in NOTEBOOKS:
        env = conftest.other_kernels(notebook.stem)
        if notebook.stem in conftest.NATIVE_NOTEBOOKS:
            assert set(env.values()) == {None}
            continue
        training = notebook.stem in conftest.TRAINING_NOTEBOOKS
        assert env["DNNL_MAX_CPU_ISA"] == (None if training else "AVX2")
        assert env["ATEN_CPU_CAPABILITY"] in (("default", "avx2") if training else ("default",))
        assert env["ATEN_CPU_CAPABILITY"].upper() != conftest.NATIVE
    assert conftest.TRAINING_NOTEBOOKS | conftest.NATIVE_NOTEBOOKS <= {p.stem for p in NOTEBOOKS}
