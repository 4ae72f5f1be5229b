"""Fine-tuning a trained GPT (Chapter 10): a classifier head, instruction tuning, LoRA.

* **Classification**: the LM head (C -> V) is replaced by a head (C -> K classes), read at each
  example's last real token. With right padding and causal attention, the padding after that
  token cannot change it, so no attention mask is needed.
* **Instruction tuning**: prompt + response + <|endoftext|>, with the loss on the response
  tokens only (targets elsewhere are ``IGNORE``), so that the model learns to answer rather
  than to recite prompts. Batches of uneven length are padded on the right.
* **Methods**: ``head`` (only the new head trains), ``full`` (everything), ``lora`` (low-rank
  adapters beside frozen weights, ``tinygpt.lora``, plus the new head), and ``scratch`` (the
  same network from random weights: what pretraining is measured against).
* **Readouts** of a classifier: ``last`` (a head on the last real token's state) or
  ``surprise`` (keep the LM head; a head on how surprised the model is by its most surprising
  token, beyond that token's rarity). A new head trains at the head's rate whatever the method.
* **Budget and early stopping**: a run ends after ``steps`` or ``max_minutes`` of training,
  whichever comes first (the schedule follows the nearer one), and keeps the weights of its
  best validation score.

A fine-tune is saved as one safetensors file of the tensors it changed, with the settings and
the base checkpoint's sha256, so that it is only ever applied to the weights it was trained on.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from tinygpt import files
from tinygpt.checkpoint import CheckpointError
from tinygpt.generate import SamplingConfig, TextGenerator
from tinygpt.lora import add_lora, lora_state
from tinygpt.model import GPT
from tinygpt.tasks import Labelled
from tinygpt.vocab import RestrictedVocab

IGNORE = -100  # a target that adds nothing to the loss (PyTorch's default ignore_index)
FORMAT = "tinygpt-finetune"
METHODS = ("head", "full", "lora", "scratch")
TASKS = ("classify", "instruct")
READOUTS = ("last", "surprise")
# One peak learning rate per method (not tuned per task): a new head or adapter starts from
# nothing and can move fast; pretrained weights should move little; scratch is Chapter 8's rate.
LEARNING_RATES = {"head": 3e-3, "lora": 2e-3, "full": 3e-4, "scratch": 1e-3}
HEAD_RATE = LEARNING_RATES["head"]  # the least a new head trains at beside other weights


@dataclass
class FinetuneConfig:
    task: str = "classify"  # classify: a label per text; instruct: a response per prompt
    method: str = "full"  # head, full, lora or scratch
    lora_rank: int = 8  # r: the adapters' rank
    lora_alpha: float = 16.0  # the update is scaled by alpha / r
    lora_targets: str = "c_attn,c_proj,c_fc"  # which linear layers get adapters
    readout: str = "last"  # classify: what the head reads (see Classifier, SurpriseReadout)
    mask_prompt: bool = True  # instruct: loss on the response only
    steps: int = 300
    batch_size: int = 32
    learning_rate: float = 0.0  # 0: the method's default (LEARNING_RATES)
    eval_interval: int = 50
    max_minutes: float = 0.0  # training time budget; 0 = none (``steps`` alone ends the run)
    seed: int = 0
    labels: tuple[str, ...] = field(default_factory=tuple)  # classify: class names, by id

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.readout not in READOUTS:
            raise ValueError(
                f"unknown readout {self.readout!r}; choose one of {', '.join(READOUTS)}"
            )
        if self.task == "instruct" and self.readout != "last":
            raise ValueError("--readout applies to --task classify only")
        if self.task == "instruct" and self.method == "head":
            raise ValueError(
                "--method head trains a classifier's head; for instruct use lora or full"
            )
        if isinstance(self.lora_rank, bool) or self.lora_rank < 1:
            raise ValueError(f"--lora-rank must be a positive integer, got {self.lora_rank}")
        if not self.lora_alpha > 0:
            raise ValueError(f"--lora-alpha must be positive, got {self.lora_alpha}")
        for name in ("steps", "batch_size", "eval_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
        for name in ("learning_rate", "max_minutes"):
            value = getattr(self, name)
            if value < 0 or not math.isfinite(value):
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
        self.labels = tuple(self.labels)

    @property
    def lr(self) -> float:
        return self.learning_rate or LEARNING_RATES[self.method]

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(t.strip() for t in self.lora_targets.split(",") if t.strip())


class Classifier(nn.Module):
    """A GPT whose LM head is replaced by a (C -> K) head, read at each row's last real token."""

    def __init__(self, gpt: GPT, n_classes: int) -> None:
        super().__init__()
        gpt.lm_head = nn.Linear(gpt.config.n_embd, n_classes)  # unties it from wte, if tied
        nn.init.normal_(gpt.lm_head.weight, std=0.02)
        nn.init.zeros_(gpt.lm_head.bias)
        self.gpt = gpt

    def forward(self, idx: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        scores, _ = self.gpt(idx)  # (B, T, K): the head applied at every position
        return scores[torch.arange(idx.size(0), device=idx.device), lengths - 1]  # (B, K)


def add_end_of_text(generator: TextGenerator) -> int:
    """Make ``<|endoftext|>`` a token the model can read and write; return its model id.

    A restricted vocabulary (Chapter 6) keeps only tokens of the training text, and
    ``<|endoftext|>`` is not one. GPT-2's id for it, 50256, is the largest, so it takes the
    local id after the kept tokens and the unknown bucket moves up one. Its new row starts at
    the mean of the embeddings (Hewitt, 2021): a typical token, not a random one."""
    vocab, model = generator.vocab, generator.model
    if vocab is None:
        return generator.eot
    if bool((vocab.kept == generator.eot).any()):
        return int(vocab.to_local(torch.tensor(generator.eot)))
    old = model.transformer.wte.weight.detach()  # (V, C): kept rows, then unk
    mean = old[:-1].mean(dim=0, keepdim=True)
    model.transformer.wte = nn.Embedding(old.size(0) + 1, old.size(1), device=old.device)
    with torch.no_grad():
        model.transformer.wte.weight.copy_(torch.cat([old[:-1], mean, old[-1:]]))
    if model.config.tie_weights:
        model.lm_head = nn.Linear(old.size(1), old.size(0) + 1, bias=False)
        model.lm_head.weight = model.transformer.wte.weight
    else:
        head = model.lm_head.weight.detach()
        model.lm_head = nn.Linear(old.size(1), old.size(0) + 1, bias=False)
        with torch.no_grad():
            model.lm_head.weight.copy_(torch.cat([head[:-1], head[:-1].mean(0, True), head[-1:]]))
    model.config = replace(model.config, vocab_size=old.size(0) + 1)
    generator.vocab = RestrictedVocab(torch.cat([vocab.kept, torch.tensor([generator.eot])]))
    return int(generator.vocab.to_local(torch.tensor(generator.eot)))


class SurpriseReadout(nn.Module):
    """A GPT that keeps its LM head and classifies by its own surprise.

    The feature is one number per text: the largest amount by which a token's loss exceeds
    that token's loss under a unigram model of the training texts, so that a rare word may
    surprise but a common word out of place stands out. It is standardised over the training
    texts at the start (``calibrate``) and read by a (1 -> K) head."""

    def __init__(self, gpt: GPT, n_classes: int) -> None:
        super().__init__()
        self.gpt = gpt
        self.register_buffer("unigram_loss", torch.zeros(gpt.config.vocab_size))  # (V,)
        self.register_buffer("centre", torch.zeros(()))
        self.register_buffer("spread", torch.ones(()))
        self.head = nn.Linear(1, n_classes)
        nn.init.zeros_(self.head.weight)  # starts at "no idea": every class equally likely
        nn.init.zeros_(self.head.bias)

    def surprise(self, idx: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B,): each row's largest token loss minus that token's unigram loss."""
        logits, _ = self.gpt(idx)  # (B, T, V)
        targets = idx[:, 1:]  # (B, T - 1)
        nll = F.cross_entropy(logits[:, :-1].transpose(1, 2).float(), targets, reduction="none")
        excess = nll - self.unigram_loss[targets]  # (B, T - 1)
        real = torch.arange(targets.size(1), device=idx.device) < (lengths - 1)[:, None]
        most = excess.masked_fill(~real, float("-inf")).max(dim=1).values  # (B,)
        return torch.where(lengths > 1, most, torch.zeros_like(most))  # one token: no surprise

    def forward(self, idx: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        feature = (self.surprise(idx, lengths) - self.centre) / self.spread  # (B,)
        return self.head(feature[:, None])  # (B, K)

    @torch.no_grad()
    def calibrate(self, rows: list[list[int]], pad_id: int) -> None:
        """Unigram losses from the training texts (add-one counts), and the feature's mean and
        standard deviation over (up to 512 of) them, measured with the model as it starts."""
        counts = torch.bincount(torch.tensor([t for r in rows for t in r]),
                                minlength=self.unigram_loss.numel()).double() + 1  # fmt: skip
        self.unigram_loss.copy_(-(counts / counts.sum()).log())
        was_training = self.training
        self.eval()
        features = torch.cat([
            self.surprise(*classify_batch(rows[i : i + 64], pad_id))
            for i in range(0, min(len(rows), 512), 64)
        ])  # fmt: skip
        self.centre.copy_(features.mean())
        self.spread.copy_(features.std().clamp(min=1e-6))
        self.train(was_training)


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of a classifier's new head (none for instruction tuning)."""
    if isinstance(model, Classifier):
        return list(model.gpt.lm_head.parameters())
    if isinstance(model, SurpriseReadout):
        return list(model.head.parameters())
    return []


def prepare(gpt: GPT, config: FinetuneConfig) -> nn.Module:
    """The model to fine-tune, with only what ``config.method`` trains left trainable."""
    if config.method == "scratch":
        gpt = GPT(gpt.config)  # the same network, random weights (seeded by the caller)
    model = gpt
    if config.task == "classify":
        readout = SurpriseReadout if config.readout == "surprise" else Classifier
        model = readout(gpt, len(config.labels))
    if config.method in ("head", "lora"):
        gpt.requires_grad_(False)
    if config.method == "lora":
        add_lora(gpt.transformer, config.lora_rank, config.lora_alpha, config.targets)
    for p in head_parameters(model):  # a new head has nothing to adapt: it trains
        p.requires_grad_(True)
    return model


def pad(rows: list[list[int]], value: int) -> torch.Tensor:
    """(B, T) with every row padded on the right to the longest."""
    longest = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (longest - len(r)) for r in rows])


