"""Causal self-attention: one head (Chapter 3), many heads in parallel (Chapter 4).

Shapes follow the book's notation: B batch, T sequence length, C model width (n_embd),
nh heads, hs head size (C // nh).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


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
    """The keys and values of every token seen so far, for every layer (Chapter 7).

    Generating token t+1 needs the keys and values of tokens 0..t, but those of 0..t-1 were
    already computed at the previous steps. The cache keeps them, so each step computes q, k, v
    for the one new token only. Buffers are allocated once at full size (``max_len`` =
    the context window) and filled in place: appending never copies what is already there.
    """

    def __init__(
        self,
        n_layer: int,
        batch_size: int,
        n_head: int,
        head_size: int,
        max_len: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        shape = (n_layer, batch_size, n_head, max_len, head_size)
        self.keys = torch.zeros(shape, device=device, dtype=dtype)
        self.values = torch.zeros(shape, device=device, dtype=dtype)
        self.max_len = max_len
        self.length = 0  # tokens cached so far (the same in every layer)

    def append(
        self, layer: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store new (B, nh, T, hs) keys and values after the cached ones; return all of them."""
        end = self.length + k.size(-2)
        if end > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} tokens; {end} do not fit")
        self.keys[layer, :, :, self.length : end] = k
        self.values[layer, :, :, self.length : end] = v
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]  # (B, nh, end, hs)

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
    ) -> None:
        super().__init__()
        if n_embd % n_head != 0:
            raise ValueError(f"n_embd={n_embd} is not divisible by n_head={n_head}")
        if implementation not in ("sdpa", "eager"):
            raise ValueError(f"implementation must be 'sdpa' or 'eager', got {implementation!r}")
        self.n_head = n_head
        self.n_embd = n_embd
        self.dropout = dropout
        self.implementation = implementation
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)  # q, k, v for all heads at once
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)

    def split_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T, C) -> q, k, v, each (B, nh, T, hs)."""
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # each (B, T, C)
        hs = C // self.n_head
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        return q, k, v

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """The (B, nh, T, T) attention weights for input x (no dropout): what each head looks at."""
        q, k, v = self.split_heads(x)
        return scaled_dot_product_attention(q, k, v, is_causal=True)[1]

    def forward(
        self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0
    ) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.split_heads(x)  # (B, nh, T, hs)
        if cache is not None:
            k, v = cache.append(layer, k, v)  # (B, nh, past + T, hs): the past comes from memory
        dropout_p = self.dropout if self.training else 0.0
        if self.implementation == "sdpa":
            T_k = k.size(-2)
            if T_k == T:  # no past: the plain causal triangle
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
            else:  # new queries sit at the end of the keys (PyTorch's is_causal aligns top-left)
                mask = None if T == 1 else causal_mask(T, T_k, device=x.device)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        else:
            y, _ = scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout_p)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, nh*hs): heads side by side
        return self.resid_dropout(self.c_proj(y))
