"""Performance arithmetic (Appendix A): FLOPs per token, model FLOPs utilisation, fair timings.

A training step's cost is dominated by matrix multiplies. Each parameter that multiplies an
activation costs 2 FLOPs per token forward (a multiply and an add) and 4 backward (the
gradients with respect to the input and to the weight), so 6N in all; attention's two
T-long products (q kᵀ and the weighted sum of v) add 12·n_layer·C·T (Kaplan et al., 2020;
PaLM's appendix B, Chowdhery et al., 2022). Divide the FLOPs a model *needs* by the FLOPs the
device *could* do and you get model FLOPs utilisation (MFU).

Timings on a shared machine drift; ``interleaved`` runs the variants in turn, round after round,
so a drift hits all of them, and the comparison is a ratio of medians.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable, Mapping

import torch

from tinygpt.model import GPT

# Vendor peak throughput of dense matrix multiplies (no 2:4 sparsity), in FLOP/s, from NVIDIA's
# data sheets (their headline tensor-core numbers assume sparsity: halve them for dense).
GPU_PEAK_FLOPS: dict[str, dict[str, float]] = {
    "H200": {"bfloat16": 989e12, "float32": 67e12},
    "H100 SXM": {"bfloat16": 989e12, "float32": 67e12},
    "H100 PCIe": {"bfloat16": 756e12, "float32": 51e12},
    "A100": {"bfloat16": 312e12, "float32": 19.5e12},
}


def gpu_peak_flops(device_name: str, dtype: str = "bfloat16") -> float | None:
    """The data-sheet peak for a CUDA device name (``torch.cuda.get_device_name``), or None."""
    name = device_name.upper()
    if "H100" in name:
        key = "H100 PCIe" if "PCIE" in name else "H100 SXM"
    else:
        key = next((k for k in GPU_PEAK_FLOPS if k.upper() in name), None)
    return None if key is None else GPU_PEAK_FLOPS[key].get(dtype)


def describe_device(device: torch.device | str) -> str:
    """A device's name, for the record: the GPU's model, or the CPU's and its thread count."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple silicon GPU (MPS)"
    try:
        with open("/proc/cpuinfo") as f:
            name = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        name = platform.processor() or platform.machine()
    return f"{name}, {torch.get_num_threads()} threads"


def multiplied_parameters(model: GPT) -> int:
    """N: the parameters that multiply activations. Lookup tables only gather rows, so the
    position table and an untied token table are left out; a tied table *is* counted, because
    it is also the output projection ``lm_head``."""
    n = model.num_parameters(exclude_positions=True)
    if not model.config.tie_weights:
        n -= model.transformer.wte.weight.numel()
    return n


def flops_per_token(model: GPT, T: int | None = None) -> int:
    """Training FLOPs per token, forward and backward: 6N + 12·n_layer·C·T.

    T is the sequence length (default: the context window). Biases and norm gains are counted
    in N as if they were multiplied too, a tiny overestimate; softmax, GELU and the norms' own
    arithmetic are not counted at all.
    """
    c = model.config
    T = c.block_size if T is None else T
    return 6 * multiplied_parameters(model) + 12 * c.n_layer * c.n_embd * T


def mfu(tokens_per_s: float, flops_per_token: float, peak_flops: float) -> float:
    """Model FLOPs utilisation: the share of the device's peak the model's arithmetic uses."""
    return tokens_per_s * flops_per_token / peak_flops


def synchronize(device: torch.device | str) -> None:
    """Wait for queued GPU work, so a timer measures the work and not just its launch."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def interleaved(
    fns: Mapping[str, Callable[[], object]],
    rounds: int = 5,
    warmup: int = 1,
    device: torch.device | str = "cpu",
) -> dict[str, list[float]]:
    """Seconds per call of each function, measured in turn for ``rounds`` rounds.

    Each function first runs ``warmup`` times untimed (allocations, lazy initialisation). The
    order is reversed every other round (A B, B A, A B ...), so that neither variant always runs
    right after the other.
    """
    if rounds < 1 or warmup < 0:
        raise ValueError(f"need rounds >= 1 and warmup >= 0, got {rounds} and {warmup}")
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    synchronize(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            fns[name]()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return times


def speedup(times: Mapping[str, list[float]], baseline: str, candidate: str) -> float:
    """How many times faster ``candidate`` is than ``baseline``: a ratio of median times."""
    return statistics.median(times[baseline]) / statistics.median(times[candidate])


def matmul_flops(
    n: int = 2048,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    repeats: int = 3,
) -> float:
    """FLOP/s of the best of ``repeats`` (n × n) @ (n × n) products: an achievable peak.

    A large square matrix multiply is the friendliest workload a device gets, so this is close
    to the most a model can hope for on it (2n³ FLOPs per product).
    """
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    a @ b  # warm-up: thread pools, kernels, caches
    times = interleaved({"matmul": lambda: a @ b}, rounds=repeats, warmup=0, device=device)
    return 2 * n**3 / min(times["matmul"])
