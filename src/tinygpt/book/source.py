"""Showing the package's own source in a chapter, as it stands at that chapter.

The package is written once, in its final form. Lines that a later chapter adds carry a short
tag in a trailing comment, ``# [ch8]`` (or ``# [chA]`` for an appendix), and a line that a later
chapter *changes* keeps its earlier form just above it, commented out with ``# [<ch8]``::

    # [<ch8] self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
    self.c_attn = nn.Linear(n_embd, n_embd + 2 * kv_width, bias=bias)  # [ch8]

``view_source(obj, chapter)`` reads the source as a reader of ``chapter`` should see it: what
later chapters add is left out (one ``# … more in Chapter 8`` line marks the spot), earlier forms
come back, and the tags are removed. A tag covers the whole statement that starts on its line:
its continuation lines, and its block if it opens one (``if rope is not None:  # [ch8]`` drops
the ``if`` and its body). In a docstring or a comment block, a tagged line drops its paragraph.

Notes that would sit next to each other (only blank lines between them) are joined into one,
and a bracketed list that lost lines (a signature whose later parameters are left out, a call
whose later arguments are) is laid out again as if written that way: on one line when it fits.
With ``markers=False`` a listing carries no notes at all; ``show_source`` then says once, under
the listing, which chapters add to it (for a listing that would otherwise be a list of notes).

A view is code, not a picture of code: ``compile_view`` turns it back into a function or class,
and the tests prove each view a chapter shows computes what the package computes at that
chapter's settings.
"""

from __future__ import annotations

import inspect
import io
import re
import textwrap
import tokenize
from collections.abc import Sequence

# Reading order: the chapters, then the appendices.
STAGES = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "A", "B", "C")

TAG = re.compile(r"\s*\[ch(\d+|[A-C])\]")
EARLIER = re.compile(r"^(\s*)# \[<ch(\d+|[A-C])\] ?(.*)$")
CLAUSE = re.compile(r"(elif\b|else\s*:|except\b|finally\s*:)")

# Names each chapter introduces: no listing shown before that chapter may contain them.
CHAPTER_NAMES: dict[str, tuple[str, ...]] = {
    "4": ("c_attn", "c_proj", "n_head", "dropout", "dropout_p", "resid_dropout", "split_heads"),
    "5": ("GPTConfig", "Block", "MLP", "LayerNorm", "ln_1", "ln_2", "ln_f",
          "transformer", "n_layer", "tie_weights", "gelu", "GELU"),
    "6": ("AdamW", "configure_optimizer", "lr_at", "clip_grad_norm_", "grad_clip",
          "train_step", "evaluate", "RestrictedVocab", "checkpoint"),
    "7": ("cache", "KVCache", "new_cache", "temperature", "top_k", "top_p",
          "sample_next", "next_token_logits", "repetition_penalty"),
    "8": ("rope", "apply_rope", "RotaryEmbedding", "rotary", "n_kv_head", "kv_heads",
          "kv_width", "nkv", "expand_kv", "enable_gqa", "gqa", "RMSNorm", "SwiGLU",
          "make_norm", "norm_eps", "pos_embedding", "rope_theta", "mlp_hidden", "silu",
          "hidden_size", "Llama", "llama", "LlamaForCausalLM"),
    "9": ("Muon", "muon", "MuonAdamW", "configure_muon", "newton_schulz", "qk_norm",
          "normalise_qk", "rms_norm", "ReLU2MLP", "relu2", "wsd", "cooldown",
          "WeightAverage", "ema_decay", "average_state", "judged"),
    "10": ("LoRALinear", "add_lora", "lora", "LoRA", "Classifier", "finetune", "instruct_batch",
           "response_loss", "add_end_of_text", "IGNORE"),
    "A": ("linear_cross_entropy", "return_logits", "autocast", "bfloat16", "bf16",
          "compile", "DDP", "distributed", "forward_fn"),
    "B": ("load_gpt2", "hf_layout", "from_pretrained"),
}  # fmt: skip


def stage(chapter: str | int) -> int:
    """Where a chapter ("4", 4 or "A") comes in the book's reading order."""
    chapter = str(chapter)
    if chapter not in STAGES:
        raise ValueError(f"no chapter {chapter!r}; chapters are {', '.join(STAGES)}")
    return STAGES.index(chapter)


def chapter_title(chapter: str) -> str:
    return f"Appendix {chapter}" if chapter.isalpha() else f"Chapter {chapter}"


def source_of(obj: object) -> str:
    """The source of a package function, class or method, exactly as it is in ``src/``."""
    return inspect.getsource(obj)


