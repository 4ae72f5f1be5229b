"""Showing the package's own source in a chapter."""

from __future__ import annotations

import inspect


def source_of(obj: object) -> str:
    """The source of a package function, class or method, exactly as it is in ``src/``."""
    return inspect.getsource(obj)


def show_source(obj: object) -> None:
    """Display an object's real source in a notebook, highlighted, with where it lives.

    Chapters show the package's code with this instead of copying it, so the book can never
    drift from the code it teaches.
    """
    from IPython.display import Markdown, display

    module = inspect.getmodule(obj)
    lines, start = inspect.getsourcelines(obj)
    where = f"{module.__name__}" if module else "?"
    header = f"`{where}.{getattr(obj, '__qualname__', '')}` (line {start})"
    display(Markdown(f"{header}\n\n```python\n{''.join(lines).rstrip()}\n```"))
