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