def _line_facts(lines: Sequence[str]) -> tuple[list[int], list[int], dict[int, str], set[int]]:
    """Per line: bracket depth at its start and end, its comment, whether it is inside a string."""
    change = [0] * len(lines)
    comments: dict[int, str] = {}
    in_string: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO("".join(lines)).readline):
        row, end_row = tok.start[0] - 1, tok.end[0] - 1
        if tok.type == tokenize.OP and tok.string in "([{":
            change[row] += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            change[row] -= 1
        elif tok.type == tokenize.COMMENT:
            comments[row] = tok.string
        elif tok.type == tokenize.STRING and end_row > row:
            in_string.update(range(row + 1, end_row + 1))  # the lines after the opening quotes
    depth_start, depth_end, depth = [], [], 0
    for delta in change:
        depth_start.append(depth)
        depth += delta
        depth_end.append(depth)
    return depth_start, depth_end, comments, in_string


def _tag(i: int, lines: Sequence[str], comments: dict[int, str], in_string: set[int]) -> str | None:
    text = comments.get(i, lines[i] if i in in_string else "")
    found = TAG.search(text)
    return found.group(1) if found else None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _code(line: str, i: int, comments: dict[int, str]) -> str:
    return (line[: line.rindex(comments[i])] if i in comments else line).rstrip()


def _statement_end(i: int, lines: Sequence[str], facts) -> int:
    """The last line of the statement (or header) that starts on line i."""
    depth_start, depth_end = facts[0], facts[1]
    j = i
    while depth_end[j] > depth_start[i]:  # continued on the next lines
        j += 1
    return j


def _span_end(i: int, lines: Sequence[str], facts, header_only: bool = False) -> int:
    """One past the last line of what a tag on line i covers (with ``header_only``, a block's
    header without its body)."""
    depth_start, comments, in_string = facts[0], facts[2], facts[3]
    stripped = lines[i].strip()
    if i in in_string or stripped.startswith("#"):  # a paragraph of a docstring or comment
        j = i + 1
        while j < len(lines) and lines[j].strip() and not lines[j].strip().startswith('"""'):
            if stripped.startswith("#") != lines[j].strip().startswith("#"):
                break
            j += 1
        return j
    j = _statement_end(i, lines, facts)
    if header_only or depth_start[i] or not _code(lines[j], j, comments).endswith(":"):
        return j + 1
    indent = _indent(lines[i])
    is_clause = bool(CLAUSE.match(stripped))  # a tagged elif / else takes only its own block
    while True:  # the block, and its elif / else / except / finally clauses
        while j + 1 < len(lines) and (not lines[j + 1].strip() or _indent(lines[j + 1]) > indent):
            j += 1
        nxt = lines[j + 1].lstrip() if j + 1 < len(lines) else ""
        if is_clause or _indent(lines[j + 1] if nxt else "") != indent or not CLAUSE.match(nxt):
            break
        j += 1
    while not lines[j].strip():  # the blank lines after the block stay
        j -= 1
    return j + 1


def _strip_tag(line: str, is_comment_line: bool) -> str:
    if not TAG.search(line):
        return line
    end = "\n" if line.endswith("\n") else ""
    body = line.rstrip("\n")
    indent = body[: _indent(body)]
    if TAG.match(body.strip()):  # a paragraph that starts with its tag
        return indent + TAG.sub("", body.strip(), count=1).lstrip() + end
    text = TAG.sub("", body)
    if not is_comment_line:
        text = re.sub(r"\s*#\s*$", "", text)  # a comment that held only the tag goes
    return text.rstrip() + end


def _earlier_forms(i: int, lines: Sequence[str], now: int, facts, out: list[str]) -> int:
    """Lines i.. hold the earlier forms of the tagged line after them, oldest first. Put the one
    that ``now`` should see (or none) in ``out``; return where reading goes on."""
    groups: list[tuple[str, list[str]]] = []
    j = i
    while EARLIER.match(lines[j]):
        indent, chapter, code = EARLIER.match(lines[j]).groups()
        if not groups or groups[-1][0] != chapter:
            groups.append((chapter, []))
        groups[-1][1].append(f"{indent}{code}\n")
        j += 1
    final = _tag(j, lines, facts[2], facts[3])
    if final != groups[-1][0]:
        raise ValueError(f"line {j + 1}: '# [<ch{groups[-1][0]}]' must sit above a [ch..] line")
    shown = next((forms for chapter, forms in groups if now < stage(chapter)), None)
    if shown is None:
        return j  # the final form is the one to show
    shift = _indent(lines[j]) - _indent(shown[0])  # the earlier form takes the line's place
    out.extend(" " * (_indent(f) + shift) + f.lstrip() for f in shown)
    header_only = shown[-1].split("#")[0].rstrip().endswith(":")  # keep the block's body
    end = _span_end(j, lines, facts, header_only=header_only)
    while not header_only and end < len(lines) and _tag(end, lines, *facts[2:]) == final:
        end = _span_end(end, lines, facts)  # the next lines the earlier forms stand for
    return end


