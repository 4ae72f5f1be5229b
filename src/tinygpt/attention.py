"""Causal self-attention: one head (Chapter 3), many heads in parallel (Chapter 4).

Shapes follow the book's notation: B batch, T sequence length, C model width (n_embd),
nh heads, hs head size (C // nh).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from tinygpt.rope import apply_rope


def causal_mask(T_q: int, T_k: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(T_q, T_k) booleans, True where query i may look at key j.

    With as many queries as keys (T_q == T_k) this is the lower triangle: query i sees keys
    0 .. i, itself and the past, never the future.

    [ch7] With fewer queries, they are the *last* T_q positions of the T_k keys (bottom-right
    alignment), so query i sees keys 0 .. i + (T_k - T_q): one new token (T_q == 1) sees every
    key stored before it.
    """
    return torch.ones(T_q, T_k, dtype=torch.bool, device=device).tril(diagonal=T_k - T_q)


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    is_causal: bool = True,
    dropout_p: float = 0.0,  # [ch4]
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q kᵀ / √hs) v, written out. Returns the output and the attention weights.

    q: (..., T_q, hs); k, v: (..., T_k, hs). For q and k of unit variance, dividing by √hs keeps
    the scores' variance at 1 whatever the head size, so the softmax does not saturate into a
    one-hot.
    """
    hs = q.size(-1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(hs)  # (..., T_q, T_k)
    if is_causal:
        mask = causal_mask(q.size(-2), k.size(-2), device=q.device)
        scores = scores.masked_fill(~mask, float("-inf"))  # the future gets weight exactly 0
    weights = scores.softmax(dim=-1)  # (..., T_q, T_k), each row sums to 1
    if dropout_p > 0.0:  # [ch4]
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights  # (..., T_q, hs), (..., T_q, T_k)


class SelfAttentionHead(nn.Module):
    """One head of causal self-attention, with its own query, key and value projections."""

    def __init__(self, n_embd: int, head_size: int, bias: bool = True) -> None:
        super().__init__()
        self.query = nn.Linear(n_embd, head_size, bias=bias)
        self.key = nn.Linear(n_embd, head_size, bias=bias)
        self.value = nn.Linear(n_embd, head_size, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, T, C) -> (B, T, hs)
        q, k, v = self.query(x), self.key(x), self.value(x)  # each (B, T, hs)
        out, _ = scaled_dot_product_attention(q, k, v, is_causal=True)
        return out


class KVCache:
    """The keys and values of every token seen so far, for every layer (Chapters 7 and 8).

    Generating token t+1 needs the keys and values of tokens 0..t, but those of 0..t-1 were
    already computed at the previous steps. The cache keeps them, so each step computes q, k, v
    for the one new token only. Buffers are allocated once at full size (``max_len`` =
    the context window) and filled in place: appending never copies what is already there.

    [ch8] It stores ``n_kv_head`` heads per layer: nh with multi-head attention, fewer with
    grouped-query attention, which is where GQA saves its memory.
    """

    def __init__(
        self,
        n_layer: int,
        batch_size: int,
        n_kv_head: int,
        head_size: int,
        max_len: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        shape = (n_layer, batch_size, n_kv_head, max_len, head_size)
        self.keys = torch.zeros(shape, device=device, dtype=dtype)
        self.values = torch.zeros(shape, device=device, dtype=dtype)
        self.max_len = max_len
        self.length = 0  # tokens cached so far (the same in every layer)

    def append(
        self, layer: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the new keys and values of ``layer`` after the cached ones; return all of them."""
        end = self.length + k.size(-2)  # k, v: (B, heads, T, hs), T new tokens
        if end > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} tokens; {end} do not fit")
        self.keys[layer, :, :, self.length : end] = k
        self.values[layer, :, :, self.length : end] = v
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]  # every token so far

    @property
    def nbytes(self) -> int:
        """Memory of the cache buffers, in bytes."""
        return self.keys.nbytes + self.values.nbytes


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention, as in GPT-2.

    All heads' queries, keys and values come from one fused matrix multiply (``c_attn``), are
    split into heads by a reshape, attend in parallel, and are merged back and mixed by the
    output projection ``c_proj``. Names mirror Hugging Face's GPT-2 (``attn.c_attn``,
    ``attn.c_proj``) so converting weights is a loop.

    [ch8] ``n_kv_head`` (nkv) is how many key/value heads there are. nkv = nh is multi-head
    attention (MHA); 1 < nkv < nh is grouped-query attention (GQA, Ainslie et al., 2023), where
    each group of nh / nkv query heads shares one key/value head; nkv = 1 is multi-query
    attention (MQA, Shazeer, 2019). Fewer key/value heads mean a smaller ``c_attn`` and, above
    all, a smaller KV cache.

    ``implementation`` is ``"sdpa"`` (PyTorch's fused kernel, the default: fastest) or
    ``"eager"`` (our own ``scaled_dot_product_attention`` of Chapter 3: readable, and it can
    return the attention weights). Both compute the same function.
    """

    def __init__(
        self,
        n_embd: int,
        n_head: int,
        dropout: float = 0.0,
        bias: bool = True,
        implementation: str = "sdpa",
        n_kv_head: int | None = None,  # [ch8]
        qk_norm: bool = False,  # [ch9]
    ) -> None:
        super().__init__()
        n_kv_head = n_head if n_kv_head is None else n_kv_head  # [ch8]
        if n_embd % n_head != 0:
            raise ValueError(f"n_embd={n_embd} is not divisible by n_head={n_head}")
        if n_kv_head < 1 or n_head % n_kv_head != 0:  # [ch8]
            raise ValueError(
                f"n_head={n_head} is not divisible by n_kv_head={n_kv_head}: each key/value "
                f"head must serve the same number of query heads"
            )
        if implementation not in ("sdpa", "eager"):
            raise ValueError(f"implementation must be 'sdpa' or 'eager', got {implementation!r}")
        self.n_head = n_head
        self.n_kv_head = n_kv_head  # [ch8]
        self.n_embd = n_embd
        self.head_size = n_embd // n_head
        self.dropout = dropout
        self.implementation = implementation
        self.qk_norm = qk_norm  # [ch9]
        kv_width = n_kv_head * self.head_size  # k and v for nkv heads only [ch8]
        # q, k and v for all heads from one matrix multiply
        # [<ch8] self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_attn = nn.Linear(n_embd, n_embd + 2 * kv_width, bias=bias)  # [ch8]
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)

    def split_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T, C) -> q, k and v, split into heads: (B, nh, T, hs) each."""
        B, T, C = x.shape
        hs = self.head_size
        kv_width = self.n_kv_head * hs  # [ch8]
        # [<ch8] q, k, v = self.c_attn(x).split(C, dim=2)  # each (B, T, C)
        q, k, v = self.c_attn(x).split([C, kv_width, kv_width], dim=2)  # [ch8]
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        # [<ch8] k = k.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        # [<ch8] v = v.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_kv_head, hs).transpose(1, 2)  # (B, nkv, T, hs) [ch8]
        v = v.view(B, T, self.n_kv_head, hs).transpose(1, 2)  # (B, nkv, T, hs) [ch8]
        return q, k, v

    def normalise_qk(  # [ch9]
        self, q: torch.Tensor, k: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """QK-norm: every query and key scaled to RMS 1 (no gain), so a score q·k/√hs
        lies in [-√hs, √hs] however large the weights grow; attention cannot saturate into a
        one-hot, which is what lets a higher learning rate train stably (Dehghani et al., 2023)."""
        shape = (self.head_size,)
        return F.rms_norm(q, shape), F.rms_norm(k, shape)

    def expand_kv(self, kv: torch.Tensor) -> torch.Tensor:  # [ch8]
        """(B, nkv, T, hs) -> (B, nh, T, hs): query head h reads key/value head h // (nh/nkv)."""
        return kv.repeat_interleave(self.n_head // self.n_kv_head, dim=1)

    def attention_weights(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,  # [ch8]
    ) -> torch.Tensor:
        """The (B, nh, T, T) attention weights for input x (no dropout): what each head looks at."""
        q, k, v = self.split_heads(x)
        if self.qk_norm:  # [ch9]
            q, k = self.normalise_qk(q, k)
        if rope is not None:  # [ch8]
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        k, v = self.expand_kv(k), self.expand_kv(v)  # [ch8]
        return scaled_dot_product_attention(q, k, v, is_causal=True)[1]

    def forward(
        self,
        x: torch.Tensor,
        cache: KVCache | None = None,  # [ch7]
        layer: int = 0,  # [ch7]
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,  # [ch8]
    ) -> torch.Tensor:
        """x (B, T, C) -> (B, T, C)."""
        B, T, C = x.shape
        # [<ch8] q, k, v = self.split_heads(x)  # (B, nh, T, hs) each
        q, k, v = self.split_heads(x)  # q (B, nh, T, hs); k, v (B, nkv, T, hs) [ch8]
        if self.qk_norm:  # [ch9]
            q, k = self.normalise_qk(q, k)
        if rope is not None:  # rotate q and k, before caching [ch8]
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if cache is not None:  # [ch7]
            k, v = cache.append(layer, k, v)  # past + T keys and values: the past from memory
        dropout_p = self.dropout if self.training else 0.0
        if self.implementation == "sdpa":
            T_k = k.size(-2)  # [ch7]
            # new queries sit at the end of the keys (PyTorch's is_causal aligns top-left) [ch7]
            mask = None if T in (1, T_k) else causal_mask(T, T_k, device=x.device)  # [ch7]
            y = F.scaled_dot_product_attention(
                q,
                k,
                v,
                attn_mask=mask,  # [ch7]
                dropout_p=dropout_p,
                # [<ch7] is_causal=True,
                is_causal=T == T_k and T > 1,  # [ch7]
                enable_gqa=self.n_kv_head != self.n_head,  # [ch8]
            )  # (B, nh, T, hs)
        else:
            k, v = self.expand_kv(k), self.expand_kv(v)  # (B, nh, T_k, hs) [ch8]
            y, _ = scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout_p)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, nh*hs): heads side by side
        return self.resid_dropout(self.c_proj(y))
