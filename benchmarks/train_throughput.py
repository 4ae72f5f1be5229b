"""Training throughput: our GPT against a plain reference GPT-2, same config, batch and optimizer.

The reference is the straightforward GPT-2 written out in this file (fused QKV projection,
PyTorch's fused attention with ``is_causal``, GELU-tanh MLP, pre-norm LayerNorm, tied weights
when the config ties them) that computes its loss the textbook way,
``F.cross_entropy(logits, targets)`` on the full (B, T, V) logits. Three variants are timed on
full training steps (forward, loss, backward, gradient clipping when the recipe clips, AdamW
from ``tinygpt.optim.configure_optimizer``), each with its own copy of the weights, in rotating
order for several rounds so that drifts in the machine's load hit all of them:

- ``ours``: exactly as ``tinygpt train`` runs it, ``model(x, y, return_logits=False)``, whose
  loss never forms the logits (``tinygpt.loss.linear_cross_entropy``, Appendix A);
- ``ours+logits``: the same model computing its loss from the logits like the reference, which
  isolates the model's structure (it should be 1 within the noise);
- ``ref``: the reference.

Reported: the median tokens/s of each and the ratios to the reference (≥ 1 means at least as
fast; the ratio ``ours/ref`` is the one that matters for training), at two configurations:

- ``seed``: ``preset("seed")``: V 50257, T 64, 4 layers, C 128, B 64, untied, no dropout;
- ``default``: ``preset("default")`` with the restricted vocabulary of Chapter 6 (V 7651):
  T 128, 4 layers, C 192, B 32, tied, dropout 0.1.

Before timing, the reference is loaded with our model's weights and must give the same loss
as ours (both ways of computing it) and the same gradients, in float32 and without dropout, so
they really compute the same function and the same update.

    python benchmarks/train_throughput.py
    python benchmarks/train_throughput.py --rounds 7 --steps 3 --configs default
    python benchmarks/train_throughput.py --device cuda --dtype bfloat16 --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tinygpt.model import GPT, GPTConfig
from tinygpt.optim import configure_optimizer
from tinygpt.perf import describe_device, synchronize
from tinygpt.presets import preset
from tinygpt.train import TrainConfig, autocast, pick_device

RESTRICTED_V = 7651  # Chapter 6: GPT-2 tokens seen at least twice in training, plus "unknown"


class ReferenceAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.nh, self.p = cfg.n_head, cfg.dropout
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.out = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        # (B, T, 3C) -> (3, B, nh, T, hs): q, k, v for every head in one view
        q, k, v = self.qkv(x).view(B, T, 3, self.nh, C // self.nh).permute(2, 0, 3, 1, 4)
        p = self.p if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        return self.drop(self.out(y.transpose(1, 2).reshape(B, T, C)))


class ReferenceBlock(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = ReferenceAttention(cfg)
        self.norm2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.ff = nn.Sequential(
            nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias),
            nn.GELU(approximate="tanh"),
            nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias),
            nn.Dropout(cfg.dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ff(self.norm2(x))


class ReferenceGPT(nn.Module):
    """GPT-2 in its plainest form; parameters are registered in the same order as ours."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.tok = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.pos = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.Sequential(*(ReferenceBlock(cfg) for _ in range(cfg.n_layer)))
        self.norm = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.head.weight = self.tok.weight

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        T = idx.size(1)
        x = self.drop(self.tok(idx) + self.pos(torch.arange(T, device=idx.device)))
        logits = self.head(self.norm(self.blocks(x)))  # (B, T, V)
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def copy_weights(ours: GPT, ref: ReferenceGPT) -> None:
    """Give the reference our weights (same registration order, same shapes)."""
    pairs = list(zip(ours.parameters(), ref.parameters(), strict=True))
    with torch.no_grad():
        for a, b in pairs:
            if a.shape != b.shape:
                raise ValueError(f"parameter shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
            b.copy_(a)


def configs(names: list[str]) -> dict[str, tuple[GPTConfig, TrainConfig]]:
    known = {"seed": preset("seed"), "default": preset("default", vocab_size=RESTRICTED_V)}
    return {name: known[name] for name in names}


def measure(
    name: str,
    model_cfg: GPTConfig,
    train_cfg: TrainConfig,
    device: torch.device,
    dtype: str,
    rounds: int,
    steps: int,
) -> dict:
    """Tokens/s of ours and of the reference: ``rounds`` alternations of ``steps`` steps each."""
    torch.manual_seed(0)
    ours = GPT(model_cfg).to(device)
    ref = ReferenceGPT(model_cfg).to(device)
    copy_weights(ours, ref)
    B, T = train_cfg.batch_size, model_cfg.block_size
    x = torch.randint(0, model_cfg.vocab_size, (B, T), device=device)
    y = torch.randint(0, model_cfg.vocab_size, (B, T), device=device)

    # Same weights, same function, same gradients: checked before anything is timed.
    ours.eval()
    ref.eval()
    diff = grad_diff = 0.0
    for return_logits in (True, False):
        loss_ours = ours(x, y, return_logits=return_logits)[1]
        grads_ours = torch.autograd.grad(loss_ours, list(ours.parameters()))
        loss_ref = ref(x, y)[1]
        grads_ref = torch.autograd.grad(loss_ref, list(ref.parameters()))
        diff = max(diff, abs(loss_ours.item() - loss_ref.item()))
        grad_diff = max(
            grad_diff, *((a - b).abs().max().item() for a, b in zip(grads_ours, grads_ref))
        )
    if diff > 1e-4 or grad_diff > 1e-5:
        raise AssertionError(
            f"{name}: the reference differs from ours: loss by {diff:.2e}, "
            f"gradients by {grad_diff:.2e}"
        )
    ours.train()
    ref.train()

    # Three variants, each with its own copy of the weights and its own AdamW: ours as
    # `tinygpt train` runs it, ours computing its loss from the logits like the reference (this
    # isolates the model's structure), and the reference.
    ours_logits = GPT(model_cfg).to(device)
    ours_logits.load_state_dict(ours.state_dict())
    ours_logits.train()
    models = {"ours": ours, "ours_logits": ours_logits, "ref": ref}
    losses = {
        "ours": lambda: ours(x, y, return_logits=False)[1],
        "ours_logits": lambda: ours_logits(x, y)[1],
        "ref": lambda: ref(x, y)[1],
    }
    optimizers = {k: configure_optimizer(m, train_cfg, device) for k, m in models.items()}

    def step(key: str) -> None:
        model, optimizer = models[key], optimizers[key]
        with autocast(device, dtype):
            loss = losses[key]()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if train_cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
        optimizer.step()

    def run(key: str, n: int) -> float:
        # One untimed step first: the memory allocator (and on a GPU the caches) settle on
        # this variant's own tensors, so the timing does not depend on which variant ran before.
        step(key)
        synchronize(device)
        start = time.perf_counter()
        for _ in range(n):
            step(key)
        synchronize(device)
        return n * B * T / (time.perf_counter() - start)

    keys = list(models)
    for key in keys:  # warm-up: thread pools, optimizer state
        step(key)
    rates: dict[str, list[float]] = {key: [] for key in keys}
    for r in range(rounds):  # rotate the order, so that no variant always runs first
        for key in keys[r % 3 :] + keys[: r % 3]:
            rates[key].append(run(key, steps))
    median = {key: statistics.median(v) for key, v in rates.items()}
    per_round = [a / b for a, b in zip(rates["ours"], rates["ref"])]
    per_round_logits = [a / b for a, b in zip(rates["ours_logits"], rates["ref"])]
    return {
        "name": name,
        "V": model_cfg.vocab_size,
        "T": T,
        "B": B,
        "C": model_cfg.n_embd,
        "layers": model_cfg.n_layer,
        "tied": model_cfg.tie_weights,
        "dropout": model_cfg.dropout,
        "params": ours.num_parameters(),
        "ours": median["ours"],
        "ours_logits": median["ours_logits"],
        "ref": median["ref"],
        "ratio": median["ours"] / median["ref"],
        "ratio_min": min(per_round),
        "ratio_max": max(per_round),
        "ratio_logits": median["ours_logits"] / median["ref"],
        "ratio_logits_min": min(per_round_logits),
        "ratio_logits_max": max(per_round_logits),
        "rates": rates,
        "loss_diff": diff,
        "grad_diff": grad_diff,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the three variants")
    parser.add_argument("--steps", type=int, default=2, help="training steps per timing")
    parser.add_argument(
        "--configs", nargs="+", default=["seed", "default"], choices=["seed", "default"]
    )
    parser.add_argument("--device", default="auto", help="auto picks cuda > mps > cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args()
    if args.rounds < 1 or args.steps < 1:
        parser.error("--rounds and --steps must be at least 1")

    device = pick_device(args.device)
    print(
        f"torch {torch.__version__} on {device.type}: {describe_device(device)}; dtype {args.dtype}"
    )
    print(f"{args.rounds} rounds x {args.steps} steps of each variant, in rotating order\n")
    results = []
    for name, (model_cfg, train_cfg) in configs(args.configs).items():
        r = measure(name, model_cfg, train_cfg, device, args.dtype, args.rounds, args.steps)
        assert math.isfinite(r["ratio"]) and r["ratio"] > 0
        results.append(r)
    print(
        f"{'config':<8}{'V':>6}{'T':>5}{'B':>4}{'C':>5}{'tied':>6}{'drop':>6}{'params':>12}"
        f"   before timing, ours vs reference: max |diff|"
    )
    for r in results:
        print(
            f"{r['name']:<8}{r['V']:>6}{r['T']:>5}{r['B']:>4}{r['C']:>5}{str(r['tied']):>6}"
            f"{r['dropout']:>6}{r['params']:>12,}   loss {r['loss_diff']:.1e}, "
            f"gradients {r['grad_diff']:.1e}"
        )
    print(
        f"\n{'tokens/s':<8}{'ours':>8}{'ours+logits':>13}{'ref':>8}"
        f"{'ours/ref':>10}{'per round':>14}{'ours+logits/ref':>17}{'per round':>14}"
    )
    for r in results:
        print(
            f"{r['name']:<8}{r['ours']:>8.0f}{r['ours_logits']:>13.0f}{r['ref']:>8.0f}"
            f"{r['ratio']:>10.3f}{r['ratio_min']:>8.3f}-{r['ratio_max']:.3f}"
            f"{r['ratio_logits']:>17.3f}{r['ratio_logits_min']:>8.3f}-{r['ratio_logits_max']:.3f}"
        )
    print(
        "\nours: as `tinygpt train` runs it, the loss without the logits; ours+logits: the same "
        "model\ncomputing its loss from the logits, like the reference. Ratios of median "
        "tokens/s;\nper round: the range of the per-round ratios."
    )
    if args.json:
        record = {
            "command": "python benchmarks/train_throughput.py " + " ".join(sys.argv[1:]),
            "torch": torch.__version__,
            "device": describe_device(device),
            "dtype": args.dtype,
            "rounds": args.rounds,
            "steps": args.steps,
            "results": results,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
