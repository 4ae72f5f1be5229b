"""Sphinx extension for the book: each script and style sheet once per page.

sphinx-thebe adds its inline configuration script (``const THEBE_JS_URL = ...``) each time the
environment reads documents, and Jupyter Book's build gets it twice: the second copy declares the
same constants again, and every page logged "Uncaught SyntaxError: Identifier 'THEBE_JS_URL' has
already been declared". This keeps the first of identical entries (same file or inline body,
same attributes) in a page's scripts and style sheets.
"""


def _key(item):
    """What makes two entries the same: their file (None and "" both mean an inline script, as
    Sphinx and sphinx-thebe write them), their priority and their attributes (the body)."""
    attributes = getattr(item, "attributes", None)
    if attributes is None:
        return item
    return (item.filename or "", item.priority, tuple(sorted(attributes.items())))


def _once(items: list) -> list:
    seen, kept = set(), []
    for item in items:
        try:
            key = _key(item)
            if key in seen:
                continue
            seen.add(key)
        except TypeError:  # not hashable: keep it as it is
            pass
        kept.append(item)
    return kept


def dedupe(app, pagename, templatename, context, doctree) -> None:
    for name in ("script_files", "css_files"):
        if isinstance(context.get(name), list):
            context[name] = _once(context[name])


def setup(app):
    app.connect("html-page-context", dedupe, priority=900)  # after every extension added its own
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
