"""Fine-tuning (tinygpt.finetune, Chapter 10): the instruction mask and padding against
F.cross_entropy(ignore_index=-100) on hand-built batches, the classifier's reading of the last
real token, what each method trains, the new <|endoftext|> row, saving and applying a
fine-tune, and the GPT-2 weights path on a random Hugging Face model, offline."""

import pytest
import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.utils import logging as hf_logging

from tinygpt import finetune as ft
from tinygpt import tasks
from tinygpt.checkpoint import CheckpointError
from tinygpt.lora import LoRALinear
from tinygpt.model import GPT, GPTConfig
from tinygpt.train import TrainConfig, train

hf_logging.disable_progress_bar()
LABELS = ("no", "yes")


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """A tiny trained base, with Tiny Shakespeare's restricted vocabulary (no <|endoftext|>)."""
    out = tmp_path_factory.mktemp("base")
    model = GPTConfig(block_size=32, n_layer=1, n_head=2, n_embd=16, pos_embedding="rope")
    config = TrainConfig(batch_size=4, max_steps=3, eval_interval=3, eval_batches=1)
    train(model, config, out, progress=False)
    return out


def test_instruct_batch_by_hand():
    inputs, targets = ft.instruct_batch([[1, 2, 3], [4, 5]], [[6, 7], [8]], pad_id=0)
    # sequences 1 2 3 6 7 and 4 5 8: inputs drop the last token, targets the first
    assert inputs.tolist() == [[1, 2, 3, 6], [4, 5, 0, 0]]
    assert targets.tolist() == [[-100, -100, 6, 7], [-100, 8, -100, -100]]
    inputs, targets = ft.instruct_batch([[1, 2, 3], [4, 5]], [[6, 7], [8]], 0, mask_prompt=False)
    assert targets.tolist() == [[2, 3, 6, 7], [5, 8, -100, -100]]  # padding is never a target


def test_response_loss_is_cross_entropy_with_ignore_index():
    torch.manual_seed(0)
    _, targets = ft.instruct_batch([[1, 2, 3, 4], [5]], [[6, 7], [8, 9, 2]], pad_id=0)
    logits = torch.randn(*targets.shape, 11)
    reference = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
    assert torch.allclose(ft.response_loss(logits, targets), reference, atol=1e-6)
    counted = targets != -100
    by_hand = -F.log_softmax(logits, -1)[counted].gather(1, targets[counted][:, None]).mean()
    assert torch.allclose(ft.response_loss(logits, targets), by_hand, atol=1e-6)
    changed = logits.clone()
    changed[~counted] = torch.randn_like(changed[~counted]) * 100  # prompt and padding positions
    assert torch.allclose(ft.response_loss(changed, targets), reference, atol=1e-6)


def test_the_classifier_reads_each_rows_last_real_token():
    torch.manual_seed(0)
    model = ft.Classifier(
        GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=8)), 3
    ).eval()
    rows = [[1, 2, 3, 4, 5], [6, 7]]
    idx, lengths = ft.classify_batch(rows, pad_id=0)
    together = model(idx, lengths)
    alone = torch.cat([model(torch.tensor([r]), torch.tensor([len(r)])) for r in rows])
    assert torch.allclose(together, alone, atol=1e-6)  # padding after a row cannot reach it
    idx[1, 2:] = 9  # other padding: the same scores
    assert torch.allclose(model(idx, lengths), together, atol=1e-6)


def trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_each_method_trains_what_it_says(base_run):
    for method in ft.METHODS:
        generator, _ = ft.load_base(base_run)
        before = {k: v.clone() for k, v in generator.model.state_dict().items()}
        config = ft.FinetuneConfig("classify", method, lora_rank=2, labels=LABELS)
        torch.manual_seed(0)
        model = ft.prepare(generator.model, config)
        names = trainable(model)
        if method == "head":
            assert names == {"gpt.lm_head.weight", "gpt.lm_head.bias"}
        elif method == "lora":
            assert names - {"gpt.lm_head.weight", "gpt.lm_head.bias"}
            assert all(".lora_" in n for n in names if "lm_head" not in n)
        else:
            assert names == {n for n, _ in model.named_parameters()}
        wte = model.gpt.transformer.wte.weight
        assert torch.equal(wte, before["transformer.wte.weight"]) == (method != "scratch")


