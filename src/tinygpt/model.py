"""The GPT model (Chapter 5): a stack of pre-norm decoder blocks over token + position embeddings.

Chapter 8 adds options that turn it, one flag at a time, into a Llama-style decoder: rotary
positions instead of learned ones (``pos_embedding="rope"``), grouped-query attention
(``n_kv_head``), RMSNorm (``norm="rmsnorm"``) and a SwiGLU MLP (``mlp="swiglu"``).

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
from tinygpt.loss import linear_cross_entropy
from tinygpt.rope import RotaryEmbedding


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
    # Chapter 8: the road to Llama. The defaults are GPT-2's.
    n_kv_head: int | None = None  # nkv key/value heads: None = n_head (MHA), 1 = MQA, else GQA
    pos_embedding: str = "learned"  # "learned" (GPT-2's wpe) or "rope" (rotary, Llama)
    rope_theta: float = 10_000.0  # RoPE's base: the slowest pair turns once per ~2π·base tokens
    norm: str = "layernorm"  # "layernorm" (GPT-2) or "rmsnorm" (Llama)
    norm_eps: float = 1e-5
    mlp: str = "gelu"  # "gelu" (GPT-2: 4C wide), "swiglu" (Llama: gated, SiLU) or "relu2" (Ch. 9)
    mlp_hidden: int | None = None  # MLP width; None = 4C for gelu, the same parameters for swiglu
    # Chapter 9: the speedrun's parts. The defaults leave the model as it was.
    qk_norm: bool = False  # RMS-normalise every query and key before attention

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
        for name in ("n_kv_head", "mlp_hidden"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
        if self.n_head % self.kv_heads != 0:
            raise ValueError(
                f"n_head = {self.n_head} is not divisible by n_kv_head = {self.n_kv_head}: "
                f"each key/value head must serve the same number of query heads "
                f"(n_kv_head = n_head is MHA, 1 is MQA, a divisor in between is GQA)"
            )
        choices = dict(
            pos_embedding=("learned", "rope"),
            norm=("layernorm", "rmsnorm"),
            mlp=("gelu", "swiglu", "relu2"),
        )
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name} must be one of {', '.join(map(repr, allowed))}, "
                    f"got {getattr(self, name)!r}"
                )
        if self.pos_embedding == "rope" and self.head_size % 2:
            raise ValueError(
                f"RoPE rotates pairs of numbers, so the head size must be even; "
                f"n_embd / n_head = {self.head_size}"
            )
        if not self.rope_theta > 1.0:
            raise ValueError(f"rope_theta must be > 1, got {self.rope_theta}")
        if not self.norm_eps > 0.0:
            raise ValueError(f"norm_eps must be > 0, got {self.norm_eps}")

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    @property
    def kv_heads(self) -> int:
        """nkv: key/value heads (n_kv_head, or n_head when it is None)."""
        return self.n_head if self.n_kv_head is None else self.n_kv_head

    @property
    def hidden_size(self) -> int:
        """The MLP's inner width. SwiGLU has three matrices instead of two, so by default it is
        2/3 of 4C (rounded up to a multiple of 8), keeping the parameter count about equal."""
        if self.mlp_hidden is not None:
            return self.mlp_hidden
        if self.mlp in ("gelu", "relu2"):
            return 4 * self.n_embd
        return -(-(8 * self.n_embd // 3) // 8) * 8

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
        # [<ch8] self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_fc = nn.Linear(config.n_embd, config.hidden_size, bias=config.bias)  # [ch8]
        # GPT-2 uses the tanh approximation of GELU (Hendrycks & Gimpel, 2016).
        self.gelu = nn.GELU(approximate="tanh")
        # [<ch8] self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.hidden_size, config.n_embd, bias=config.bias)  # [ch8]
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))  # (B, T, C)


class ReLU2MLP(MLP):
    """Chapter 9: the MLP with ReLU(x)² in place of GELU (So et al., 2021, "Primer"): as cheap as
    ReLU, smooth where it turns on, and most hidden units are exactly zero for a given token."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.relu(self.c_fc(x)).square()))  # (B, T, C)


class SwiGLU(nn.Module):
    """Llama's gated feed-forward (Shazeer, 2020): SiLU(x W_gate) ⊙ (x W_up), projected back.

    The gate decides, per hidden unit, how much of the "up" value passes. ``c_fc`` computes gate
    and up in one matrix multiply (gate first), as ``c_attn`` does for q, k and v.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 2 * config.hidden_size, bias=config.bias)
        self.c_proj = nn.Linear(config.hidden_size, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.c_fc(x).chunk(2, dim=-1)  # each (B, T, hidden)
        return self.dropout(self.c_proj(F.silu(gate) * up))  # (B, T, C)


class RMSNorm(nn.Module):
    """Root-mean-square norm (Zhang & Sennrich, 2019): x / rms(x) · g.

    LayerNorm subtracts the mean, divides by the standard deviation, then scales and shifts.
    RMSNorm skips the mean and the shift: cheaper, and it works as well in practice. Computed in
    float32 whatever the input's dtype, as Llama does, because the mean of squares of 16-bit
    numbers loses too many digits.
    """

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)  # (B, T, C)
        return self.weight * normed.to(x.dtype)


def make_norm(config: GPTConfig) -> nn.Module:
    if config.norm == "rmsnorm":
        return RMSNorm(config.n_embd, eps=config.norm_eps)
    return nn.LayerNorm(config.n_embd, eps=config.norm_eps, bias=config.bias)


class Block(nn.Module):
    """One decoder block. Pre-norm: each sublayer sees a normalised copy of the residual
    stream and *adds* its result back, so the stream itself is never squashed."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        # [<ch8] self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.ln_1 = make_norm(config)  # [ch8]
        self.attn = CausalSelfAttention(
            config.n_embd,
            config.n_head,
            config.dropout,
            config.bias,
            config.attn_implementation,
            n_kv_head=config.kv_heads,  # [ch8]
            qk_norm=config.qk_norm,  # [ch9]
        )
        # [<ch8] self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.ln_2 = make_norm(config)  # [ch8]
        # [<ch8] self.mlp = MLP(config)
        # [<ch9] self.mlp = SwiGLU(config) if config.mlp == "swiglu" else MLP(config)
        self.mlp = {"swiglu": SwiGLU, "relu2": ReLU2MLP}.get(config.mlp, MLP)(config)  # [ch9]

    def forward(
        self,
        x: torch.Tensor,
        cache: KVCache | None = None,  # [ch7]
        layer: int = 0,  # [ch7]
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,  # [ch8]
    ) -> torch.Tensor:
        # [<ch7] x = x + self.attn(self.ln_1(x))  # tokens exchange information
        # [<ch8] x = x + self.attn(self.ln_1(x), cache, layer)  # tokens exchange information
        x = x + self.attn(self.ln_1(x), cache, layer, rope)  # tokens exchange information [ch8]
        x = x + self.mlp(self.ln_2(x))  # each token thinks on its own
        return x


