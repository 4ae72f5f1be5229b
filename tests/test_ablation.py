"""Chapter 6's ablation of the default recipe's fixes (benchmarks/ablation.py --study fixes):
its runs are the configurations their names say."""

import sys
from dataclasses import asdict, fields
from pathlib import Path

import pytest

from tinygpt.cli import build_parser
from tinygpt.model import GPTConfig
from tinygpt.presets import preset
from tinygpt.train import TrainConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from ablation import FIXES, fixes_runs  # noqa: E402


def resolve(flags: list[str]) -> tuple[dict, dict]:
    """The model and training configs the CLI would train with these flags (as run_train
    builds them: the preset, with every flag given overriding it)."""
    args = build_parser().parse_args(["train", *flags])
    overrides = {
        f.name: getattr(args, f.name)
        for cls in (GPTConfig, TrainConfig)
        for f in fields(cls)
        if hasattr(args, f.name) and getattr(args, f.name) is not None
    }
    model, train = preset(args.preset, **overrides)
    return asdict(model), asdict(train)


RUNS = fixes_runs()


def test_adding_every_fix_to_the_seed_gives_the_default():
    assert resolve(RUNS["+width"]) == resolve(["--preset", "default", "--patience", "0"])


def test_the_first_run_is_the_seed_without_early_stopping():
    assert resolve(RUNS["seed"]) == resolve(["--preset", "seed"])  # the seed never stops early


@pytest.mark.parametrize("fix", list(FIXES))
def test_each_leave_one_out_run_differs_from_the_default_only_in_its_fix(fix):
    default = resolve(RUNS["+width"])
    without = resolve(RUNS.get(f"default-{fix}", RUNS["+context"]))
    seed = resolve(RUNS["seed"])
    changed = {k for part in (0, 1) for k in default[part] if default[part][k] != without[part][k]}
    assert changed, fix
    for part in (0, 1):  # every changed setting goes back to the seed's value
        for key in changed & set(default[part]):
            assert without[part][key] == seed[part][key], (fix, key)


def test_each_added_fix_changes_only_its_own_settings():
    names = ["seed", *(f"+{fix}" for fix in FIXES)]
    for before, after in zip(names, names[1:]):
        a, b = resolve(RUNS[before]), resolve(RUNS[after])
        changed = {k for part in (0, 1) for k in a[part] if a[part][k] != b[part][k]}
        flags = FIXES[after[1:]][0][::2]
        assert changed == {flag[2:].replace("-", "_") for flag in flags}, after
