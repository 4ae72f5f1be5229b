"""The fine-tuning tasks made from Tiny Shakespeare (tinygpt.tasks, Chapter 10): exact labels,
no leaks, and splits that respect the book's split of the text."""

import json
import random
import re

import pytest

from tinygpt import tasks
from tinygpt.data import split_text


@pytest.fixture(scope="module")
def split(shakespeare):
    return tasks.split_speeches(shakespeare)


def test_speeches_are_the_texts_name_and_lines_blocks(shakespeare):
    found = tasks.speeches(shakespeare)
    first = found[0]
    assert first.speaker == "First Citizen" and first.text.startswith("Before we proceed")
    assert shakespeare[first.start : first.end] == f"{first.speaker}:\n{first.text}"
    assert len(found) == 7093


def test_splits_respect_the_books_split(shakespeare, split):
    cut = len(split_text(shakespeare)[0])
    assert all(s.end <= cut for s in split["train"] + split["val"])
    assert all(s.start >= cut for s in split["test"])
    assert split["train"][-1].start < split["val"][0].start  # val follows train in the text
    assert {k: len(v) for k, v in split.items()} == {"train": 5554, "val": 618, "test": 920}


def test_reply_labels_are_exact_and_balanced(split):
    test = split["test"]
    examples = tasks.reply_examples(test)
    assert sum(e.label for e in examples) * 2 == len(examples) == 1800
    position = {s.text: i for i, s in enumerate(test)}
    for true, false in zip(examples[::2], examples[1::2]):
        assert (true.label, false.label) == (1, 0)
        assert true.text.split("\n\n")[0] == false.text.split("\n\n")[0]  # the same A
    # the names are gone: no line of an input is a speaker's name line
    name_lines = {f"{s.speaker}:" for s in test}
    assert not any(line in name_lines for e in examples for line in e.text.split("\n"))
    assert len(position) > 900


def test_a_negative_is_far_from_its_speech():
    speeches = [tasks.Speech("A", f"speech {i}", i, 0, 0) for i in range(60)]
    examples = tasks.reply_examples(speeches, seed=1)
    for i, false in enumerate(examples[1::2]):
        j = int(re.search(r"speech (\d+)$", false.text).group(1))
        assert abs(j - (i + 1)) >= tasks.MIN_GAP


def test_a_cloze_blanks_one_word_and_answers_it(split):
    rng = random.Random(0)
    for speech in split["test"][:200]:
        example = tasks.cloze_example(speech, rng)
        if tasks.BLANK in speech.text:  # "blank" is a word Shakespeare uses too
            continue
        start = example.input.index(tasks.BLANK)
        rebuilt = (
            example.input[:start] + example.response + example.input[start + len(tasks.BLANK) :]
        )
        assert speech.text.startswith(rebuilt)
        assert example.prompt.endswith("WORD:\n") and example.response.isalpha()


def test_your_own_data_and_the_lines_that_do_not_parse(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text('{"text": "a", "label": "x"}\n\n{"text": "b", "label": 3}\n')
    examples, labels = tasks.read_jsonl(good, "classify")
    assert labels == ("3", "x") and [e.label for e in examples] == [1, 0]
    bad = {
        '{"text": "a", "label": "x"}\n{"text": "b"\n': "line 2: not JSON",
        '{"text": "a", "label": "x"}\n{"label": "y"}\n': "line 2: needs the keys text, label",
        '{"text": 1, "label": "x"}\n{"text": "b", "label": "y"}\n': "line 1: text must be text",
        '{"text": "a", "label": "x"}\n{"text": "b", "label": "x"}\n': "need two",
        '{"text": "a", "label": "x"}\n': "at least 2 examples",
    }
    for content, words in bad.items():
        good.write_text(content)
        with pytest.raises(ValueError, match=re.escape(words)):
            tasks.read_jsonl(good, "classify")
    rows = [{"instruction": "i", "input": "x", "response": "y"}] * 2
    good.write_text("\n".join(json.dumps(r) for r in rows))
    assert tasks.read_jsonl(good, "instruct")[0][0].prompt.startswith("TASK:\ni\n")
    with pytest.raises(ValueError, match="no such file"):
        tasks.read_jsonl(tmp_path / "missing.jsonl", "instruct")


def test_word_order_pairs_hold_the_same_words(split):
    examples = tasks.order_examples(split["test"])
    assert len(examples) == 1740 and sum(e.label for e in examples) * 2 == len(examples)
    for written, swapped in zip(examples[::2], examples[1::2]):
        assert (written.label, swapped.label) == (1, 0) and written.text != swapped.text
        words = tasks.ANY_WORD.findall
        assert sorted(words(written.text)) == sorted(words(swapped.text))  # the same bag
        assert tasks.ANY_WORD.sub("", written.text) == tasks.ANY_WORD.sub("", swapped.text)
        moved = [a != b for a, b in zip(words(written.text), words(swapped.text))]
        assert sum(moved) == 2  # exactly two words changed places
        # capitals and line starts give nothing away: each place keeps its word's case, and
        # every line starts with the same word
        assert [w[0].isupper() for w in words(written.text)] == [
            w[0].isupper() for w in words(swapped.text)
        ]
        assert [words(line)[:1] for line in written.text.split("\n")] == [
            words(line)[:1] for line in swapped.text.split("\n")
        ]


def test_instructions_are_read_from_the_passage(split):
    examples = tasks.instruction_examples(split["test"])
    assert {e.instruction for e in examples} == set(tasks.INSTRUCTIONS)
    for e in examples:
        words = tasks.ANY_WORD.findall(e.input)
        if e.instruction == tasks.FIRST_WORD:
            assert e.response == words[0]
        elif e.instruction == tasks.LAST_WORD:
            assert e.response == words[-1]
        else:
            assert tasks.BLANK in e.input and e.response.isalpha()