def classify_batch(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows -> (idx (B, T), lengths (B,))."""
    return pad(rows, pad_id), torch.tensor([len(r) for r in rows])


def instruct_batch(
    prompts: list[list[int]], responses: list[list[int]], pad_id: int, mask_prompt: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets (B, T) for next-token training on prompt + response.

    Targets are the inputs shifted by one; padding's targets are IGNORE, and so are the
    prompt's if ``mask_prompt``: the first target that counts is the response's first token."""
    inputs, targets = [], []
    for prompt, response in zip(prompts, responses):
        sequence = prompt + response
        target = sequence[1:]
        if mask_prompt:
            target = [IGNORE] * (len(prompt) - 1) + target[len(prompt) - 1 :]
        inputs.append(sequence[:-1])
        targets.append(target)
    return pad(inputs, pad_id), pad(targets, IGNORE)


def response_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood over the targets that are not IGNORE.

    logits: (B, T, V); targets: (B, T). Equal to F.cross_entropy(..., ignore_index=IGNORE)."""
    counted = targets != IGNORE  # (B, T)
    log_probs = F.log_softmax(logits.float(), dim=-1)  # (B, T, V)
    picked = log_probs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (B, T)
    return -(picked * counted).sum() / counted.sum().clamp(min=1)


class Encoded:
    """A task's examples as model token ids, cropped to the model's window."""

    def __init__(self, generator: TextGenerator, examples: list, eot: int | None = None) -> None:
        window = generator.model.config.block_size
        self.examples = examples
        self.classify = bool(examples) and isinstance(examples[0], Labelled)
        if self.classify:  # the end of a long text: the last token must be its last token
            self.rows = [generator.encode(e.text)[-window:] for e in examples]
            self.labels = torch.tensor([e.label for e in examples])
        else:
            self.prompts = [generator.encode(e.prompt) for e in examples]
            self.responses = [generator.encode(e.response) + [eot] for e in examples]
            for i, (p, r) in enumerate(zip(self.prompts, self.responses)):
                if len(p) + len(r) - 1 > window:  # crop the prompt's start, keep its end
                    self.prompts[i] = p[len(p) + len(r) - 1 - window :]

    def __len__(self) -> int:
        return len(self.examples)

    def batch(self, picks: list[int], pad_id: int, mask_prompt: bool = True) -> tuple:
        if self.classify:
            return (*classify_batch([self.rows[i] for i in picks], pad_id), self.labels[picks])
        prompts = [self.prompts[i] for i in picks]
        return instruct_batch(prompts, [self.responses[i] for i in picks], pad_id, mask_prompt)


def batch_loss(model: nn.Module, batch: tuple) -> torch.Tensor:
    if isinstance(model, (Classifier, SurpriseReadout)):
        idx, lengths, labels = batch
        return F.cross_entropy(model(idx, lengths), labels)
    inputs, targets = batch
    return response_loss(model(inputs)[0], targets)


def lr_at(progress: float, peak: float, warmup: float = 0.1) -> float:
    """Linear warmup over the first 10% of the run, then linear decay to zero at its end.

    ``progress`` is how far through the run the step ends, in (0, 1]."""
    return peak * min(progress / warmup, (1.0 - progress) / (1.0 - warmup), 1.0)


def head_rate(config: FinetuneConfig) -> float:
    """A new head's peak rate: the run's own when only the head trains, else at least
    HEAD_RATE, since a head that starts from nothing must move further than what it reads."""
    return config.lr if config.method == "head" else max(config.lr, HEAD_RATE)


def finetune(
    model: nn.Module,
    train: Encoded,
    config: FinetuneConfig,
    pad_id: int,
    evaluate: Callable[[int], dict] | None = None,
    log: Callable[[dict], None] | None = None,
) -> list[dict]:
    """AdamW on the trainable parameters, on batches drawn at random, for ``config.steps`` steps
    or ``config.max_minutes`` of training (validation not counted), whichever ends first.

    Returns the metrics: the training loss every step, and ``evaluate(step)`` (whose "score"
    is higher for better) every ``eval_interval`` steps and at the end. With ``evaluate``, the
    model keeps the weights of its best evaluation (early stopping), logged last as "kept"."""
    head = {id(p) for p in head_parameters(model)}
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [  # a new head starts from nothing: it trains at head_rate (see there)
        {"params": [p for p in trainable if id(p) not in head], "peak": config.lr},
        {"params": [p for p in trainable if id(p) in head], "peak": head_rate(config)},
    ]
    groups = [g for g in groups if g["params"]]
    optimizer = torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.95), weight_decay=0.0)
    draws = torch.Generator().manual_seed(config.seed)
    budget, spent, metrics, best = config.max_minutes * 60.0, 0.0, [], None
    for step in range(config.steps):
        started = time.perf_counter()
        model.train()
        picks = torch.randint(len(train), (config.batch_size,), generator=draws).tolist()
        loss = batch_loss(model, train.batch(picks, pad_id, config.mask_prompt))
        progress = max((step + 1) / config.steps, spent / budget if budget else 0.0)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(min(progress, 1.0), group["peak"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        spent += time.perf_counter() - started
        last = step + 1 == config.steps or (budget and spent >= budget)
        metrics.append({"kind": "train", "step": step + 1, "loss": loss.item(), "seconds": spent})
        if evaluate and ((step + 1) % config.eval_interval == 0 or last):
            metrics.append({"kind": "val", "step": step + 1, "seconds": spent,
                            **evaluate(step + 1)})  # fmt: skip
            if best is None or metrics[-1]["score"] > best[0]["score"]:
                best = (metrics[-1], {n: p.detach().clone() for n, p in model.named_parameters()
                                      if p.requires_grad})  # fmt: skip
        if log:
            log(metrics[-1])
        if last:
            break
    if best is not None:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in best[1]:
                    p.copy_(best[1][name])
        metrics.append({**best[0], "kind": "kept"})
        if log:
            log(metrics[-1])
    return metrics


def fit(
    generator: TextGenerator,
    config: FinetuneConfig,
    train_set: list,
    val_set: list,
    log: Callable[[dict], None] | None = None,
) -> tuple[nn.Module, list[dict]]:
    """Prepare ``generator``'s model as ``config`` says, fine-tune it on ``train_set`` and
    measure it on ``val_set`` as it goes (accuracy, or the loss on the answers), keeping its
    best weights: the model and its metrics. ``tinygpt finetune`` and
    benchmarks/finetune.py both run this."""
    eot = add_end_of_text(generator) if config.task == "instruct" else None
    pad_id = eot if eot is not None else 0
    torch.manual_seed(config.seed)
    model = prepare(generator.model, config)
    train_data, val_data = Encoded(generator, train_set, eot), Encoded(generator, val_set, eot)
    if isinstance(model, SurpriseReadout):
        model.calibrate(train_data.rows, pad_id)

    def evaluate(step: int) -> dict:
        if config.task == "classify":
            right = (predict(model, val_data, pad_id) == val_data.labels).sum().item()
            return {"val_accuracy": right / len(val_data), "score": right / len(val_data)}
        loss = mean_response_loss(model, val_data, pad_id)
        return {"val_loss": loss, "score": -loss}

    return model, finetune(model, train_data, config, pad_id, evaluate, log)


@torch.no_grad()
def class_scores(
    model: nn.Module, data: Encoded, pad_id: int, batch_size: int = 64
) -> torch.Tensor:
    """The classifier's scores (logits) for every example: (N, K)."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(data), batch_size):
        idx, lengths, _ = data.batch(list(range(start, min(start + batch_size, len(data)))), pad_id)
        out.append(model(idx.to(device), lengths.to(device)).float().cpu())
    return torch.cat(out)


def predict(model: nn.Module, data: Encoded, pad_id: int) -> torch.Tensor:
    """Predicted class ids for every example: (N,)."""
    return class_scores(model, data, pad_id).argmax(-1)


@torch.no_grad()
def mean_response_loss(model: GPT, data: Encoded, pad_id: int, batch_size: int = 64) -> float:
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(data), batch_size):
        inputs, targets = data.batch(list(range(start, min(start + batch_size, len(data)))), pad_id)
        n = int((targets != IGNORE).sum())
        total += response_loss(model(inputs)[0], targets).item() * n
        count += n
    return total / max(count, 1)


