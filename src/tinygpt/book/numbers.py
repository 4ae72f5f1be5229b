"""Numbers printed so that every CPU prints the same text.

The last digits of a floating-point result depend on the order in which a CPU's kernels add: a
laptop with AVX2, a server with AVX-512 and one with AMX sum a matrix product in different
orders, and two threads split a reduction differently from eight. A chapter that printed
``max |ours - reference| = 4.8e-07`` would show another number on the reader's machine. So a
rounding error is printed as the bound it is checked against, and the check is made here, in
the same call, so the page cannot claim a bound the code did not meet.
"""

from __future__ import annotations

import re

import torch


def bound_text(bound: float) -> str:
    """``1e-06`` as ``1e-6``, ``0.02`` as ``0.02``."""
    return re.sub(r"e([+-])0*(\d)", lambda m: f"e{m[1].replace('+', '')}{m[2]}", f"{bound:g}")


def below(error: float | torch.Tensor, bound: float) -> str:
    """``"< 1e-6"`` once ``error < bound`` has been checked (else an AssertionError).

    ``error`` may be a tensor of differences: its largest absolute value is checked.
    """
    if isinstance(error, torch.Tensor):
        error = error.detach().abs().max().item()
    if not error < bound:  # also refuses NaN
        raise AssertionError(f"{error:.3g} is not below {bound_text(bound)}")
    return f"< {bound_text(bound)}"
