"""Chapter 9's parts: Muon beside AdamW, the warmup-stable-decay schedule, QK-norm and ReLU².

Each is proven against a plain computation of what it claims: Muon's step against the
Newton-Schulz iteration written out in float64 (``tinygpt.optim``), the schedule against its
three phases, QK-norm against the bound it promises, ReLU² against its formula."""

import math

import pytest
import torch
import torch.nn.functional as F

from tinygpt import checkpoint as ckpt
from tinygpt.attention import CausalSelfAttention
from tinygpt.model import GPT, GPTConfig, ReLU2MLP
from tinygpt.optim import MuonAdamW, configure_optimizer, newton_schulz
from tinygpt.train import TrainConfig, lr_at, train

TINY = GPTConfig(block_size=16, n_layer=2, n_head=2, n_embd=16, dropout=0.1)
CPU = torch.device("cpu")


def tiny_train(**kwargs) -> TrainConfig:
    base = dict(
        batch_size=4, max_steps=8, warmup_steps=2, eval_interval=4, eval_batches=2,
        log_interval=1, seed=7, optimizer="muon", lr_schedule="wsd", min_lr=0.0,
    )  # fmt: skip
    return TrainConfig(**{**base, **kwargs})


def test_wsd_holds_the_peak_then_falls_linearly_to_min_lr():
    config = TrainConfig(max_steps=1000, warmup_steps=100, learning_rate=1e-3, min_lr=0.0,
                         lr_schedule="wsd", cooldown=0.4)  # fmt: skip
    assert lr_at(0.0, config, 0) == pytest.approx(1e-5)  # warmup, as every schedule
    assert lr_at(0.3, config, 300) == lr_at(0.6, config, 600) == pytest.approx(1e-3)  # stable
    assert lr_at(0.8, config, 800) == pytest.approx(0.5e-3)  # halfway down the cooldown
    assert lr_at(1.0, config, 1000) == 0.0


def test_muon_takes_the_blocks_matrices_and_adamw_the_rest():
    model = GPT(GPTConfig(**{**TINY.to_dict(), "tie_weights": True}))
    optimizer = configure_optimizer(model, TrainConfig(optimizer="muon"), CPU)
    assert isinstance(optimizer, MuonAdamW)
    muon = {id(p) for g in optimizer.muon.param_groups for p in g["params"]}
    named = dict(model.named_parameters())
    expected = {id(p) for n, p in named.items() if n.startswith("transformer.h.") and p.dim() == 2}
    assert muon == expected and len(muon) == 2 * 4  # c_attn, c_proj, c_fc, c_proj per block
    adamw = [p for g in optimizer.adamw.param_groups for p in g["params"]]
    assert model.transformer.wte.weight in adamw  # the (tied) embedding: a lookup table
    assert len(muon) + len(adamw) == len(list(model.parameters()))  # every parameter once


def test_one_muon_step_is_the_orthogonalised_nesterov_momentum():
    """Two steps on a block matrix, recomputed by hand: momentum m = μ m + (1 - μ) g (a running
    mean), Nesterov's look-ahead u = (1 - μ) g + μ m, Newton-Schulz on u, the step scaled to an
    AdamW-sized RMS (0.2 √max(rows, cols)), and decoupled weight decay."""
    torch.manual_seed(0)
    model = GPT(TINY)
    config = TrainConfig(optimizer="muon", learning_rate=0.01, weight_decay=0.1)
    optimizer = configure_optimizer(model, config, CPU)
    weight = model.transformer.h[0].mlp.c_fc.weight  # (4C, C) = (64, 16)
    expected = weight.detach().double().clone()
    momentum = torch.zeros_like(expected)
    for _ in range(2):
        grad = torch.randn_like(weight)
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        weight.grad = grad.clone()
        optimizer.step()
        momentum = 0.95 * momentum + 0.05 * grad.double()
        update = 0.05 * grad.double() + 0.95 * momentum
        scale = 0.2 * math.sqrt(max(weight.shape))
        expected = expected * (1 - 0.01 * 0.1) - 0.01 * scale * newton_schulz(update)
    step = (weight.detach().double() - expected).abs().max()
    assert step <= 0.02 * 0.01 * scale  # torch iterates in bfloat16: 2 % of one step's size


def test_muon_runs_resume_bit_for_bit(tmp_path):
    straight = train(TINY, tiny_train(), tmp_path / "a", progress=False)
    half = train(TINY, tiny_train(), tmp_path / "b", progress=False, halt_at_step=4)
    assert half.stopped == "interrupted"
    resumed = train(TINY, tiny_train(), tmp_path / "b", resume=True, progress=False)
    losses = [(m["step"], m["loss"]) for m in straight.metrics if m["kind"] == "train"]
    assert [(m["step"], m["loss"]) for m in resumed.metrics if m["kind"] == "train"] == losses
    a = ckpt.load(tmp_path / "a" / "last.safetensors")
    b = ckpt.load(tmp_path / "b" / "last.safetensors")
    assert all(torch.equal(a.model_state[k], b.model_state[k]) for k in a.model_state)
    assert a.optimizer_state["param_groups"] == b.optimizer_state["param_groups"]


def test_qk_norm_gives_unit_rms_queries_and_bounded_scores():
    torch.manual_seed(0)
    attn = CausalSelfAttention(32, 4, qk_norm=True)
    with torch.no_grad():
        attn.c_attn.weight.mul_(100.0)  # huge weights: without the norm, scores would explode
    x = torch.randn(2, 10, 32)
    q, k, _ = attn.split_heads(x)
    q, k = attn.normalise_qk(q, k)
    assert torch.allclose(q.pow(2).mean(-1), torch.ones(2, 4, 10), atol=1e-4)
    scores = q @ k.transpose(-2, -1) / math.sqrt(attn.head_size)
    assert scores.abs().max() <= math.sqrt(attn.head_size) + 1e-4
    eager = CausalSelfAttention(32, 4, qk_norm=True, implementation="eager")
    eager.load_state_dict(attn.state_dict())
    assert torch.allclose(attn(x), eager(x), atol=1e-5)  # the fused kernel agrees with ours


def test_relu2_mlp_is_relu_squared():
    config = GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=16, mlp="relu2")
    mlp = ReLU2MLP(config)
    assert mlp.c_fc.out_features == 4 * 16  # as wide as GPT-2's MLP: the same parameters
    x = torch.randn(3, 5, 16)
    hidden = mlp.c_fc(x)
    expected = mlp.c_proj(torch.where(hidden > 0, hidden * hidden, torch.zeros_like(hidden)))
    assert torch.allclose(mlp(x), expected)
    assert isinstance(GPT(config).transformer.h[0].mlp, ReLU2MLP)
    assert F.relu(torch.tensor(-1.0)).square() == 0.0


@pytest.mark.parametrize(
    "field, value", [("optimizer", "sgd"), ("lr_schedule", "step"), ("cooldown", 0.0)]
)
def test_invalid_speedrun_settings_are_clear_errors(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})