def reply_data(n=12):
    return [tasks.Labelled(f"text number {i}\n\nand its reply {i % 3}", i % 2) for i in range(n)]


def test_lora_training_changes_only_the_adapters_and_the_head(base_run):
    generator, _ = ft.load_base(base_run)
    config = ft.FinetuneConfig(
        "classify", "lora", lora_rank=2, steps=3, batch_size=4, labels=LABELS
    )
    torch.manual_seed(0)
    model = ft.prepare(generator.model, config)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ft.finetune(model, ft.Encoded(generator, reply_data()), config, pad_id=0)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(".lora_B" in k or ".lora_A" in k or "lm_head" in k for k in changed)
    assert any(".lora_B" in k for k in changed)


def test_end_of_text_gets_a_row_and_old_tokens_keep_their_scores(base_run):
    generator, _ = ft.load_base(base_run)
    old_vocab, model = generator.vocab, generator.model.eval()
    idx = torch.tensor([[1, 2, 3, old_vocab.unk_id]])
    before = model(idx)[0]
    eot = ft.add_end_of_text(generator)
    assert eot == old_vocab.size - 1 and generator.vocab.unk_id == old_vocab.unk_id + 1
    new_idx = idx.clone()
    new_idx[0, 3] = generator.vocab.unk_id
    after = generator.model(new_idx)[0]
    assert after.shape[-1] == before.shape[-1] + 1
    assert torch.allclose(after[..., :eot], before[..., :eot], atol=1e-5)
    assert torch.allclose(after[..., -1], before[..., -1], atol=1e-5)  # the unknown bucket
    assert generator.decode([eot]) == "<|endoftext|>"
    assert ft.add_end_of_text(generator) == eot  # a second call changes nothing


def test_save_and_apply_give_back_the_fine_tuned_model(base_run, tmp_path):
    runs = [("classify", "lora", "last"), ("instruct", "lora", "last"),
            ("instruct", "full", "last"), ("classify", "head", "surprise"),
            ("classify", "lora", "surprise")]  # fmt: skip
    for task, method, readout in runs:
        generator, sha = ft.load_base(base_run)
        config = ft.FinetuneConfig(
            task,
            method,
            lora_rank=2,
            readout=readout,
            steps=2,
            batch_size=2,
            labels=LABELS if task == "classify" else (),
        )
        eot = ft.add_end_of_text(generator) if task == "instruct" else None
        torch.manual_seed(0)
        model = ft.prepare(generator.model, config)
        if readout == "surprise":
            model.calibrate(ft.Encoded(generator, reply_data()).rows, pad_id=0)
        data = (
            reply_data()
            if task == "classify"
            else [
                tasks.Instruction("Say it.", "a b", "b"),
                tasks.Instruction("Say it.", "c d", "c"),
            ]
        )
        ft.finetune(model, ft.Encoded(generator, data, eot), config, pad_id=eot or 0)
        path = ft.save(tmp_path / f"{task}-{method}-{readout}.safetensors", model, config, sha)
        fresh, _ = ft.load_base(base_run)
        loaded = ft.apply(fresh, path, sha)
        for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
            assert torch.equal(a, b), name
        with pytest.raises(CheckpointError, match="another base"):
            ft.apply(ft.load_base(base_run)[0], path, "0" * 64)


