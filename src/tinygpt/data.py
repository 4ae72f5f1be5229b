"""Data: fetch Tiny Shakespeare safely, split it, and cut it into training batches.

Every download is verified by sha256 and written atomically: bytes go to a hidden temporary
file in the target folder and are moved into place with ``os.replace`` only once the hash
matches, so an interrupted or corrupt download never leaves a file that looks finished.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch

from tinygpt import files

DATA_DIR_ENV = "TINYGPT_DATA_DIR"


@dataclass(frozen=True)
class RemoteFile:
    """A file the book needs: where it lives on the web and what its bytes must hash to."""

    name: str
    url: str
    sha256: str


TINY_SHAKESPEARE = RemoteFile(
    name="tinyshakespeare.txt",
    url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
    sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
)


class DataError(RuntimeError):
    """A data file is missing, corrupt or cannot be downloaded. The message says what to do."""


def data_dir() -> Path:
    """The folder data files are read from and downloaded to.

    ``$TINYGPT_DATA_DIR`` if set; otherwise ``data/`` at the root of a source checkout;
    otherwise ``~/.cache/tinygpt`` (for a non-editable install).
    """
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file():
        return checkout / "data"
    return Path.home() / ".cache" / "tinygpt"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _advice(remote: RemoteFile, folder: Path) -> str:
    setting = os.environ.get(DATA_DIR_ENV)
    where = f"{DATA_DIR_ENV}={setting}" if setting else f"{DATA_DIR_ENV} is not set"
    return (
        f"Download {remote.url} yourself, save it as {remote.name} in a folder and point "
        f"{DATA_DIR_ENV} at that folder (now: {where}; looked in {folder})."
    )


def download(remote: RemoteFile, dest: Path, timeout: float = 30.0) -> Path:
    """Download ``remote`` to ``dest``, verifying its sha256; atomic: all or nothing."""
    with files.atomic_path(dest) as tmp:  # moved into place only if the block finishes
        digest = hashlib.sha256()
        with open(tmp, "wb") as out:
            try:
                with urllib.request.urlopen(remote.url, timeout=timeout) as response:
                    for block in iter(lambda: response.read(1 << 16), b""):
                        digest.update(block)
                        out.write(block)
            except (OSError, ValueError, http.client.HTTPException) as err:
                if isinstance(err, urllib.error.HTTPError):
                    reason = f"HTTP {err.code} {err.reason}"
                else:  # URLError wraps the socket's own error (refused, DNS, timeout ...)
                    reason = getattr(err, "reason", None) or err
                raise DataError(
                    f"Could not download {remote.name} from {remote.url}: {reason}. "
                    + _advice(remote, dest.parent)
                ) from None
        if digest.hexdigest() != remote.sha256:
            raise DataError(
                f"Downloaded {remote.name} from {remote.url} but its sha256 is "
                f"{digest.hexdigest()}, not {remote.sha256}; the file was discarded. "
                + _advice(remote, dest.parent)
            )
    return dest


def fetch(remote: RemoteFile = TINY_SHAKESPEARE, folder: Path | None = None) -> Path:
    """Path to a verified local copy of ``remote``, downloading it on first use."""
    folder = data_dir() if folder is None else Path(folder)
    path = folder / remote.name
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{folder} is a file, not a folder; point {DATA_DIR_ENV} at a folder")
    if path.exists() and not path.is_file():
        raise DataError(f"{path} is not a file; remove it, or point {DATA_DIR_ENV} elsewhere")
    if path.is_file():
        actual = sha256_of(path)
        if actual != remote.sha256:
            raise DataError(
                f"{path} exists but its sha256 is {actual}, not {remote.sha256}. "
                f"Delete it to download a fresh copy from {remote.url}."
            )
        return path
    created = not folder.exists()
    try:
        return download(remote, path)
    except DataError:
        if created and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()  # leave no empty folder behind a failed download
        raise


def load_text(remote: RemoteFile = TINY_SHAKESPEARE) -> str:
    """The whole corpus as one string (1,115,394 characters for Tiny Shakespeare)."""
    return fetch(remote).read_text(encoding="utf-8")


def split_text(text: str, train_fraction: float = 0.9) -> tuple[str, str]:
    """Split by characters, first 90% for training, as nanoGPT does (so losses compare)."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be between 0 and 1, got {train_fraction}")
    n = int(len(text) * train_fraction)
    return text[:n], text[n:]


def get_batch(
    data: torch.Tensor,
    batch_size: int,
    block_size: int,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut ``batch_size`` random windows of ``block_size`` tokens from a 1-D tensor of ids.

    ``y`` is ``x`` shifted left by one: at every position the target is the next token, so one
    window of T tokens gives T training examples at once.
    """
    if data.dim() != 1:
        raise ValueError(f"data must be a 1-D tensor of token ids, got shape {tuple(data.shape)}")
    if len(data) <= block_size:
        raise ValueError(f"need more than block_size={block_size} tokens, got {len(data)}")
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    x = torch.stack([data[i : i + block_size] for i in starts.tolist()])  # (B, T)
    y = torch.stack([data[i + 1 : i + 1 + block_size] for i in starts.tolist()])  # (B, T)
    return x.to(device), y.to(device)


def gpt2_token_splits(text: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Tiny Shakespeare split 90/10 by characters, then each half encoded with GPT-2's BPE.

    Returns (train, val) 1-D int64 tensors of token ids: 301,966 and 36,059 tokens.
    """
    from tinygpt.tokenizer import gpt2_encoding

    enc = gpt2_encoding()
    train_text, val_text = split_text(load_text() if text is None else text)
    return (
        torch.tensor(enc.encode_ordinary(train_text), dtype=torch.long),
        torch.tensor(enc.encode_ordinary(val_text), dtype=torch.long),
    )