class GPT(nn.Module):
    """A GPT-2-style decoder-only transformer: ids (B, T) -> next-token logits (B, T, V)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        layers = dict(wte=nn.Embedding(config.vocab_size, config.n_embd))  # token embeddings
        # [<ch8] layers["wpe"] = nn.Embedding(config.block_size, config.n_embd)  # positions
        if config.pos_embedding == "learned":  # [ch8]
            layers["wpe"] = nn.Embedding(config.block_size, config.n_embd)  # learned positions
        else:  # RoPE: no position vectors; q and k are rotated inside every attention layer
            layers["rotary"] = RotaryEmbedding(config.head_size, config.rope_theta)
        layers["drop"] = nn.Dropout(config.dropout)
        layers["h"] = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        # [<ch8] layers["ln_f"] = nn.LayerNorm(config.n_embd, bias=config.bias)
        layers["ln_f"] = make_norm(config)  # [ch8]
        self.transformer = nn.ModuleDict(layers)
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
        """Load a state dict; a name that is missing or unexpected raises.

        [ch6] It may be a full state dict or one from ``weights()``, without a tied ``lm_head``.
        """
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
        if exclude_positions and "wpe" in self.transformer:
            n -= self.transformer.wpe.weight.numel()
        return n

    def new_cache(self, batch_size: int, device=None, dtype=None) -> KVCache:
        """An empty KV cache for this model (nkv heads per layer), as long as its window."""
        c = self.config
        device = device or self.lm_head.weight.device
        return KVCache(c.n_layer, batch_size, c.kv_heads, c.head_size, c.block_size, device, dtype)

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        cache: KVCache | None = None,  # [ch7]
        *,  # [chA]
        return_logits: bool = True,  # [chA]
        # [<chA] ) -> tuple[torch.Tensor, torch.Tensor | None]:
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:  # [chA]
        """Logits for every position of ``idx`` (B, T); the loss too if ``targets`` are given.

        [ch7] With a ``cache``, ``idx`` holds only the *new* tokens: they take the positions after
        the cached ones, attend to everything cached, and are appended to the cache.

        [chA] ``return_logits=False`` (what the trainer asks for) returns ``(None, loss)``: the
        same loss and gradients, computed by ``tinygpt.loss.linear_cross_entropy`` without ever
        forming the (B, T, V) logits, which is faster and far smaller.
        """
        if not return_logits and targets is None:  # [chA]
            raise ValueError("return_logits=False needs targets: without them there is no loss")
        B, T = idx.shape
        past = cache.length if cache is not None else 0  # tokens already cached [ch7]
        # [<ch7] if T > self.config.block_size:
        if past + T > self.config.block_size:  # [ch7]
            raise ValueError(
                # [<ch7] f"sequence length {T} exceeds the context window block_size="
                f"sequence length {past + T} exceeds the context window block_size="  # [ch7]
                f"{self.config.block_size}; crop the input to its last {self.config.block_size} "
                f"tokens"
            )
        # [<ch7] pos = torch.arange(T, device=idx.device)  # (T,)
        pos = torch.arange(past, past + T, device=idx.device)  # (T,) [ch7]
        x = self.transformer.wte(idx)  # (B, T, C)
        rope = None  # [ch8]
        # [<ch8] x = x + self.transformer.wpe(pos)  # (B, T, C)
        if self.config.pos_embedding == "learned":  # [ch8]
            x = x + self.transformer.wpe(pos)  # (B, T, C)
        else:  # RoPE: positions enter inside attention, as rotations of q and k
            rope = self.transformer.rotary(pos)  # cos, sin: (T, hs) each
        x = self.transformer.drop(x)
        # [<ch7] for block in self.transformer.h:
        for layer, block in enumerate(self.transformer.h):  # [ch7]
            # [<ch7] x = block(x)  # (B, T, C)
            # [<ch8] x = block(x, cache, layer)  # (B, T, C)
            x = block(x, cache, layer, rope)  # (B, T, C) [ch8]
        if cache is not None:  # [ch7]
            cache.length += T
        x = self.transformer.ln_f(x)
        if not return_logits:  # [chA]
            return None, linear_cross_entropy(x, self.lm_head.weight, targets)
        logits = self.lm_head(x)  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1)
        return logits, loss