def test_the_surprise_readout_is_the_largest_excess_loss_by_hand():
    """SurpriseReadout's feature, computed by hand from the model's logits: each real token's
    loss minus its unigram loss, the largest per row; padding never counts."""
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=8)).eval()
    model = ft.SurpriseReadout(gpt, 2)
    rows = [[1, 2, 3, 4, 5], [6, 7], [8]]
    model.calibrate(rows, pad_id=0)
    counts = torch.bincount(torch.tensor([1, 2, 3, 4, 5, 6, 7, 8]), minlength=20).double() + 1
    assert torch.allclose(model.unigram_loss, -(counts / counts.sum()).log().float())
    idx, lengths = ft.classify_batch(rows, pad_id=0)
    got = model.surprise(idx, lengths)
    for b, row in enumerate(rows):
        logits = gpt(torch.tensor([row]))[0][0]  # (T, V), the row alone
        by_hand = [
            -logits[t].log_softmax(-1)[row[t + 1]] - model.unigram_loss[row[t + 1]]
            for t in range(len(row) - 1)
        ]
        expected = max(by_hand) if by_hand else torch.tensor(0.0)  # one token: no surprise
        assert got[b].item() == pytest.approx(expected.item(), abs=1e-5)
    idx[1, 2:] = 19  # other padding: the same feature
    assert torch.allclose(model.surprise(idx, lengths), got, atol=1e-6)
    assert model(idx, lengths).shape == (3, 2)


def test_a_budget_ends_the_run_and_the_best_validation_weights_are_kept(base_run):
    """Early stopping: the weights at the end are those of the best validation score, which
    may be an earlier step's; and a time budget ends a run long before its steps."""
    generator, _ = ft.load_base(base_run)
    config = ft.FinetuneConfig(
        "classify", "head", steps=6, batch_size=4, eval_interval=1, labels=LABELS
    )
    torch.manual_seed(0)
    model = ft.prepare(generator.model, config)
    head = model.gpt.lm_head.weight
    scores = iter([0.5, 0.9, 0.1, 0.2, 0.3, 0.4])  # the best is step 2
    seen = {}

    def evaluate(step):
        seen[step] = head.detach().clone()
        return {"val_accuracy": 0.0, "score": next(scores)}

    metrics = ft.finetune(model, ft.Encoded(generator, reply_data()), config, 0, evaluate)
    assert metrics[-1]["kind"] == "kept" and metrics[-1]["step"] == 2
    assert torch.equal(head, seen[2]) and not torch.equal(head, seen[6])
    timed = ft.FinetuneConfig(
        "classify", "head", steps=10**6, max_minutes=1e-4, batch_size=4, labels=LABELS
    )
    metrics = ft.finetune(model, ft.Encoded(generator, reply_data()), timed, pad_id=0)
    assert metrics[-1]["step"] < 10**6  # the budget, not the steps, ended it


def test_the_schedule_warms_up_and_decays_to_zero():
    assert ft.lr_at(0.05, 1e-3) == pytest.approx(0.5e-3)
    assert ft.lr_at(0.1, 1e-3) == pytest.approx(1e-3)
    assert ft.lr_at(0.55, 1e-3) == pytest.approx(0.5e-3)
    assert ft.lr_at(1.0, 1e-3) == 0.0
    # A new head trains at the grid's rate alone, and at least at HEAD_RATE beside other weights
    assert ft.head_rate(ft.FinetuneConfig(method="head", learning_rate=1e-3)) == 1e-3
    assert ft.head_rate(ft.FinetuneConfig(method="full", learning_rate=1e-4)) == ft.HEAD_RATE
    assert ft.head_rate(ft.FinetuneConfig(method="lora", learning_rate=8e-3)) == 8e-3


def test_config_errors():
    with pytest.raises(ValueError, match="readout applies"):
        ft.FinetuneConfig("instruct", "full", readout="surprise")
    with pytest.raises(ValueError, match="max-minutes"):
        ft.FinetuneConfig(max_minutes=-1)
    with pytest.raises(ValueError, match="lora-rank"):
        ft.FinetuneConfig(lora_rank=0)
    with pytest.raises(ValueError, match="unknown method"):
        ft.FinetuneConfig(method="adapters")
    with pytest.raises(ValueError, match="classifier's head"):
        ft.FinetuneConfig("instruct", "head")


