"""Shared fixtures: the corpus and the GPT-2 encoding, loaded once per test session."""

import pytest

from tinygpt.data import load_text
from tinygpt.tokenizer import BPETokenizer, gpt2_encoding


@pytest.fixture(scope="session")
def shakespeare() -> str:
    return load_text()


@pytest.fixture(scope="session")
def gpt2():
    return gpt2_encoding()


@pytest.fixture(scope="session")
def our_gpt2(gpt2) -> BPETokenizer:
    return BPETokenizer.from_tiktoken(gpt2)