def answer(generator: TextGenerator, prompt: str, max_new_tokens: int = 8) -> str:
    """The greedy response to ``prompt``, up to <|endoftext|> (which is not returned)."""
    text = generator(prompt, max_new_tokens, SamplingConfig(temperature=0.0))[0]
    return text[len(prompt) :].split("<|endoftext|>")[0]


def wilson_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of an accuracy of correct/n (Wilson, 1927)."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def is_new_part(model: nn.Module, name: str) -> bool:
    """Whether ``name`` in the model's state is something fine-tuning added, not the base's."""
    if isinstance(model, Classifier):
        return name.startswith("gpt.lm_head.")
    return isinstance(model, SurpriseReadout) and not name.startswith("gpt.")


def changed_state(model: nn.Module, config: FinetuneConfig) -> dict[str, torch.Tensor]:
    """The tensors a fine-tune changed: what its file must hold."""
    state = model.state_dict()
    if config.method in ("full", "scratch"):
        kept = state
    else:  # the new head (and what a readout reads with), and the adapters
        kept = {k: v for k, v in state.items() if is_new_part(model, k)}
        if config.method == "lora":
            kept.update(lora_state(model))
    seen, out = set(), {}
    for name, tensor in kept.items():  # a tied matrix is stored once
        if tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            out[name] = tensor.detach().cpu().contiguous()
    return out