def _chapters_text(chapters: Sequence[str]) -> str:
    """The chapters as words: "Chapter 8", "Chapters 7 and 8", "Chapters 7, 8 and 9"."""
    chapters = sorted(set(chapters), key=stage)
    if len(chapters) == 1:
        return chapter_title(chapters[0])
    title = "Chapters" if all(c.isdigit() for c in chapters) else "Chapters/Appendices"
    return f"{title} {', '.join(chapters[:-1])} and {chapters[-1]}"


def _mark(out: list[str], indent: int, chapter: str) -> None:
    """Say where later code was left out; next to another such note (or with only blank lines
    between them), join them."""
    prefix = f"{' ' * indent}# … more in "
    k = len(out) - 1
    while k >= 0 and not out[k].strip():
        k -= 1
    if k >= 0 and out[k].startswith(prefix):
        chapters = re.findall(r"(\d+|[A-C])\b", out[k][len(prefix) :]) + [chapter]
        out[k] = f"{prefix}{_chapters_text(chapters)}\n"
        return
    out.append(f"{prefix}{chapter_title(chapter)}\n")


OPENERS = {"(": ")", "[": "]", "{": "}"}
LINE_LENGTH = 100  # the package's (ruff's) line length


def _relaid(lines: list[str], a: int, b: int) -> list[str] | None:
    """Lines a..b hold one bracketed list laid out one item a line (an opener ending line a, a
    closer starting line b). Lay it out as a formatter would without a trailing comma: on one
    line if it fits, else its items on one line between the opener and the closer. None if that
    does not fit either, or the list holds comments or items of several lines."""
    head, tail = lines[a].rstrip("\n"), lines[b].strip()
    if "#" in head or not head or head[-1] not in OPENERS or tail[:1] != OPENERS[head[-1]]:
        return None
    items = [line.strip() for line in lines[a + 1 : b]]
    if not items or any("#" in item or not item.endswith(",") for item in items):
        return None
    if any(item.count(o) != item.count(c) for item in items for o, c in OPENERS.items()):
        return None  # an item that spans lines
    joined = ", ".join(item[:-1] for item in items)
    if len(items) == 1 and head[-1] == "(" and not re.search(r"[\w)\]]\($", head):
        joined += ","  # a one-element tuple keeps its comma
    one_line = f"{head}{joined}{tail}"
    if len(one_line) <= LINE_LENGTH:
        return [one_line + "\n"]
    indent = " " * (_indent(lines[a]) + 4)
    code_tail = tail.split("  #")[0]
    if len(indent + joined) <= LINE_LENGTH and len(code_tail) <= 2:
        return [head + "\n", indent + joined + "\n", lines[b]]
    return None


def _relay_shortened(out: list[str], origin: list[int | None], dropped: set[int]) -> list[str]:
    """Lay out again each bracketed list of ``out`` that lost lines of its source (``dropped``:
    the source lines left out as later code; ``origin``: where each line of ``out`` comes from,
    None for a note or an earlier form)."""
    try:
        facts = _line_facts(out)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return out
    depth_start, depth_end = facts[0], facts[1]
    result: list[str] = []
    i = 0
    while i < len(out):
        j = i
        if depth_end[i] == depth_start[i] + 1:
            j = i + 1
            while j < len(out) and depth_end[j] > depth_start[i]:
                j += 1
        if j > i and j < len(out) and origin[i] is not None and origin[j] is not None:
            lost = any(k in dropped for k in range(origin[i], origin[j]))
            inner = all(depth_start[k] == depth_start[i] + 1 for k in range(i + 1, j + 1))
            relaid = _relaid(out, i, j) if lost and inner else None
            if relaid is not None:
                result.extend(relaid)
                i = j + 1
                continue
        result.append(out[i])
        i += 1
    return result


