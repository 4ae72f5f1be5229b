"""Sampling (Chapter 7): turn next-token logits into text, one token at a time.

``sample_next`` applies the strategies in a fixed order: repetition penalty, temperature,
top-k, top-p, then draws (or takes the arg-max when ``temperature == 0``). ``generate_stream``
yields tokens as they are produced; ``generate`` collects them.

A draw normally comes from ``torch.multinomial``. It can instead take its random number from
outside (``uniform``, and ``uniforms(seed)`` for a stream of them): the rendered book's live model
samples with the same rules in JavaScript (book/_theme/live/sampler.js), and supplying the same
numbers to both shows that they pick the same tokens.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch

from tinygpt.attention import KVCache
from tinygpt.model import GPT


@dataclass
class SamplingConfig:
    """How to choose each next token. Invalid values raise a ValueError naming the field."""

    temperature: float = 1.0  # 0 = greedy (always the most likely token)
    top_k: int | None = None  # keep only the k most likely tokens
    top_p: float | None = None  # keep the smallest set whose probability reaches p (nucleus)
    repetition_penalty: float = 1.0  # > 1 makes tokens already in the context less likely
    seed: int | None = None  # fixes the random draws

    def __post_init__(self) -> None:
        if not (self.temperature == 0.0 or 1e-4 <= self.temperature <= 1e4):
            raise ValueError(  # beyond these, float32 scores overflow or all become equal
                f"temperature must be >= 0 (0 = greedy; else between 1e-4 and 1e4), "
                f"got {self.temperature}"
            )
        if self.top_k is not None and (isinstance(self.top_k, bool) or self.top_k < 1):
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if not (self.repetition_penalty > 0.0 and math.isfinite(self.repetition_penalty)):
            raise ValueError(
                f"repetition_penalty must be a positive finite number, got "
                f"{self.repetition_penalty}"
            )
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must be between 0 and 2**63 - 1, got {self.seed}")


def apply_repetition_penalty(logits: torch.Tensor, context: torch.Tensor, penalty: float):
    """CTRL's penalty (Keskar et al., 2019): divide positive logits of tokens already in the
    context by ``penalty`` and multiply negative ones by it. logits (B, V), context (B, T)."""
    if penalty == 1.0:
        return logits
    seen = torch.gather(logits, 1, context)
    seen = torch.where(seen > 0, seen / penalty, seen * penalty)
    return logits.scatter(1, context, seen)


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits per row; the rest become -inf (probability 0)."""
    k = min(k, logits.size(-1))
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering (Holtzman et al., 2020): keep the most likely tokens until their total
    probability reaches p; always keep at least the top one.

    The sum runs from the least likely token up: a token is dropped when it and every less
    likely token hold at most 1 - p, i.e. when the tokens above it already hold p. Summing from
    the bottom keeps every token at p = 1 (a sum from the top can reach 1.0 by rounding before
    the last tokens), and it is what Hugging Face's ``TopPLogitsWarper`` does.
    """
    # least likely first; stable, so that tied tokens are dropped in a fixed order (by id)
    sorted_logits, order = torch.sort(logits, descending=False, stable=True, dim=-1)
    mass_up_to = sorted_logits.softmax(dim=-1).cumsum(dim=-1)  # this token and all below it
    drop = mass_up_to <= 1 - p
    drop[..., -1] = False  # the most likely token always stays
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)


def draw_with_uniform(probs: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF sampling: the first token whose running probability (in id order) exceeds
    ``uniform`` (B,) in [0, 1), scaled by the total so that rounding cannot run past the end."""
    cdf = probs.cumsum(dim=-1)  # (B, V)
    target = uniform.to(cdf.dtype).unsqueeze(-1) * cdf[..., -1:]  # (B, 1)
    return (cdf <= target).sum(dim=-1, keepdim=True)  # tokens passed before the draw lands


def sample_next(
    logits: torch.Tensor,
    context: torch.Tensor,
    config: SamplingConfig,
    generator: torch.Generator | None = None,
    uniform: torch.Tensor | None = None,
) -> torch.Tensor:
    """Choose the next token for each row. logits (B, V), context (B, T) -> (B, 1).

    With ``uniform`` (B,) the draw uses those numbers (in float64, as the book's JavaScript
    sampler does) instead of ``torch.multinomial``."""
    logits = logits.double() if uniform is not None else logits.float()
    logits = apply_repetition_penalty(logits, context, config.repetition_penalty)
    if config.temperature == 0.0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / config.temperature
    if config.top_k is not None:
        logits = top_k_filter(logits, config.top_k)
    if config.top_p is not None:
        logits = top_p_filter(logits, config.top_p)
    probs = logits.softmax(dim=-1)
    if uniform is not None:
        return draw_with_uniform(probs, uniform)
    return torch.multinomial(probs, num_samples=1, generator=generator)


