"""The notebooks' outputs must be what every CPU prints, and this file makes nbval prove it.

``make notebooks`` writes the committed outputs with PyTorch's kernels for the CPU at hand
(AVX2, AVX-512, AMX, ...). nbval re-executes each notebook in a fresh kernel and compares; here
that kernel is started on other kernels for the same operations: PyTorch's plain C++ loops
instead of its vectorised ones (``ATEN_CPU_CAPABILITY=default``, which also moves matrix
products and reductions), and oneDNN's AVX2 code instead of AVX-512 or AMX (``DNNL_MAX_CPU_ISA``,
bfloat16 products). They add in other orders, so a printed digit that depends on the CPU fails
here, on the machine that wrote it, instead of on a reader's laptop. A value set in the
environment already wins (``ATEN_CPU_CAPABILITY=avx2 make test``).
"""

from __future__ import annotations

import os

import pytest

OTHER_KERNELS = {"ATEN_CPU_CAPABILITY": "default", "DNNL_MAX_CPU_ISA": "AVX2"}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before a notebook's first cell starts its kernel, which inherits this environment."""
    for name, value in OTHER_KERNELS.items():
        os.environ.setdefault(name, value)
