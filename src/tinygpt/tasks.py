"""Fine-tuning tasks made from Tiny Shakespeare itself (Chapter 10): no new download.

Why not "who is speaking?": the plays in Tiny Shakespeare follow one another, and the book's
validation text (its last 10%) is the end of *The Taming of the Shrew* and *The Tempest*, whose
characters barely speak before the cut. A speaker classifier could not be tested on text the
pretrained model never saw. These labels come from the text exactly, do not depend on the play,
and leak nothing through the input:

* **order** (classification): a speech's opening lines as written (label 1) or with two of its
  lower-case words swapped (label 0). Both versions hold the same words, and capitals and line
  starts stay in place, so a bag of words cannot tell them apart: only a model that reads word
  order can.
* **reply** (classification, the first task tried; Chapter 10 shows why it was dropped): the end
  of speech A and the start of speech B, names removed; label 1 if B follows A in the text, 0 if
  B was drawn from at least ``MIN_GAP`` speeches away.
* **instructions** (instruction tuning): a speech's opening and one of three instructions, drawn
  at random: say the word that is blanked out (a cloze), say the first word, say the last word.
  The response is that word.

Splits respect the book's split of the text: speeches wholly in the first 90% give ``train``
(their first 90%) and ``val`` (their last 10%); speeches wholly in the last 10% give ``test``,
text the pretrained model never trained on. The one speech across the cut is dropped.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

SPEAKER_LINE = re.compile(r"[A-Z][A-Za-z' .,-]*:")  # "ROMEO:", "First Citizen:", "Nurse:"
WORD = re.compile(r"[A-Za-z]{3,}")  # a clozed word: letters only, at least three of them
ANY_WORD = re.compile(r"[A-Za-z']+")  # a word that may be swapped
MIN_GAP = 20  # a negative reply is at least this many speeches away from A
SIDE_CHARS = 160  # characters kept of each speech in a reply pair (about 50 tokens)
CLOZE_CHARS = 200  # characters kept of a speech's opening (whole lines)
BLANK = "blank"  # stands for the missing word; a word the pretrained model can read
CLOZE_INSTRUCTION = "Say the word that is wanting."
FIRST_WORD = "Say the first word."
LAST_WORD = "Say the last word."
INSTRUCTIONS = (CLOZE_INSTRUCTION, FIRST_WORD, LAST_WORD)
REPLY_LABELS = ("elsewhere", "reply")  # label 0, label 1
ORDER_LABELS = ("swapped", "as written")  # label 0, label 1

# The prompt template: instruction, input, then the response (and <|endoftext|>), as in
# Alpaca (Taori et al., 2023). Its headers are words a Tiny Shakespeare model has seen, written
# like the play's speaker lines; GPT-2 pieces outside its vocabulary ("###", " Instruction")
# would all read as the one unknown token.
TEMPLATE = "TASK:\n{instruction}\n\nPASSAGE:\n{input}\n\nWORD:\n"


@dataclass(frozen=True)
class Speech:
    speaker: str
    text: str  # the speech without its name line
    block: int  # index among the text's blank-line-separated blocks
    start: int  # character offset of the name line in the whole text
    end: int  # character offset just after the speech


@dataclass(frozen=True)
class Labelled:
    """A classification example."""

    text: str
    label: int


@dataclass(frozen=True)
class Instruction:
    """An instruction-tuning example: the prompt is TEMPLATE filled in; the answer follows."""

    instruction: str
    input: str
    response: str

    @property
    def prompt(self) -> str:
        return TEMPLATE.format(instruction=self.instruction, input=self.input)


def speeches(text: str) -> list[Speech]:
    """Every block of the form "NAME:\\nlines..." in ``text``, in order."""
    found, offset = [], 0
    for block, chunk in enumerate(text.split("\n\n")):
        lines = chunk.split("\n")
        if len(lines) >= 2 and SPEAKER_LINE.fullmatch(lines[0]) and "".join(lines[1:]).strip():
            body = "\n".join(lines[1:])
            found.append(Speech(lines[0][:-1], body, block, offset, offset + len(chunk)))
        offset += len(chunk) + 2
    return found


def split_speeches(text: str, train_fraction: float = 0.9) -> dict[str, list[Speech]]:
    """train / val / test speeches, respecting the book's character split at ``train_fraction``."""
    cut = int(len(text) * train_fraction)  # as tinygpt.data.split_text
    every = speeches(text)
    seen = [s for s in every if s.end <= cut]  # the pretrained model trained on these
    unseen = [s for s in every if s.start >= cut]
    n_train = int(len(seen) * 0.9)
    return {"train": seen[:n_train], "val": seen[n_train:], "test": unseen}


def _tail(text: str, chars: int) -> str:
    """The last ``chars`` characters of ``text``, starting at a word."""
    if len(text) <= chars:
        return text
    cut = text[-chars:]
    return cut[cut.find(" ") + 1 :] if " " in cut else cut


def _head(text: str, chars: int) -> str:
    """The first ``chars`` characters of ``text``, ending after a word."""
    if len(text) <= chars:
        return text
    cut = text[:chars]
    return cut[: cut.rfind(" ")] if " " in cut else cut


def reply_text(a: str, b: str) -> str:
    """A classifier's input: the end of A, a blank line, the start of B."""
    return f"{_tail(a, SIDE_CHARS)}\n\n{_head(b, SIDE_CHARS)}"


