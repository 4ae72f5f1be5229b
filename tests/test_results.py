"""The committed run results and what the book's prose says about them agree.

`book/intro.md` quotes the two ten-minute runs of `benchmarks/quality.py` (their losses and
samples) by hand, since it is a Markdown page and not a notebook; these tests hold it to
`book/results/summary.json`. The results of the ablation of Chapter 6 are checked for being the
runs `benchmarks/ablation.py` describes.
"""

import json
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
RESULTS = BOOK / "results"


BUDGET_SPENT = "time"  # a run's "stopped" when its wall-clock budget ran out


def summary() -> dict:
    return json.loads((RESULTS / "summary.json").read_text())


@pytest.mark.parametrize("name", ["seed", "default", "speedrun"])
def test_the_intro_quotes_the_committed_loss_and_sample(name):
    intro = (BOOK / "intro.md").read_text()
    run = summary()[name]
    assert f"**{run['val_loss']:.2f} nats per token**" in intro
    assert as_markdown(run["sample"]) in intro, f"the intro's {name} sample is not summary.json's"


def as_markdown(sample: str) -> str:
    """A sample as the intro's cards write it: a line that another line follows ends in a
    backslash (a Markdown line break); blank lines between speeches become one."""
    lines = [line.rstrip() for line in sample.strip().split("\n")]
    lines = [line for i, line in enumerate(lines) if line or lines[i - 1]]  # one blank in a row
    following = lines[1:] + [""]
    return "\n".join(f"{a}\\" if a and b else a for a, b in zip(lines, following))


def test_the_ten_minute_runs_are_the_presets_for_ten_minutes():
    from tinygpt.presets import preset

    for name, run in summary().items():
        assert run["stopped"] == BUDGET_SPENT
        folder = RESULTS / run.get("folder", name)  # the speedrun's sits with its record log
        saved = json.loads((folder / "config.json").read_text())
        model, train = preset(name)
        for key, value in model.to_dict().items():
            if key != "vocab_size":  # the restricted vocabulary's size is set by the data
                assert saved["model"].get(key, value) == value, (name, key)
        expected = {**vars(train), "max_minutes": 10.0, "max_steps": 1_000_000}
        for key, value in expected.items():
            assert saved["train"].get(key, value) == value, (name, key)


def test_the_fixes_ablation_holds_every_run_of_the_study():
    import sys

    sys.path.insert(0, str(BOOK.parent / "benchmarks"))
    from ablation import fixes_runs

    for budget, expected_steps in (("time", None), ("steps", 300)):
        results = json.loads((RESULTS / "fixes" / f"summary-{budget}.json").read_text())
        assert set(results) == set(fixes_runs())
        for name, run in results.items():
            assert run["flags"] == " ".join(fixes_runs()[name])
            assert (RESULTS / "fixes" / budget / name / "metrics.jsonl").exists()
            if expected_steps:
                assert run["steps_run"] == expected_steps
            else:
                assert run["stopped"] == BUDGET_SPENT