def view_lines(lines: Sequence[str], chapter: str | int, markers: bool = True) -> list[str]:
    """The lines of some package source as a reader of ``chapter`` sees them (module docstring).

    Left-out statements, blocks and methods leave a ``# … more in Chapter N`` line (none with
    ``markers=False``); left-out parameters, arguments, comments and docstring paragraphs leave
    nothing, and a bracketed list that lost lines is laid out again.
    """
    now = stage(chapter)
    facts = _line_facts(lines)
    depth_start, comments, in_string = facts[0], facts[2], facts[3]
    out: list[str] = []
    origin: list[int | None] = []  # the source line each line of out comes from (None: a note
    dropped: set[int] = set()  # or an earlier form); the source lines left out as later code
    i = 0
    while i < len(lines):
        if EARLIER.match(lines[i]):
            i = _earlier_forms(i, lines, now, facts, out)
            origin.extend([None] * (len(out) - len(origin)))
            continue
        tag = _tag(i, lines, comments, in_string)
        is_comment_line = i in in_string or lines[i].lstrip().startswith("#")
        if tag is not None and now < stage(tag):
            if markers and not (is_comment_line or depth_start[i]):
                _mark(out, _indent(lines[i]), tag)
                origin.extend([None] * (len(out) - len(origin)))
            end = _span_end(i, lines, facts)
            dropped.update(range(i, end))
            i = end
            continue
        out.append(_strip_tag(lines[i], is_comment_line))
        origin.append(i)
        i += 1
    out = _relay_shortened(out, origin, dropped)
    kept = [line for k, line in enumerate(out) if line.strip() or (k and out[k - 1].strip())]
    kept = [  # no blank line before a docstring's closing quotes
        line
        for k, line in enumerate(kept)
        if line.strip() or k + 1 == len(kept) or kept[k + 1].strip() != '"""'
    ]
    for k in range(len(kept) - 2, -1, -1):  # a docstring left with one line closes on it
        opened = kept[k].lstrip().startswith('"""') and kept[k].count('"""') == 1
        if opened and kept[k + 1].strip() == '"""':
            kept[k : k + 2] = [kept[k].rstrip("\n") + '"""\n']
    return kept


def view_source(obj: object, chapter: str | int | None = None, markers: bool = True) -> str:
    """``obj``'s source as it stands at ``chapter`` (dedented); with None, as it stands at the
    end of the book (the package's source without its tags and earlier forms). With
    ``markers=False`` no ``# … more in`` notes mark what is left out."""
    source = textwrap.dedent(inspect.getsource(obj))
    final = STAGES[-1] if chapter is None else chapter
    return "".join(view_lines(source.splitlines(keepends=True), final, markers=markers))


def later_chapters(obj: object, chapter: str | int) -> list[str]:
    """The chapters after ``chapter`` that add to (or change) ``obj``'s source, in order."""
    now = stage(chapter)
    lines = inspect.getsource(obj).splitlines()
    found = {m.group(2) for line in lines if (m := EARLIER.match(line))}
    found |= {tag for line in lines for tag in TAG.findall(line)}
    return sorted((c for c in found if stage(c) > now), key=stage)


def later_names(text: str, chapter: str | int) -> list[str]:
    """The names in ``text`` that a chapter after ``chapter`` introduces."""
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text))
    now = stage(chapter)
    return sorted(
        f"{name} ({chapter_title(ch)})"
        for ch, names in CHAPTER_NAMES.items()
        if stage(ch) > now
        for name in names
        if name in words
    )


def compile_view(obj: object, chapter: str | int) -> object:
    """Run ``obj``'s view at ``chapter`` as code, in its module's namespace, and return the
    function or class it defines. ``obj`` must be a module-level function or class."""
    module = inspect.getmodule(obj)
    if "." in obj.__qualname__:
        raise ValueError(f"compile the class that holds {obj.__qualname__}, not the method")
    namespace = dict(vars(module))
    code = compile(view_source(obj, chapter), f"<{obj.__qualname__} at {chapter}>", "exec")
    exec(code, namespace)  # noqa: S102 - the package's own source, elided
    return namespace[obj.__name__]


def show_source(obj: object, chapter: str | int | None = None, markers: bool = True) -> None:
    """Display an object's real source in a notebook, highlighted, with where it lives.

    Chapters show the package's code with this instead of copying it, so the book can never
    drift from the code it teaches. With ``chapter``, the code is shown as it stands at that
    chapter (see the module docstring); a view that names something a later chapter introduces
    raises instead of being shown. With ``markers=False`` the listing carries no ``# … more
    in`` notes, and one line under it says which chapters add to the code.
    """
    from IPython.display import Markdown, display

    module = inspect.getmodule(obj)
    _, start = inspect.getsourcelines(obj)
    text = view_source(obj, chapter, markers=markers).rstrip()
    where = f"`{module.__name__ if module else '?'}.{getattr(obj, '__qualname__', '')}`"
    header = f"{where} (line {start})"
    note = ""
    if chapter is not None:
        leaks = later_names(text, chapter)
        if leaks:
            raise ValueError(f"the {chapter_title(str(chapter))} view names {', '.join(leaks)}")
        if text != view_source(obj).rstrip():
            header += f", as it stands in {chapter_title(str(chapter))}"
        later = later_chapters(obj, chapter)
        if not markers and later:
            verb = "adds" if len(later) == 1 else "add"
            note = f"\n\n*Left out of this listing: what {_chapters_text(later)} {verb}.*"
    display(Markdown(f"{header}\n\n```python\n{text}\n```{note}"))