def uniforms(seed: int) -> Iterator[float]:
    """Endless uniform numbers in [0, 1) from mulberry32, a 32-bit generator small enough to
    write the same way in JavaScript: the stream the book's live sampler draws for ``seed``."""
    state = seed & 0xFFFFFFFF
    while True:
        state = (state + 0x6D2B79F5) & 0xFFFFFFFF
        t = state
        t = ((t ^ (t >> 15)) * (t | 1)) & 0xFFFFFFFF
        t ^= (t + ((t ^ (t >> 7)) * (t | 61))) & 0xFFFFFFFF
        yield ((t ^ (t >> 14)) & 0xFFFFFFFF) / 4294967296


@torch.no_grad()
def next_token_logits(
    model: GPT, idx: torch.Tensor, cache: KVCache | None
) -> tuple[torch.Tensor, KVCache | None]:
    """Logits (B, V) for the token after ``idx``, reusing and extending ``cache`` if given.

    Without a cache the whole (cropped) context is recomputed every step. With one, only the
    newest token goes through the model. Once the context is longer than the window, learned
    absolute positions shift by one at every step, so every cached key is stale: the cache is
    refilled from the last ``block_size`` tokens, which costs as much as no cache at all but
    keeps the result identical to cropping.
    """
    window = model.config.block_size
    if cache is None:
        return model(idx[:, -window:])[0][:, -1, :], None
    if cache.length == 0 or cache.length >= window or idx.size(1) != cache.length + 1:
        cache.length = 0  # (re)fill: the prompt, or a window that has moved
        logits, _ = model(idx[:, -window:], cache=cache)
    else:
        logits, _ = model(idx[:, -1:], cache=cache)  # one new token against the cached past
    return logits[:, -1, :], cache


@torch.no_grad()
def generate_stream(
    model: GPT,
    idx: torch.Tensor,
    max_new_tokens: int,
    config: SamplingConfig | None = None,
    stop_token: int | None = None,
    banned_token: int | None = None,
    use_cache: bool = True,
    uniform_stream: Iterable[float] | None = None,
) -> Iterator[torch.Tensor]:
    """Yield (B, 1) new tokens one step at a time.

    The model sees at most its last ``block_size`` tokens: longer contexts are cropped from the
    left. Stops after ``max_new_tokens`` or when every row has produced ``stop_token``.
    ``banned_token`` (e.g. a restricted vocabulary's unknown bucket) is never chosen.
    ``use_cache`` decodes incrementally with a KV cache; the tokens are the same either way.
    ``uniform_stream`` (e.g. ``uniforms(seed)``) supplies each draw's random numbers, B per
    step, in place of ``config.seed``'s generator; greedy steps take none.
    """
    config = config or SamplingConfig()
    numbers = iter(uniform_stream) if uniform_stream is not None else None
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if idx.dim() != 2 or idx.size(1) == 0:
        raise ValueError("idx must be a (B, T) tensor with at least one token per row")
    model.eval()
    device = idx.device
    generator = None
    if config.seed is not None:
        generator = torch.Generator(device=device).manual_seed(config.seed)
    cache = model.new_cache(idx.size(0)) if use_cache else None
    finished = torch.zeros(idx.size(0), dtype=torch.bool, device=device)
    for _ in range(max_new_tokens):
        logits, cache = next_token_logits(model, idx, cache)  # (B, V)
        if banned_token is not None:
            logits[:, banned_token] = float("-inf")
        context = idx[:, -model.config.block_size :]
        uniform = None
        if numbers is not None and config.temperature > 0:
            uniform = torch.tensor([next(numbers) for _ in range(idx.size(0))], device=device)
        next_token = sample_next(logits, context, config, generator, uniform)  # (B, 1)
        if stop_token is not None:
            next_token = next_token.masked_fill(finished.unsqueeze(1), stop_token)
            finished |= next_token.squeeze(1) == stop_token
        idx = torch.cat([idx, next_token], dim=1)
        yield next_token
        if stop_token is not None and finished.all():
            return


