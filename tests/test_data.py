"""The data layer against a real HTTP server on 127.0.0.1: good, corrupt and failing downloads."""

import hashlib
import http.server
import os
import threading
from pathlib import Path

import pytest
import torch

from tinygpt import data
from tinygpt.data import DataError, RemoteFile, download, fetch, get_batch, split_text

GOOD = b"First Citizen:\nBefore we proceed any further, hear me speak.\n" * 100
GOOD_SHA = hashlib.sha256(GOOD).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the stdlib's name)
        if self.path == "/good.txt":
            body = GOOD
        elif self.path == "/corrupt.txt":
            body = GOOD[:-10] + b"tampered!\n"
        elif self.path == "/truncated.txt":
            # Promise the whole file, send half, hang up: a connection dropped mid-download.
            self.send_response(200)
            self.send_header("Content-Length", str(len(GOOD)))
            self.end_headers()
            self.wfile.write(GOOD[: len(GOOD) // 2])
            return
        else:
            self.send_error(500, "Internal Server Error")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def remote(server: str, path: str) -> RemoteFile:
    return RemoteFile(name="corpus.txt", url=f"{server}/{path}", sha256=GOOD_SHA)


def test_good_download_lands_verified(server, tmp_path):
    path = fetch(remote(server, "good.txt"), tmp_path)
    assert path == tmp_path / "corpus.txt"
    assert path.read_bytes() == GOOD
    assert os.listdir(tmp_path) == ["corpus.txt"]  # no temporary file left behind


def test_second_fetch_uses_local_copy(server, tmp_path):
    fetch(remote(server, "good.txt"), tmp_path)
    # The URL is now dead; a verified local copy means no network is needed.
    assert fetch(remote(server, "gone.txt"), tmp_path).read_bytes() == GOOD


@pytest.mark.parametrize(
    "path, words",
    [
        ("corrupt.txt", "sha256"),
        ("error.txt", "500"),
        ("truncated.txt", "corpus.txt"),
    ],
)
def test_bad_download_leaves_nothing_and_says_what_to_do(server, tmp_path, path, words):
    with pytest.raises(DataError) as info:
        fetch(remote(server, path), tmp_path)
    message = str(info.value)
    assert words in message
    assert f"{server}/{path}" in message and "corpus.txt" in message
    assert data.DATA_DIR_ENV in message
    err = info.value  # one error, not a chain of tracebacks
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)
    assert os.listdir(tmp_path) == []  # neither a partial file nor a temporary one


def test_unreachable_host_is_a_clear_error(tmp_path):
    # Port 9 on loopback: nothing listens, so the connection is refused at once.
    unreachable = RemoteFile("corpus.txt", "http://127.0.0.1:9/corpus.txt", GOOD_SHA)
    with pytest.raises(DataError, match=r"Could not download corpus.txt from http://127.0.0.1:9"):
        fetch(unreachable, tmp_path)
    assert os.listdir(tmp_path) == []


def test_existing_corrupt_file_is_reported_not_used(server, tmp_path):
    (tmp_path / "corpus.txt").write_bytes(b"not the corpus")
    with pytest.raises(DataError, match="sha256"):
        fetch(remote(server, "good.txt"), tmp_path)
    assert (tmp_path / "corpus.txt").read_bytes() == b"not the corpus"  # the user's file is kept


def test_data_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    assert data.data_dir() == tmp_path
    monkeypatch.delenv(data.DATA_DIR_ENV)
    assert data.data_dir() == Path(data.__file__).resolve().parents[2] / "data"


def test_download_replaces_atomically(server, tmp_path):
    dest = tmp_path / "corpus.txt"
    dest.write_bytes(b"old")
    download(remote(server, "good.txt"), dest)
    assert dest.read_bytes() == GOOD


def test_tiny_shakespeare_is_the_real_thing(shakespeare):
    assert len(shakespeare) == 1_115_394
    assert shakespeare.startswith("First Citizen:")
    train, val = split_text(shakespeare)
    assert len(train) == 1_003_854 and train + val == shakespeare  # nanoGPT's int(0.9 * n)


def test_split_rejects_nonsense():
    with pytest.raises(ValueError, match="train_fraction"):
        split_text("abc", 1.5)


def test_get_batch_targets_are_inputs_shifted_by_one():
    ids = torch.arange(100)
    g = torch.Generator().manual_seed(0)
    x, y = get_batch(ids, batch_size=8, block_size=16, generator=g)
    assert x.shape == y.shape == (8, 16)
    assert torch.equal(y[:, :-1], x[:, 1:]) and torch.equal(y[:, -1], x[:, -1] + 1)
    g2 = torch.Generator().manual_seed(0)
    assert torch.equal(get_batch(ids, 8, 16, generator=g2)[0], x)  # same seed, same batch


def test_get_batch_rejects_too_short_data():
    with pytest.raises(ValueError, match="block_size=16"):
        get_batch(torch.arange(10), 2, 16)


def test_gpt2_token_splits():
    train, val = data.gpt2_token_splits()
    assert train.dtype == val.dtype == torch.long
    assert (len(train), len(val)) == (301_966, 36_059)
    assert train[:3].tolist() == [5962, 22307, 25]  # "First", " Citizen", ":"
