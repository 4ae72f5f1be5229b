"""tinygpt: a GPT-2-style transformer built from scratch, the package behind the book
*Transformer from Scratch*. Each chapter of the book adds one module."""

__version__ = "0.1.0"