def reply_examples(split: list[Speech], seed: int = 0) -> list[Labelled]:
    """Per pair of consecutive speeches: the true reply (label 1) and a far one (label 0)."""
    rng = random.Random(seed)
    examples = []
    for i in range(len(split) - 1):
        a, b = split[i], split[i + 1]
        if b.block != a.block + 1:  # something else (a stage direction, a cut) in between
            continue
        far = [j for j in range(len(split)) if abs(j - (i + 1)) >= MIN_GAP]
        other = split[rng.choice(far)]
        examples.append(Labelled(reply_text(a.text, b.text), 1))
        examples.append(Labelled(reply_text(a.text, other.text), 0))
    return examples


def opening(speech: Speech, chars: int = CLOZE_CHARS) -> str:
    """The speech's first whole lines, up to ``chars`` characters (at least one line)."""
    kept, lines = 0, []
    for line in speech.text.split("\n"):
        if lines and kept + len(line) > chars:
            break
        lines.append(line)
        kept += len(line) + 1
    return "\n".join(lines)


def swap_example(speech: Speech, rng: random.Random) -> Labelled | None:
    """The speech's opening with two of its words swapped (label 0), or None if it has no two
    different words to swap. Only lower-case words inside a line move, so capital letters and
    line starts stay where they were (a swapped "God" or a line starting in lower case would
    give the answer away); punctuation and line breaks stay in place too."""
    text = opening(speech)
    words = [
        w
        for w in ANY_WORD.finditer(text)
        if w.group()[0].islower() and w.start() > 0 and text[w.start() - 1] != "\n"
    ]
    pairs = [(a, b) for a in words for b in words if a.start() < b.start()]
    pairs = [(a, b) for a, b in pairs if a.group().lower() != b.group().lower()]
    if not pairs:
        return None
    a, b = rng.choice(pairs)
    swapped = (
        text[: a.start()] + b.group() + text[a.end() : b.start()] + a.group() + text[b.end() :]
    )
    return Labelled(swapped, 0)


def order_examples(split: list[Speech], seed: int = 0) -> list[Labelled]:
    """Per speech: its opening as written (label 1) and with two words swapped (label 0)."""
    rng = random.Random(seed)
    examples = []
    for speech in split:
        if (swapped := swap_example(speech, rng)) is not None:
            examples += [Labelled(opening(speech), 1), swapped]
    return examples


def cloze_example(speech: Speech, rng: random.Random) -> Instruction | None:
    """The speech's opening with one word blanked; None if it has no word to blank."""
    text = opening(speech)
    words = list(WORD.finditer(text))
    if not words:
        return None
    word = rng.choice(words)
    blanked = text[: word.start()] + BLANK + text[word.end() :]
    return Instruction(CLOZE_INSTRUCTION, blanked, word.group())


def cloze_examples(split: list[Speech], seed: int = 0) -> list[Instruction]:
    rng = random.Random(seed)
    return [e for s in split if (e := cloze_example(s, rng)) is not None]


def instruction_example(speech: Speech, rng: random.Random) -> Instruction | None:
    """One of INSTRUCTIONS, drawn at random, on the speech's opening."""
    instruction = rng.choice(INSTRUCTIONS)
    if instruction == CLOZE_INSTRUCTION:
        return cloze_example(speech, rng)
    text = opening(speech)
    words = ANY_WORD.findall(text)
    if not words:
        return None
    return Instruction(instruction, text, words[0] if instruction == FIRST_WORD else words[-1])


def instruction_examples(split: list[Speech], seed: int = 0) -> list[Instruction]:
    """Per speech, one instruction on its opening: the model must read which one it is asked."""
    rng = random.Random(seed)
    return [e for s in split if (e := instruction_example(s, rng)) is not None]


def read_jsonl(path: str | Path, kind: str) -> tuple[list, tuple[str, ...]]:
    """Your own data, one JSON object per line: {"text": ..., "label": ...} for ``classify``
    (labels are strings or integers) or {"instruction", "input", "response"} for ``instruct``.
    Returns the examples and the label names (sorted; empty for ``instruct``). Any line that
    does not parse is a ValueError naming the file and the line."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"--data {path}: no such file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"--data {path}: not UTF-8 text; give a JSON Lines file") from None
    keys = ("text", "label") if kind == "classify" else ("instruction", "input", "response")
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"--data {path}, line {number}: not JSON ({err.msg})") from None
        if not isinstance(row, dict) or any(k not in row for k in keys):
            raise ValueError(f"--data {path}, line {number}: needs the keys {', '.join(keys)}")
        text_keys = keys if kind == "instruct" else ("text",)
        bad = [k for k in text_keys if not isinstance(row[k], str)]
        if kind == "classify" and type(row["label"]) not in (str, int):
            bad.append("label")
        if bad:
            raise ValueError(f"--data {path}, line {number}: {bad[0]} must be text")
        rows.append(row)
    if len(rows) < 2:
        raise ValueError(f"--data {path}: needs at least 2 examples, found {len(rows)}")
    if kind == "instruct":
        return [Instruction(r["instruction"], r["input"], r["response"]) for r in rows], ()
    names = sorted({str(r["label"]) for r in rows})
    if len(names) < 2:
        raise ValueError(f"--data {path}: every example has the label {names[0]!r}; need two")
    return [Labelled(r["text"], names.index(str(r["label"]))) for r in rows], tuple(names)
