"""The notebooks' outputs must be what every CPU prints, and this file makes nbval prove it.

``make notebooks`` writes the committed outputs with PyTorch's kernels for the CPU at hand
(AVX2, AVX-512, AMX, ...). nbval re-executes each notebook in a fresh kernel and compares; here
that kernel is started on other kernels for the same operations, which add in other orders, so
a printed digit that depends on the CPU fails here, on the machine that wrote it, instead of on
a reader's laptop:

- ``ATEN_CPU_CAPABILITY=default``: PyTorch's plain C++ loops instead of its vectorised ones
  (reductions, softmax, norms, and ``torch.randn``'s last bits);
- ``DNNL_MAX_CPU_ISA=AVX2``: oneDNN's AVX2 code instead of AVX-512 or AMX (bfloat16 products,
  GELU).

The plain loops make a training loop two to three times slower, so the notebooks that train for
a minute or more run one vector width down instead (AVX-512 kernels -> AVX2 ones, also another
order of additions, at no cost), with oneDNN's own choice (its AVX2 code slows their GELUs).

Appendix A is left on this CPU's kernels. It compiles a model, and ``torch.compile``'s generated
C++ must match the CPU's own ATen kernels: with torch 2.13 it fails to build under ``default``
and computes garbage under ``avx2`` on an AVX-512 CPU. Its benchmarks' bfloat16 products also
run at a third of their speed on oneDNN's AVX2 code. Its outputs are still compared, and
tests/test_stable_outputs.py still reads them for printed rounding errors.

A value already set in the environment wins (``ATEN_CPU_CAPABILITY=avx2 make test``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

TRAINING_NOTEBOOKS = {"02_embeddings", "06_training", "07_sampling", "appendix_b_gpt2_weights"}
NATIVE_NOTEBOOKS = {"appendix_a_performance"}
ONE_WIDTH_DOWN = {"AVX512": "avx2"}  # and from AVX2 (or anything else): the plain loops
GIVEN = {name: os.environ.get(name) for name in ("ATEN_CPU_CAPABILITY", "DNNL_MAX_CPU_ISA")}
NATIVE = torch.backends.cpu.get_cpu_capability()  # read before this file changes the environment


def other_kernels(notebook: str) -> dict[str, str | None]:
    """The environment a notebook's kernel starts with (None: this CPU's own choice)."""
    if notebook in NATIVE_NOTEBOOKS:
        return {"ATEN_CPU_CAPABILITY": None, "DNNL_MAX_CPU_ISA": None}
    if notebook in TRAINING_NOTEBOOKS:
        aten = ONE_WIDTH_DOWN.get(NATIVE, "default")
        return {"ATEN_CPU_CAPABILITY": aten, "DNNL_MAX_CPU_ISA": None}
    return {"ATEN_CPU_CAPABILITY": "default", "DNNL_MAX_CPU_ISA": "AVX2"}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before a notebook's first cell starts its kernel, which inherits this environment."""
    for name, value in other_kernels(Path(str(item.fspath)).stem).items():
        value = GIVEN[name] if GIVEN[name] is not None else value
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