def test_wilson_interval_matches_scipy():
    from scipy.stats import binomtest

    for k, n in ((50, 100), (1, 40), (913, 1800)):
        ci = binomtest(k, n).proportion_ci(method="wilson")
        assert ft.wilson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-4)


def test_gpt2_weights_fine_tune_unchanged_offline(tmp_path):
    """Appendix B's path: a (random) Hugging Face GPT-2 folder is a base like any other; its
    vocabulary is GPT-2's own, so <|endoftext|> needs no new row."""
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=50257, n_positions=64, n_embd=16, n_layer=2, n_head=2)
    GPT2LMHeadModel(config).save_pretrained(tmp_path)
    generator, sha = ft.load_base(tmp_path, block_size=32)
    assert generator.vocab is None and ft.add_end_of_text(generator) == 50256
    tune = ft.FinetuneConfig(
        "instruct", "lora", lora_rank=2, steps=2, batch_size=2, lora_targets="c_attn"
    )
    model = ft.prepare(generator.model, tune)
    assert sum(isinstance(m, LoRALinear) for m in model.modules()) == 2
    data = [tasks.Instruction("Say it.", "a b", "b"), tasks.Instruction("Say it.", "c d", "c")]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ft.finetune(model, ft.Encoded(generator, data, 50256), tune, pad_id=50256)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(".lora_" in k for k in changed)
    assert len(sha) == 64


def test_the_committed_measurements_agree_with_the_code():
    """book/results/finetune/results.json (benchmarks/finetune.py): each run's trainable count is
    what ``prepare`` gives the base model's shape, its rate is the best of its grid, its kept
    step is its best validation score, each interval is its Wilson interval, and each
    instruction run's exact matches recount from its answers."""
    import json
    from pathlib import Path

    from tinygpt.data import load_text

    results = json.loads(Path("book/results/finetune/results.json").read_text())
    shape = GPTConfig(**results["setup"]["base_config"]["model"])
    test_prompts = tasks.instruction_examples(tasks.split_speeches(load_text())["test"])

    def check_interval(r, name):
        assert ft.wilson_interval(r["test_correct"], r["test_n"]) == pytest.approx(r["ci95"]), name

    for name, run in results["runs"].items():
        config = ft.FinetuneConfig(**run["config"])
        torch.manual_seed(0)
        gpt = GPT(shape)
        if config.task == "instruct":
            gpt.transformer.wte = torch.nn.Embedding(shape.vocab_size + 1, shape.n_embd)
            gpt.lm_head.weight = gpt.transformer.wte.weight  # the new <|endoftext|> row
        model = ft.prepare(gpt, config)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert trainable == run["trainable_parameters"], name
        assert run["optimizer_bytes"] == 8 * run["trainable_parameters"]
        assert run["test_correct"] / run["test_n"] == run["test_accuracy"]
        check_interval(run, name)
        if run["grid"]:  # the rate is the grid's best on validation
            best = max(run["grid"], key=lambda rate: run["grid"][rate]["val_score"])
            assert float(best) == config.learning_rate, name
        evaluations = [m for m in run["curve"] if m["kind"] == "val"]
        kept = run["curve"][-1]
        assert kept["kind"] == "kept" and kept["score"] == max(m["score"] for m in evaluations)
        assert kept["step"] == run["kept_step"] <= run["steps"], name
        if config.task == "classify":
            check_interval(run["pairwise"], name)
        else:
            hits = [a.strip() == e.response for a, e in zip(run["answers"], test_prompts)]
            assert len(hits) == run["test_n"] and sum(hits) == run["test_correct"], name
    names = ("majority", "bag_of_words", "word_bigrams", "common_answer", "untuned")
    for name in names:
        check_interval(results["baselines"][name], name)
    for name in ("lm_val", "lm_test", "bigram_val", "bigram_test"):
        check_interval(results["zero_shot"][name], name)
