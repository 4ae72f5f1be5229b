"""Tokenizers: GPT-2's byte-level BPE through tiktoken, and the same algorithm from scratch.

``BPETokenizer`` is plain Python. It can learn its own merges from a text
(``BPETokenizer.train``) or take GPT-2's from tiktoken (``BPETokenizer.from_tiktoken``), after
which it produces exactly tiktoken's ids. It is for reading and for checking; the rest of the
package uses tiktoken, which does the same work in Rust.
"""

from __future__ import annotations

import functools
import os
from collections import Counter, defaultdict
from collections.abc import Iterable

import regex

# GPT-2's pre-tokenizer: text is first cut into pieces (contractions, runs of letters, of digits,
# of other symbols, each with at most one leading space; then whitespace) and BPE never merges
# across pieces. So " the" and "the" are different tokens and a word never swallows a comma.
GPT2_SPLIT_PATTERN = (
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)

# Which characters are letters (\p{L}) or numbers (\p{N}) depends on the Unicode version of the
# regex engine's tables. tiktoken's engine (Rust's regex crate) knows Unicode 16.0; Python's regex
# module moves ahead with each release, and a character assigned later (a new CJK block, a new
# script) would be a letter to one and a symbol to the other: different pieces, different ids.
# So the two classes are spelled out from the Unicode 16.0 database (the unicodedata2 package).
UNICODE_VERSION = "16.0.0"


def _as_class(codes: set[int]) -> str:
    r"""A set of code points as a character class, in runs: ``[\U00000041-\U0000005a...]``."""
    runs: list[list[int]] = []
    for code in sorted(codes):
        if runs and runs[-1][1] == code - 1:
            runs[-1][1] = code
        else:
            runs.append([code, code])
    return "[" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in runs) + "]"


@functools.cache
def _unicode_classes() -> dict[str, str]:
    r"""``\p{L}`` and ``\p{N}`` as of Unicode 16.0, written for the regex module: its own class,
    less the code points its newer tables add, plus any they lack (fast, and exact)."""
    import unicodedata2

    if unicodedata2.unidata_version != UNICODE_VERSION:
        raise RuntimeError(
            f"tinygpt's tokenizer needs unicodedata2=={UNICODE_VERSION} (tiktoken's Unicode "
            f"tables), found {unicodedata2.unidata_version}"
        )
    codes = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]  # no surrogates
    everything = "".join(map(chr, codes))
    classes = {}
    for major in ("L", "N"):
        wanted = {c for c in codes if unicodedata2.category(chr(c))[0] == major}
        engine = {ord(ch) for ch in regex.findall(rf"\p{{{major}}}", everything)}
        spelled = rf"\p{{{major}}}"
        if engine - wanted:
            spelled = f"[{spelled}--{_as_class(engine - wanted)}]"
        if wanted - engine:
            spelled = f"[{spelled}{_as_class(wanted - engine)}]"
        classes[major] = spelled
    return classes


@functools.cache
def compile_pattern(pattern: str) -> regex.Pattern:
    r"""``pattern`` compiled with ``\p{L}`` and ``\p{N}`` meaning what they mean to tiktoken."""
    classes = _unicode_classes()
    spelled = pattern.replace(r"\p{L}", classes["L"]).replace(r"\p{N}", classes["N"])
    return regex.compile(spelled, flags=regex.VERSION1)  # V1: sets nest, and -- subtracts




def __getattr__(name: str):
    if name == "GPT2_SPLIT_RE":  # GPT-2's pre-tokenizer, compiled on first use (~0.2 s)
        return compile_pattern(GPT2_SPLIT_PATTERN)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


ENDOFTEXT = "<|endoftext|>"

TIKTOKEN_CACHE_ENV = "TIKTOKEN_CACHE_DIR"
GPT2_VOCAB_URLS = (
    "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
    "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
)

Pair = tuple[int, int]


class VocabularyError(RuntimeError):
    """GPT-2's vocabulary is neither cached nor downloadable. The message says what to do."""


