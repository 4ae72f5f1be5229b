"""Shared fixtures: the corpus and the GPT-2 encoding, loaded once per test session; warm
processes for the CLI's end-to-end tests."""

import contextlib
import queue

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


class WarmPool:
    """Two warm ``python -m tinygpt`` processes (workers/warm_cli.py), lent one at a time: a CLI
    test's subprocess forks from one instead of starting Python and importing torch again."""

    def __init__(self, size: int = 2) -> None:
        from workers.warm_cli import WarmCli

        self.free: queue.Queue = queue.Queue()
        self.all = [WarmCli() for _ in range(size)]
        for cli in self.all:
            self.free.put(cli)

    @contextlib.contextmanager
    def borrow(self):
        cli = self.free.get()
        try:
            yield cli
        finally:
            self.free.put(cli)

    def close(self) -> None:
        for cli in self.all:
            cli.close()


@pytest.fixture(scope="session")
def warm_pool():
    pool = WarmPool()
    yield pool
    pool.close()
