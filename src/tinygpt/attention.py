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

    The queries are the *last* T_q positions of the T_k keys (bottom-right alignment), so query i
    sees keys 0 .. i + (T_k - T_q). With T_q == T_k this is the usual lower triangle; with
    T_q == 1 (one new token against a cache of keys) every key is visible.
    """
    return torch.ones(T_q, T_k, dtype=torch.bool, device=device).tril(diagonal=T_k - T_q)


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    is_causal: bool = True,
    dropout_p: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q kᵀ / √hs) v, written out. Returns the output and the attention weights.

    q: (..., T_q, hs); k, v: (..., T_k, hs). Dividing by √hs keeps the scores' variance near 1
    whatever the head size, so the softmax does not saturate into a one-hot at initialisation.
    """
    hs = q.size(-1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(hs)  # (..., T_q, T_k)
    if is_causal:
        mask = causal_mask(q.size(-2), k.size(-2), device=q.device)
        scores = scores.masked_fill(~mask, float("-inf"))  # the future gets weight exactly 0
    weights = scores.softmax(dim=-1)  # (..., T_q, T_k), each row sums to 1
    if dropout_p > 0.0:
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

    It stores ``n_kv_head`` heads per layer: nh with multi-head attention, fewer with grouped-query
    attention (Chapter 8), which is where GQA saves its memory.
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
        """Store new (B, nkv, T, hs) keys and values after the cached ones; return all of them."""
        end = self.length + k.size(-2)
        if end > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} tokens; {end} do not fit")
        self.keys[layer, :, :, self.length : end] = k
        self.values[layer, :, :, self.length : end] = v
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]  # (B, nkv, end, hs)

    @property
    def nbytes(self) -> int:
        """Memory of the cache buffers, in bytes."""
        return self.keys.nbytes + self.values.nbytes


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention, as in GPT-2, with grouped-query attention as an option.

    All heads' queries, keys and values come from one fused matrix multiply (``c_attn``), are
    split into heads by a reshape, attend in parallel, and are merged back and mixed by the
    output projection ``c_proj``. Names mirror Hugging Face's GPT-2 (``attn.c_attn``,
    ``attn.c_proj``) so converting weights is a loop.

    ``n_kv_head`` (nkv) is how many key/value heads there are (Chapter 8). nkv = nh is multi-head
    attention (MHA); 1 < nkv < nh is grouped-query attention (GQA, Ainslie et al., 2023), where
    each group of nh / nkv query heads shares one key/value head; nkv = 1 is multi-query
    attention (MQA, Shazeer, 2019). Fewer key/value heads mean a smaller ``c_attn`` and, above
    all, a smaller KV cache.

    ``implementation`` is ``"sdpa"`` (PyTorch's fused kernel, the default: fastest) or
    ``"eager"`` (our own ``scaled_dot_product_attention`` above: readable, and it can return the
    attention weights). Both compute the same function; the tests prove it.
    """

    def __init__(
        self,
        n_embd: int,
        n_head: int,
        dropout: float = 0.0,
        bias: bool = True,
        implementation: str = "sdpa",
        n_kv_head: int | None = None,
    ) -> None:
        super().__init__()
        n_kv_head = n_head if n_kv_head is None else n_kv_head
        if n_embd % n_head != 0:
            raise ValueError(f"n_embd={n_embd} is not divisible by n_head={n_head}")
        if n_kv_head < 1 or n_head % n_kv_head != 0:
            raise ValueError(
                f"n_head={n_head} is not divisible by n_kv_head={n_kv_head}: each key/value "
                f"head must serve the same number of query heads"
            )
        if implementation not in ("sdpa", "eager"):
            raise ValueError(f"implementation must be 'sdpa' or 'eager', got {implementation!r}")
        self.n_head = n_head
        self.n_kv_head = n_kv_head
        self.n_embd = n_embd
        self.head_size = n_embd // n_head
        self.dropout = dropout
        self.implementation = implementation
        kv_width = n_kv_head * self.head_size
        # q for all nh heads, then k and v for the nkv heads, from one matrix multiply
        self.c_attn = nn.Linear(n_embd, n_embd + 2 * kv_width, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)

    def split_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T, C) -> q (B, nh, T, hs) and k, v (B, nkv, T, hs)."""
        B, T, C = x.shape
        hs, kv_width = self.head_size, self.n_kv_head * self.head_size
        q, k, v = self.c_attn(x).split([C, kv_width, kv_width], dim=2)
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_kv_head, hs).transpose(1, 2)  # (B, nkv, T, hs)
        v = v.view(B, T, self.n_kv_head, hs).transpose(1, 2)  # (B, nkv, T, hs)
        return q, k, v

    def expand_kv(self, kv: torch.Tensor) -> torch.Tensor:
        """(B, nkv, T, hs) -> (B, nh, T, hs): query head h reads key/value head h // (nh/nkv)."""
        return kv.repeat_interleave(self.n_head // self.n_kv_head, dim=1)

    def attention_weights(
        self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """The (B, nh, T, T) attention weights for input x (no dropout): what each head looks at."""
        q, k, v = self.split_heads(x)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        k, v = self.expand_kv(k), self.expand_kv(v)
        return scaled_dot_product_attention(q, k, v, is_causal=True)[1]

    def forward(
        self,
        x: torch.Tensor,
        cache: KVCache | None = None,
        layer: int = 0,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """x (B, T, C) -> (B, T, C). ``rope`` = (cos, sin), each (T, hs), rotates q and k."""
        B, T, C = x.shape
        q, k, v = self.split_heads(x)  # (B, nh, T, hs), (B, nkv, T, hs), (B, nkv, T, hs)
        if rope is not None:  # rotate before caching: a cached key keeps its position's angle
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if cache is not None:
            k, v = cache.append(layer, k, v)  # (B, nkv, past + T, hs): the past comes from memory
        dropout_p = self.dropout if self.training else 0.0
        gqa = self.n_kv_head != self.n_head
        if self.implementation == "sdpa":
            T_k = k.size(-2)
            # new queries sit at the end of the keys (PyTorch's is_causal aligns top-left)
            mask = None if T in (1, T_k) else causal_mask(T, T_k, device=x.device)
            y = F.scaled_dot_product_attention(
                q,
                k,
                v,
                attn_mask=mask,
                dropout_p=dropout_p,
                is_causal=T == T_k and T > 1,
                enable_gqa=gqa,
            )  # (B, nh, T, hs)
        else:
            k, v = self.expand_kv(k), self.expand_kv(v)  # (B, nh, T_k, hs)
            y, _ = scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout_p)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, nh*hs): heads side by side
        return self.resid_dropout(self.c_proj(y))