def save(path: str | Path, model: nn.Module, config: FinetuneConfig, base_sha256: str) -> Path:
    """Write the fine-tune atomically: its tensors, its settings, the base it belongs to."""
    meta = {
        "format": FORMAT,
        "config": json.dumps(asdict(config)),
        "base_sha256": base_sha256,
    }
    with files.atomic_path(path) as tmp:
        save_file(changed_state(model, config), tmp, metadata=meta)
    return Path(path)


def read(path: str | Path) -> tuple[FinetuneConfig, dict[str, torch.Tensor], str]:
    """A fine-tune file's settings, tensors and base sha256; CheckpointError if it is not one."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "finetuned.safetensors"
    if not path.is_file():
        raise CheckpointError(f"no fine-tune at {path}")
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise CheckpointError(f"{path} is not a tinygpt fine-tune (tinygpt finetune)")
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
        config = FinetuneConfig(**json.loads(meta["config"]))
        return config, tensors, meta["base_sha256"]
    except CheckpointError:
        raise
    except (SafetensorError, OSError, KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable fine-tune: {err}") from None


def apply(generator: TextGenerator, path: str | Path, base_sha256: str) -> nn.Module:
    """Rebuild a fine-tuned model on ``generator``'s base model and load its tensors."""
    config, tensors, wanted = read(path)
    if wanted != base_sha256:
        raise CheckpointError(
            f"{path} was fine-tuned from another base (sha256 {wanted[:12]}…, this one is "
            f"{base_sha256[:12]}…); give the checkpoint it was trained from"
        )
    if config.task == "instruct":
        add_end_of_text(generator)
    model = prepare(generator.model, config)
    state = model.state_dict()
    wrong = [k for k, v in tensors.items() if k not in state or state[k].shape != v.shape]
    if wrong:
        raise CheckpointError(f"{path}: {wrong[0]} does not fit the base model")
    model.load_state_dict(tensors, strict=False)
    if config.task == "instruct":
        generator.model = model
    return model.eval()


