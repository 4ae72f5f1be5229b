"""Weight averaging (Chapter 9): the EMA equals its formula, is what a run judges and keeps, and a
resumed run averages on bit for bit."""

import pytest
import torch

from tinygpt import checkpoint as ckpt
from tinygpt.averaging import Ensemble, WeightAverage
from tinygpt.model import GPT, GPTConfig
from tinygpt.runs import model_from_checkpoint
from tinygpt.train import TrainConfig, evaluate, prepare_corpus, train

TINY_MODEL = GPTConfig(block_size=16, n_layer=2, n_head=2, n_embd=16, dropout=0.1)


def tiny_train(**kwargs) -> TrainConfig:
    base = dict(batch_size=4, max_steps=12, warmup_steps=2, eval_interval=4, eval_batches=2,
                log_interval=1, seed=7, ema_decay=0.8)  # fmt: skip
    return TrainConfig(**{**base, **kwargs})


def test_the_average_equals_its_formula_by_hand():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=4, n_layer=1, n_head=1, n_embd=8))
    average = WeightAverage(model, decay=0.25)
    by_hand = {name: p.detach().double().clone() for name, p in model.named_parameters()}
    decays = []
    for _ in range(4):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))  # any new weights
        decay = min(0.25, (1 + average.updates) / (10 + average.updates))
        decays.append(decay)
        for name, p in model.named_parameters():
            by_hand[name] = decay * by_hand[name] + (1 - decay) * p.detach().double()
        average.update(model)
    assert decays == [0.1, 2 / 11, 0.25, 0.25]  # a short memory at first, then the set decay
    for name, p in average.model.named_parameters():
        torch.testing.assert_close(p.double(), by_hand[name], rtol=1e-6, atol=1e-7)
    assert not any(p.requires_grad for p in average.model.parameters())
    assert average.model.lm_head.weight is average.model.transformer.wte.weight  # still tied


def test_a_run_judges_and_keeps_the_averaged_weights(tmp_path):
    config = tiny_train()
    result = train(TINY_MODEL, config, tmp_path, progress=False)
    last = ckpt.load(tmp_path / "last.safetensors")
    assert last.meta["average_updates"] == 12
    averaged = model_from_checkpoint(ckpt.Checkpoint(last.model_config, last.average_state))
    trained = model_from_checkpoint(last)
    assert not all(torch.equal(a, b) for a, b in zip(averaged.parameters(), trained.parameters()))
    corpus = prepare_corpus(config.restrict_vocab, config.vocab_min_count)
    cpu = torch.device("cpu")
    evals = [m for m in result.metrics if m["kind"] == "eval"]
    assert evaluate(averaged, corpus, config, cpu)["val_loss"] == evals[-1]["val_loss"]
    assert evaluate(trained, corpus, config, cpu)["val_loss"] != evals[-1]["val_loss"]
    best = ckpt.load(tmp_path / "best.safetensors")  # the average at its best evaluation
    best_eval = min(evals, key=lambda m: m["val_loss"])
    assert best.meta["step"] == best_eval["step"]
    kept = model_from_checkpoint(best)
    assert evaluate(kept, corpus, config, cpu)["val_loss"] == best_eval["val_loss"]


def test_resume_with_averaging_is_bit_identical(tmp_path):
    straight = train(TINY_MODEL, tiny_train(), tmp_path / "a", progress=False)
    half = train(TINY_MODEL, tiny_train(), tmp_path / "b", progress=False, halt_at_step=6)
    assert half.stopped == "interrupted" and half.step == 6
    resumed = train(TINY_MODEL, tiny_train(), tmp_path / "b", resume=True, progress=False)
    evals = [(m["step"], m["val_loss"]) for m in straight.metrics if m["kind"] == "eval"]
    assert [(m["step"], m["val_loss"]) for m in resumed.metrics if m["kind"] == "eval"] == evals
    a = ckpt.load(tmp_path / "a" / "last.safetensors")
    b = ckpt.load(tmp_path / "b" / "last.safetensors")
    for saved in ("model_state", "average_state"):
        x, y = getattr(a, saved), getattr(b, saved)
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def test_resuming_an_unaveraged_run_with_averaging_is_one_clear_error(tmp_path):
    train(TINY_MODEL, tiny_train(ema_decay=0.0, max_steps=2), tmp_path, progress=False)
    with pytest.raises(ckpt.CheckpointError, match="holds no weight average"):
        train(TINY_MODEL, tiny_train(max_steps=4), tmp_path, resume=True, progress=False)


@pytest.mark.parametrize("decay", [-0.1, 1.0, float("nan")])
def test_a_bad_decay_is_refused(decay):
    with pytest.raises(ValueError, match="ema_decay"):
        tiny_train(ema_decay=decay)


def test_an_ensemble_predicts_the_mean_of_its_members_probabilities():
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=13, block_size=8, n_layer=1, n_head=2, n_embd=8)
    members = [GPT(config).eval() for _ in range(3)]
    ensemble = Ensemble(members)
    idx = torch.randint(13, (2, 8))
    targets = torch.randint(13, (2, 8))
    logits, loss = ensemble(idx, targets)
    mean = torch.stack([m(idx)[0].softmax(-1) for m in members]).mean(0)  # (B, T, V)
    torch.testing.assert_close(logits.exp(), mean)
    by_hand = -mean.log().gather(-1, targets.unsqueeze(-1)).mean()
    torch.testing.assert_close(loss, by_hand)
    member_losses = [m(idx, targets)[1] for m in members]
    assert loss <= sum(member_losses) / 3  # Jensen: never worse than the members' mean
    with pytest.raises(ValueError, match="share vocab_size"):
        Ensemble([members[0], GPT(GPTConfig(vocab_size=14, block_size=8, n_layer=1, n_head=2,
                                            n_embd=8))])  # fmt: skip