def gpt2_encoding():
    """tiktoken's GPT-2 encoding, with one clear error when its vocabulary cannot be had."""
    import tiktoken

    try:
        return tiktoken.get_encoding("gpt2")
    except Exception as err:  # tiktoken raises requests/urllib errors of several kinds offline
        cache = os.environ.get(TIKTOKEN_CACHE_ENV)
        where = f"{TIKTOKEN_CACHE_ENV}={cache}" if cache else f"{TIKTOKEN_CACHE_ENV} is not set"
        reason = " ".join(f"{type(err).__name__}: {err}".split())[:160]
        raise VocabularyError(
            f"GPT-2's vocabulary is not cached and could not be downloaded ({reason}). Offline, "
            f"point {TIKTOKEN_CACHE_ENV} at a folder holding tiktoken's cached copies of "
            f"{' and '.join(GPT2_VOCAB_URLS)} ({where})."
        ) from None


def pairs_of(ids: list[int]) -> Iterable[Pair]:
    return zip(ids, ids[1:])


def merge(ids: list[int], pair: Pair, new_id: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ``ids`` (left to right) with ``new_id``."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


class BPETokenizer:
    """Byte-level BPE: a token is a byte string; ``merges`` says which two tokens make a third.

    ``vocab`` maps id -> bytes; ``merges`` maps (left id, right id) -> merged id, and a smaller
    merged id means an earlier (more frequent, higher priority) merge. ``byte_ids[b]`` is the id
    of the single byte ``b`` (the identity for our own tokenizers; a permutation for GPT-2).
    """

    def __init__(
        self,
        vocab: dict[int, bytes],
        merges: dict[Pair, int],
        special_tokens: dict[str, int] | None = None,
        pattern: str = GPT2_SPLIT_PATTERN,
    ) -> None:
        self.vocab = dict(vocab)
        self.merges = dict(merges)
        self.special_tokens = dict(special_tokens or {})
        self.pattern = pattern
        self._split = compile_pattern(pattern)
        by_bytes = {b: i for i, b in self.vocab.items()}
        missing = [b for b in range(256) if bytes([b]) not in by_bytes]
        if missing:
            raise ValueError(f"vocab lacks {len(missing)} single bytes (e.g. {missing[:3]})")
        self.byte_ids = [by_bytes[bytes([b])] for b in range(256)]
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab) + len(self.special_tokens)

    # --- learning merges -------------------------------------------------------------------
    @classmethod
    def train(
        cls, text: str, vocab_size: int, pattern: str = GPT2_SPLIT_PATTERN, verbose: bool = False
    ) -> BPETokenizer:
        """Learn ``vocab_size - 256`` merges from ``text``: always merge the most frequent pair.

        The text is cut into pieces with ``pattern`` and each distinct piece is counted once
        with its frequency, so a pass costs the number of distinct pieces, not of characters.
        Pair counts are updated incrementally: after a merge only the pieces that contained the
        pair are re-counted. Ties go to the pair that sorts first, so training is deterministic.
        """
        if vocab_size < 256:
            raise ValueError(f"vocab_size must be at least 256 (the bytes), got {vocab_size}")
        piece_counts = Counter(compile_pattern(pattern).findall(text))
        words = [list(piece.encode("utf-8")) for piece in piece_counts]
        freqs = list(piece_counts.values())

        pair_counts: Counter[Pair] = Counter()
        where: defaultdict[Pair, set[int]] = defaultdict(set)  # pair -> indices of words with it
        for w, (ids, f) in enumerate(zip(words, freqs)):
            for p in pairs_of(ids):
                pair_counts[p] += f
                where[p].add(w)

        vocab = {i: bytes([i]) for i in range(256)}
        merges: dict[Pair, int] = {}
        for new_id in range(256, vocab_size):
            if not pair_counts:
                break  # every piece is a single token already
            pair = max(pair_counts, key=lambda p: (pair_counts[p], -p[0], -p[1]))
            merges[pair] = new_id
            vocab[new_id] = vocab[pair[0]] + vocab[pair[1]]
            if verbose:
                print(
                    f"merge {new_id - 255}: {vocab[pair[0]]!r} + {vocab[pair[1]]!r} "
                    f"-> {vocab[new_id]!r} ({pair_counts[pair]} times)"
                )
            for w in list(where[pair]):
                ids, f = words[w], freqs[w]
                for p in pairs_of(ids):  # take the word's old pairs out ...
                    pair_counts[p] -= f
                    if pair_counts[p] <= 0:
                        del pair_counts[p]
                    where[p].discard(w)
                words[w] = ids = merge(ids, pair, new_id)
                for p in pairs_of(ids):  # ... and put its new pairs in
                    pair_counts[p] += f
                    where[p].add(w)
            del where[pair]
        return cls(vocab, merges, pattern=pattern)

    # --- taking GPT-2's merges from tiktoken -------------------------------------------------
    @classmethod
    def from_tiktoken(cls, encoding=None) -> BPETokenizer:
        """Rebuild GPT-2's merges from tiktoken's public API.

        tiktoken stores a *rank* per token byte string. Token ids 0..255 are single bytes; every
        longer token was made by one merge, and its rank is its position in the merge list. To
        find which two tokens it was made of, run BPE on its bytes using only the merges that
        came before it: what is left is exactly two tokens.
        """
        enc = gpt2_encoding() if encoding is None else encoding
        specials = {s: enc.encode_single_token(s) for s in enc.special_tokens_set}
        special_ids = set(specials.values())
        vocab = {
            i: enc.decode_single_token_bytes(i) for i in range(enc.n_vocab) if i not in special_ids
        }
        rank = {b: i for i, b in vocab.items()}
        merges: dict[Pair, int] = {}
        for token_id in sorted(vocab, key=lambda i: (len(vocab[i]) > 1, i)):
            token = vocab[token_id]
            if len(token) == 1:
                continue
            parts = [bytes([b]) for b in token]
            while len(parts) > 2:
                best = min(
                    range(len(parts) - 1),
                    key=lambda j: rank.get(parts[j] + parts[j + 1], float("inf")),
                )
                if rank.get(parts[best] + parts[best + 1], float("inf")) >= token_id:
                    break
                parts[best : best + 2] = [parts[best] + parts[best + 1]]
            if len(parts) != 2:
                raise ValueError(f"token {token_id} {token!r} is not a merge of two earlier tokens")
            merges[rank[parts[0]], rank[parts[1]]] = token_id
        return cls(vocab, merges, special_tokens=specials, pattern=GPT2_SPLIT_PATTERN)

    # --- encoding and decoding ---------------------------------------------------------------
    def _encode_piece(self, piece: str) -> list[int]:
        cached = self._cache.get(piece)
        if cached is not None:
            return cached
        ids = [self.byte_ids[b] for b in piece.encode("utf-8")]
        while len(ids) >= 2:
            # the earliest-learned merge available anywhere in the piece goes first
            pair = min(pairs_of(ids), key=lambda p: self.merges.get(p, float("inf")))
            if pair not in self.merges:
                break
            ids = merge(ids, pair, self.merges[pair])
        self._cache[piece] = ids
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode ``text``, treating special-token strings as plain text."""
        ids: list[int] = []
        for piece in self._split.findall(text):
            ids.extend(self._encode_piece(piece))
        return ids

    def encode(self, text: str, allowed_special: str | set[str] = "all") -> list[int]:
        """Encode ``text``; occurrences of allowed special tokens become their single ids."""
        allowed = set(self.special_tokens) if allowed_special == "all" else set(allowed_special)
        if not allowed:
            return self.encode_ordinary(text)
        splitter = "(" + "|".join(regex.escape(s) for s in sorted(allowed, key=len)[::-1]) + ")"
        ids: list[int] = []
        for chunk in regex.split(splitter, text):
            if chunk in allowed:
                ids.append(self.special_tokens[chunk])
            elif chunk:
                ids.extend(self.encode_ordinary(chunk))
        return ids

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        inverse_special = {i: s.encode("utf-8") for s, i in self.special_tokens.items()}
        try:
            return b"".join(inverse_special.get(i) or self.vocab[i] for i in ids)
        except KeyError as err:
            raise ValueError(f"unknown token id {err.args[0]}") from None

    def decode(self, ids: Iterable[int]) -> str:
        """Bytes back to text; a cut through a multi-byte character shows as U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        return (
            f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
            f"special_tokens={len(self.special_tokens)})"
        )