def load_base(
    spec: str | Path, block_size: int = 128, device: str = "cpu"
) -> tuple[TextGenerator, str]:
    """The model to fine-tune and its file's sha256: a ``tinygpt train`` run folder or
    checkpoint, or GPT-2 (a hub name such as ``gpt2``, or a folder with config.json and
    model.safetensors; Appendix B), its window cropped to ``block_size``."""
    from tinygpt.data import sha256_of
    from tinygpt.pretrained import gpt2_files, gpt2_for_finetuning

    if is_gpt2_base(spec):
        model = gpt2_for_finetuning(spec, block_size, dropout=0.0)
        return TextGenerator(model, None, device), sha256_of(gpt2_files(spec)[1])
    path = Path(spec).expanduser()
    if path.is_dir():
        path = path / "best.safetensors"
    return TextGenerator.from_checkpoint(path, device), sha256_of(path)


def is_gpt2_base(spec: str | Path) -> bool:
    """Whether ``load_base`` reads ``spec`` as GPT-2: a folder with Hugging Face's files, or a
    hub name such as ``gpt2`` that is not a path here."""
    from tinygpt.pretrained import FILES

    path = Path(spec).expanduser()
    hf_folder = path.is_dir() and all((path / name).is_file() for name in FILES)
    return hf_folder or (not path.exists() and str(spec).startswith("gpt2"))
