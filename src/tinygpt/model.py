"""The GPT model (Chapter 5): a stack of pre-norm decoder blocks over token + position embeddings.

Module and parameter names mirror Hugging Face's ``GPT2LMHeadModel`` (``transformer.wte``,
``transformer.wpe``, ``transformer.h.N.ln_1``, ``attn.c_attn``, ``mlp.c_fc``, ``transformer.ln_f``,
``lm_head``) so that converting weights either way is a loop (see ``tinygpt.hf``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from tinygpt.attention import CausalSelfAttention, KVCache


@dataclass
class GPTConfig:
    """Everything that fixes the model's shape. Invalid combinations raise a clear ValueError."""

    vocab_size: int = 50257  # V: GPT-2's BPE vocabulary
    block_size: int = 1024  # the context window: the longest sequence T the model accepts
    n_layer: int = 12
    n_head: int = 12  # nh
    n_embd: int = 768  # C (d_model); the head size is hs = C / nh
    dropout: float = 0.0
    bias: bool = True  # biases in Linear layers and LayerNorms, as in GPT-2
    tie_weights: bool = True  # lm_head shares its matrix with wte, as in GPT-2
    attn_implementation: str = "sdpa"  # "sdpa" (fused) or "eager" (ours, written out)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"n_embd (d_model) = {self.n_embd} is not divisible by n_head = {self.n_head}: "
                f"every head needs the same size hs = n_embd / n_head"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.attn_implementation not in ("sdpa", "eager"):
            raise ValueError(
                f"attn_implementation must be 'sdpa' or 'eager', got {self.attn_implementation!r}"
            )

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> GPTConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown GPTConfig field(s): {', '.join(unknown)}")
        return cls(**values)


class MLP(nn.Module):
    """Position-wise feed-forward: widen to 4C, GELU, project back to C."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        # GPT-2 uses the tanh approximation of GELU (Hendrycks & Gimpel, 2016).
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))  # (B, T, C)


class Block(nn.Module):
    """One decoder block. Pre-norm: each sublayer sees a normalised copy of the residual
    stream and *adds* its result back, so the stream itself is never squashed."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(
            config.n_embd, config.n_head, config.dropout, config.bias, config.attn_implementation
        )
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(
        self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0
    ) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer)  # tokens exchange information
        x = x + self.mlp(self.ln_2(x))  # each token thinks on its own
        return x


class GPT(nn.Module):
    """A GPT-2-style decoder-only transformer: ids (B, T) -> next-token logits (B, T, V)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),  # token embeddings
                wpe=nn.Embedding(config.block_size, config.n_embd),  # learned positions
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList(Block(config) for _ in range(config.n_layer)),
                ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:
            # One V×C matrix both reads tokens in and scores tokens out (Press & Wolf, 2017).
            self.lm_head.weight = self.transformer.wte.weight
        self.apply(self._init_weights)
        # GPT-2: each block adds two residual contributions, so scale their last projections by
        # 1/√(2·n_layer) to keep the residual stream's variance from growing with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def weights(self) -> dict[str, torch.Tensor]:
        """The state dict with every tensor once: a tied ``lm_head.weight`` is left out."""
        state = self.state_dict()
        if self.config.tie_weights:
            state.pop("lm_head.weight")  # the same tensor as transformer.wte.weight
        return state

    def load_weights(self, state: dict[str, torch.Tensor]) -> None:
        """Load a full state dict or one from ``weights()``; any other difference raises."""
        if self.config.tie_weights:
            state = {k: v for k, v in state.items() if k != "lm_head.weight"}
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [m for m in missing if not (self.config.tie_weights and m == "lm_head.weight")]
        if missing or unexpected:
            raise ValueError(
                f"weights do not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}"
            )

    def num_parameters(self, exclude_positions: bool = False) -> int:
        """Distinct parameters (a tied matrix counts once), optionally without ``wpe``."""
        n = sum(p.numel() for p in self.parameters())  # parameters() yields tied ones once
        if exclude_positions:
            n -= self.transformer.wpe.weight.numel()
        return n

    def new_cache(self, batch_size: int, device=None, dtype=None) -> KVCache:
        """An empty KV cache for this model, as long as its context window."""
        c = self.config
        device = device or self.lm_head.weight.device
        return KVCache(c.n_layer, batch_size, c.n_head, c.head_size, c.block_size, device, dtype)

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits for every position of ``idx`` (B, T); the loss too if ``targets`` are given.

        With a ``cache``, ``idx`` holds only the *new* tokens: they take the positions after the
        cached ones, attend to everything cached, and are appended to the cache.
        """
        B, T = idx.shape
        past = cache.length if cache is not None else 0
        if past + T > self.config.block_size:
            raise ValueError(
                f"sequence length {past + T} exceeds the context window block_size="
                f"{self.config.block_size}; crop the input to its last {self.config.block_size} "
                f"tokens"
            )
        pos = torch.arange(past, past + T, device=idx.device)  # (T,)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)  # (B, T, C)
        x = self.transformer.drop(x)
        for layer, block in enumerate(self.transformer.h):
            x = block(x, cache, layer)  # (B, T, C)
        if cache is not None:
            cache.length += T
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x)  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1)
        return logits, loss