def generate(
    model: GPT,
    idx: torch.Tensor,
    max_new_tokens: int,
    config: SamplingConfig | None = None,
    stop_token: int | None = None,
    banned_token: int | None = None,
    use_cache: bool = True,
    uniform_stream: Iterable[float] | None = None,
) -> torch.Tensor:
    """The prompt followed by up to ``max_new_tokens`` new tokens: (B, T + new)."""
    new = list(
        generate_stream(
            model, idx, max_new_tokens, config, stop_token, banned_token, use_cache, uniform_stream
        )
    )
    return torch.cat([idx, *new], dim=1) if new else idx


class TextGenerator:
    """Text in, text out: GPT-2 tokenization, the model's (maybe restricted) vocabulary, and
    sampling, together. ``TextGenerator.from_checkpoint("runs/default/best.safetensors")``."""

    def __init__(self, model: GPT, vocab=None, device: str | torch.device = "cpu") -> None:
        from tinygpt.tokenizer import gpt2_encoding

        self.model = model.to(device).eval()
        self.vocab = vocab  # a tinygpt.vocab.RestrictedVocab, or None for all of GPT-2
        self.device = torch.device(device)
        self.encoding = gpt2_encoding()
        self.eot = self.encoding.eot_token

    @classmethod
    def from_checkpoint(cls, path, device: str | torch.device = "cpu") -> TextGenerator:
        from tinygpt import checkpoint as ckpt
        from tinygpt.runs import model_from_checkpoint
        from tinygpt.vocab import RestrictedVocab

        saved = ckpt.load(path)
        model = model_from_checkpoint(saved)
        state = saved.meta.get("vocab")
        try:
            vocab = RestrictedVocab.from_state(state) if state is not None else None
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise ckpt.CheckpointError(f"{path}: its vocabulary is damaged ({err})") from None
        size = vocab.size if vocab is not None else 50257  # GPT-2's, when not restricted
        if size != model.config.vocab_size:
            raise ckpt.CheckpointError(
                f"{path}: its vocabulary has {size} tokens but its model "
                f"{model.config.vocab_size}; the checkpoint is damaged"
            )
        return cls(model, vocab, device)

    def encode(self, prompt: str) -> list[int]:
        """Model ids for a prompt. An empty prompt starts from ``<|endoftext|>``, the token GPT-2
        saw between documents, i.e. "the start of a text"."""
        ids = self.encoding.encode_ordinary(prompt) if prompt else [self.eot]
        if self.vocab is not None:
            ids = self.vocab.to_local(torch.tensor(ids)).tolist()
        return ids

    def decode(self, ids: list[int]) -> str:
        if self.vocab is not None:
            ids = self.vocab.to_global(torch.tensor(ids, dtype=torch.long)).tolist()
        return self.encoding.decode(ids)

    def stream(
        self,
        prompt: str,
        max_new_tokens: int = 200,
        config: SamplingConfig | None = None,
        num_samples: int = 1,
        uniform_stream: Iterable[float] | None = None,
    ) -> Iterator[list[str]]:
        """Yield, per step, the new text of each sample (a list of ``num_samples`` strings).
        ``uniform_stream`` supplies the draws' random numbers (see ``generate_stream``)."""
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        idx = torch.tensor([self.encode(prompt)] * num_samples, device=self.device)
        banned = self.vocab.unk_id if self.vocab is not None else None
        stop = self.eot  # <|endoftext|> ends a sample, if the model knows the token at all
        if self.vocab is not None:
            known = bool((self.vocab.kept == self.eot).any())
            stop = int(self.vocab.to_local(torch.tensor(self.eot))) if known else None
        pending: list[list[int]] = [[] for _ in range(num_samples)]
        steps = generate_stream(
            self.model, idx, max_new_tokens, config, stop, banned, uniform_stream=uniform_stream
        )
        for token in steps:
            out = []
            for row, t in enumerate(token.squeeze(1).tolist()):
                pending[row].append(t)
                text = self.decode(pending[row])
                if text.endswith("\ufffd"):  # half a multi-byte character: wait for the rest
                    out.append("")
                else:
                    pending[row] = []
                    out.append(text)
            yield out

    def __call__(
        self,
        prompt: str,
        max_new_tokens: int = 200,
        config: SamplingConfig | None = None,
        num_samples: int = 1,
        uniform_stream: Iterable[float] | None = None,
    ) -> list[str]:
        """Prompt plus continuation, for each of ``num_samples`` samples."""
        texts = [prompt] * num_samples
        for pieces in self.stream(prompt, max_new_tokens, config, num_samples, uniform_stream):
            texts = [t + p for t, p in zip(texts, pieces)]
        return texts
