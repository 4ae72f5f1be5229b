"""Our byte-level BPE against tiktoken: identical ids on the corpus and on tricky text."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygpt.data import split_text
from tinygpt.tokenizer import ENDOFTEXT, BPETokenizer, merge

TRICKY = [
    "",
    "Mary had a little lamb",
    "Leaving this place is something",
    "I'm sure you'll see we've they'd it's I'M SHOUTING Don't",  # contractions, both cases
    "   leading spaces, trailing spaces   ",
    "runs of\n\n\nnewlines\n \n\t\ttabs\r\n and\u00a0no-break space",
    "digits 0 12 345 6789 3.14159 1,000,000 2026-11-25 ①②③ ٣٤٥",
    "naïve café résumé Ångström — “quotes” ‘single’ «guillemets»",
    "中文分词不用空格 日本語のテキスト 한국어 텍스트 Ελληνικά русский עברית العربية",
    "emoji 🤖🎭👩‍👩‍👧‍👦 🇬🇧 flags and skin 👍🏽 zero\u200bwidth",
    "code: def f(x):\n    return x**2  # comment\n",
    "'''''' ''' ' 's 't 're 've 'm 'll 'd",
    "mixed123abc ABC123 a1b2c3 __init__ x_y-z",
    "tabs\tand\x00nulls\x7f and \ufeffBOM",
]


def test_from_tiktoken_recovers_all_gpt2_merges(our_gpt2):
    assert len(our_gpt2.merges) == 50_000 and our_gpt2.vocab_size == 50_257
    assert our_gpt2.special_tokens == {ENDOFTEXT: 50_256}


def test_full_corpus_identical_to_tiktoken(our_gpt2, gpt2, shakespeare):
    ours = our_gpt2.encode_ordinary(shakespeare)
    assert len(ours) == 338_025
    assert ours == gpt2.encode_ordinary(shakespeare)
    train, val = split_text(shakespeare)
    assert (len(gpt2.encode_ordinary(train)), len(gpt2.encode_ordinary(val))) == (301_966, 36_059)


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_text_identical_to_tiktoken(our_gpt2, gpt2, text):
    assert our_gpt2.encode_ordinary(text) == gpt2.encode_ordinary(text)
    assert our_gpt2.decode(our_gpt2.encode_ordinary(text)) == text


def test_special_tokens_like_tiktoken(our_gpt2, gpt2):
    text = f"one{ENDOFTEXT}two {ENDOFTEXT}\n"
    assert our_gpt2.encode(text) == gpt2.encode(text, allowed_special="all")
    assert our_gpt2.encode(text, allowed_special=set()) == gpt2.encode_ordinary(text)
    assert our_gpt2.decode(our_gpt2.encode(text)) == text


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=60))
def test_any_string_matches_tiktoken_and_round_trips(our_gpt2, gpt2, text):
    ids = our_gpt2.encode_ordinary(text)
    assert ids == gpt2.encode_ordinary(text)
    assert our_gpt2.decode(ids) == text


def test_merge_replaces_left_to_right():
    assert merge([1, 1, 1, 2, 1, 1], (1, 1), 9) == [9, 1, 2, 9]


def test_training_learns_the_obvious_merges_first():
    tok = BPETokenizer.train("aaab aaab aaab", vocab_size=259)
    # pieces: "aaab" once and " aaab" twice; "aa" is the most frequent pair (2 per piece)
    assert tok.vocab[256] == b"aa"
    assert len(tok.merges) == 3
    assert tok.decode(tok.encode("aaab aaab")) == "aaab aaab"


def test_training_is_deterministic_and_compresses(shakespeare):
    text = shakespeare[:100_000]
    a = BPETokenizer.train(text, 256 + 200)
    b = BPETokenizer.train(text, 256 + 200)
    assert a.merges == b.merges
    ids = a.encode(text)
    assert a.decode(ids) == text
    assert len(ids) < 0.6 * len(text.encode("utf-8"))  # 200 merges already save > 40%
    # every learned token is the concatenation of the pair that made it
    for (left, right), new in a.merges.items():
        assert a.vocab[new] == a.vocab[left] + a.vocab[right]


def test_training_stops_when_nothing_is_left_to_merge():
    tok = BPETokenizer.train("ab ab", vocab_size=1000)
    assert tok.encode_ordinary("ab ab") == [256, 257]  # "ab" and " ab", then nothing to merge


def test_bad_inputs_are_clear():
    with pytest.raises(ValueError, match="at least 256"):
        BPETokenizer.train("text", 100)
    tok = BPETokenizer.train("text", 256)
    with pytest.raises(ValueError, match="unknown token id 999"):
        tok.decode([999])


# --- all of Unicode --------------------------------------------------------------------------
# A character that one side classes as a letter (or number) and the other as a symbol changes
# where the pre-tokenizer cuts, and so the ids, only if a merge crosses the cut. These contexts
# make that visible: a CJK letter on either side (their UTF-8 bytes merge), a contraction after
# it ("x's" is "x" + "'s" for a letter, "x'" + "s" for a symbol), a digit, a space.
def in_contexts(char: str) -> str:
    return f"{char}\u88a7{char}'s {char}\u0661{char}\u4e2d{char} {char}"


def _versions() -> str:
    import regex
    import tiktoken
    import unicodedata2

    return (
        f"tiktoken {tiktoken.__version__}, regex {regex.__version__}, unicodedata2 "
        f"{unicodedata2.__version__} (Unicode {unicodedata2.unidata_version})"
    )


def _mismatches(our_gpt2, gpt2, codes: list[int]) -> list[str]:
    """The code points (among ``codes``) whose contexts encode differently, 16 at a time."""
    bad = []
    for start in range(0, len(codes), 16):
        chunk = codes[start : start + 16]
        text = "".join(in_contexts(chr(c)) for c in chunk)
        if our_gpt2.encode_ordinary(text) != gpt2.encode_ordinary(text):
            bad += [
                f"U+{c:04X}"
                for c in chunk
                if our_gpt2.encode_ordinary(in_contexts(chr(c)))
                != gpt2.encode_ordinary(in_contexts(chr(c)))
            ]
    return bad


def test_200_000_random_code_points_match_tiktoken(our_gpt2, gpt2):
    import random

    rng = random.Random(2026)
    codes: list[int] = []
    while len(codes) < 200_000:  # uniformly over all of Unicode, surrogates excluded
        code = rng.randrange(0x110000)
        if not 0xD800 <= code <= 0xDFFF:
            codes.append(code)
    bad = _mismatches(our_gpt2, gpt2, codes)
    assert not bad, f"{len(bad)} code points encode unlike tiktoken, e.g. {bad[:8]}; {_versions()}"


def test_every_general_category_boundary_matches_tiktoken(our_gpt2, gpt2):
    """The first and last code point of every run of one general category (Unicode 16.0, and
    this regex module's own letter, number and space classes), and their neighbours."""
    import regex
    import unicodedata2

    codes = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    edges: set[int] = set()
    categories = [unicodedata2.category(chr(c)) for c in codes]
    for i in range(1, len(codes)):
        if categories[i] != categories[i - 1]:
            edges.update((codes[i - 1], codes[i]))
    everything = "".join(map(chr, codes))
    for cls in (r"\p{L}+", r"\p{N}+", r"\s+"):
        for match in regex.finditer(cls, everything):
            edges.update((ord(match.group()[0]), ord(match.group()[-1])))
    near = {c + d for c in edges for d in (-1, 0, 1)}
    near = sorted(c for c in near if 0 <= c < 0x110000 and not 0xD800 <= c <= 0xDFFF)
    assert len({unicodedata2.category(chr(c)) for c in near}) == 29  # every category but Cs
    bad = _mismatches(our_gpt2, gpt2, near)
    assert not bad, f"{len(bad)} edges encode unlike tiktoken, e.g. {bad[:8]}; {_versions()}"


def test_the_contexts_would_catch_a_misclassified_letter(our_gpt2, gpt2):
    """The check above can fail: class U+88A7 (a CJK letter) as a symbol and the ids change."""
    from tinygpt.tokenizer import GPT2_SPLIT_PATTERN, BPETokenizer

    wrong = GPT2_SPLIT_PATTERN.replace(r"\p{L}", r"[\p{L}--[\u88a7]]")
    misread = BPETokenizer(our_gpt2.vocab, our_gpt2.merges, pattern=wrong)
    assert _mismatches(misread, gpt2, [0x88A7, ord("a"), 0x4E2D]) == ["U+88A7"]
