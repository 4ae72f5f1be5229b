"""Every listing a chapter shows is the package's code as it stands at that chapter, and runs.

For each ``show_source(obj, chapter=N)`` in the notebooks this checks that the call names the
notebook's own chapter, that the view names nothing a later chapter introduces, that the view
compiles, and that the compiled view computes what the package computes at that chapter's
settings (outputs and gradients). The mechanism itself (tags, earlier forms, markers) is tested
on small sources at the end.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import textwrap
from pathlib import Path

import pytest
import torch

from tinygpt.book.source import (
    CHAPTER_NAMES,
    STAGES,
    compile_view,
    later_names,
    stage,
    view_lines,
    view_source,
)

BOOK = Path(__file__).resolve().parent.parent / "book"


def notebook_chapter(path: Path) -> str:
    match = re.match(r"(\d+)_|appendix_([a-z])_", path.name)
    return str(int(match.group(1))) if match.group(1) else match.group(2).upper()


def shown_listings() -> list[tuple[str, str, object, object]]:
    """(notebook, expression, object, chapter argument) for every show_source call."""
    found = []
    for path in sorted(BOOK.glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        code = "\n".join(line for line in code.splitlines() if not line.startswith(("%", "!")))
        tree = ast.parse(code)
        namespace: dict = {}
        for node in tree.body:  # the notebook's imports, to resolve what it shows
            if isinstance(node, ast.Import | ast.ImportFrom) and (
                getattr(node, "module", "") or ""
            ).startswith("tinygpt"):
                exec(compile(ast.Module([node], []), path.name, "exec"), namespace)  # noqa: S102
            elif isinstance(node, ast.Import) and any(a.name == "tinygpt" for a in node.names):
                exec(compile(ast.Module([node], []), path.name, "exec"), namespace)  # noqa: S102
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "show_source"
                and node.args
            ):
                expr = ast.unparse(node.args[0])
                try:
                    obj = eval(expr, namespace)  # noqa: S307 - a name from the notebook's imports
                except NameError:
                    continue  # not package code (a benchmark, a library class)
                chapter = next((k.value for k in node.keywords if k.arg == "chapter"), None)
                chapter = ast.literal_eval(chapter) if chapter is not None else None
                found.append((path.name, expr, obj, chapter))
    return found


LISTINGS = shown_listings()
IDS = [f"{nb}:{expr}" for nb, expr, _, _ in LISTINGS]


def test_every_chapter_shows_package_code():
    shown = {notebook_chapter(Path(nb)) for nb, *_ in LISTINGS}
    assert {"1", "2", "3", "4", "5", "6", "7", "8", "A", "B"} <= shown


@pytest.mark.parametrize(("notebook", "expr", "obj", "chapter"), LISTINGS, ids=IDS)
def test_a_listing_is_the_code_at_its_chapter(notebook, expr, obj, chapter):
    if not (inspect.getmodule(obj).__name__.startswith("tinygpt")):
        pytest.skip("not package code")
    own = notebook_chapter(Path(notebook))
    assert str(chapter) == own, f"show_source({expr}) in {notebook} must pass chapter={own!r}"
    view = view_source(obj, own)
    assert later_names(view, own) == [], f"{expr} in Chapter {own} runs ahead of the prose"
    ast.parse(view)  # a view is valid Python


def owner_of(obj: object) -> object:
    """The module-level function or class that holds obj (a method's class)."""
    module = inspect.getmodule(obj)
    return getattr(module, obj.__qualname__.split(".")[0])


@pytest.mark.parametrize(("notebook", "expr", "obj", "chapter"), LISTINGS, ids=IDS)
def test_a_listing_is_proven_equal_to_the_package(notebook, expr, obj, chapter):
    if not (inspect.getmodule(obj).__name__.startswith("tinygpt")):
        pytest.skip("not package code")
    own = notebook_chapter(Path(notebook))
    owner = owner_of(obj)
    view = view_source(owner, own)
    assert textwrap.indent(view_source(obj, own), " " * (4 if owner is not obj else 0)) in view
    compiled = compile_view(owner, own)  # the view runs as code
    if view == view_source(owner):
        return  # the chapter shows the final code: nothing to prove
    key = (owner.__module__ + "." + owner.__qualname__, own)
    assert key in PROOFS, f"{key} differs from the package: add a proof to PROOFS"
    PROOFS[key](owner, compiled)


# ---- proofs that a view computes what the package computes at its chapter ------------------


def same_module_outputs(make_package, make_view, inputs, train=False):
    """Build both with the same seed; equal weights, outputs and gradients."""
    torch.manual_seed(0)
    package = make_package()
    torch.manual_seed(0)
    view = make_view()
    assert package.state_dict().keys() == view.state_dict().keys()
    for name, tensor in package.state_dict().items():
        assert torch.equal(tensor, view.state_dict()[name]), name
    package.train(train)
    view.train(train)
    results = []
    for module in (package, view):
        torch.manual_seed(1)  # the same dropout masks
        out = module(*inputs)
        out = out[-1] if isinstance(out, tuple) else out  # a GPT's loss
        out.float().pow(2).sum().backward()
        grads = [p.grad.clone() for p in module.parameters()]
        results.append((out.detach(), grads))
    (out_p, grads_p), (out_v, grads_v) = results
    assert torch.equal(out_p, out_v)
    assert all(torch.equal(a, b) for a, b in zip(grads_p, grads_v, strict=True))


def prove_attention(package_cls, view_cls):
    for implementation in ("sdpa", "eager"):
        for dropout, train in ((0.0, False), (0.3, True)):
            args = (16, 4, dropout, True, implementation)
            for T in (1, 7):
                x = torch.randn(2, T, 16)
                same_module_outputs(
                    lambda a=args: package_cls(*a), lambda a=args: view_cls(*a), (x,), train
                )


def gpt_config(**changes):
    from tinygpt.model import GPTConfig

    values = dict(vocab_size=37, block_size=9, n_layer=2, n_head=2, n_embd=8)
    return GPTConfig(**(values | changes))


def prove_config_module(package_cls, view_cls):
    """A module built from a GPTConfig (a Block, an MLP) on a (B, T, C) input."""
    for dropout, train in ((0.0, False), (0.2, True)):
        config = gpt_config(dropout=dropout)
        x = torch.randn(2, 5, 8)
        same_module_outputs(
            lambda c=config: package_cls(c), lambda c=config: view_cls(c), (x,), train
        )


def prove_gpt(package_cls, view_cls):
    for tie, dropout, train in ((True, 0.0, False), (False, 0.2, True)):
        config = gpt_config(dropout=dropout, tie_weights=tie)
        idx, targets = torch.randint(0, 37, (2, 9)), torch.randint(0, 37, (2, 9))
        same_module_outputs(
            lambda c=config: package_cls(c), lambda c=config: view_cls(c), (idx, targets), train
        )
    view = view_cls(gpt_config())
    with pytest.raises(ValueError, match="exceeds the context window"):
        view(torch.zeros(1, 10, dtype=torch.long))


def prove_gpt_llama(package_cls, view_cls):
    """Chapter 8's GPT: learned positions as in Chapter 5, and RoPE with Llama's parts."""
    prove_gpt(package_cls, view_cls)
    llama = dict(pos_embedding="rope", n_kv_head=1, norm="rmsnorm", mlp="swiglu", bias=False)
    for changes in (dict(pos_embedding="rope"), llama):
        config = gpt_config(**changes)
        idx, targets = torch.randint(0, 37, (2, 9)), torch.randint(0, 37, (2, 9))
        same_module_outputs(
            lambda c=config: package_cls(c), lambda c=config: view_cls(c), (idx, targets)
        )


def prove_attention_function(package_fn, view_fn):
    q, k, v = torch.randn(3, 2, 4, 6, 8).unbind(0)
    for causal in (True, False):
        out_p, w_p = package_fn(q, k, v, is_causal=causal)
        out_v, w_v = view_fn(q, k, v, is_causal=causal)
        assert torch.equal(out_p, out_v) and torch.equal(w_p, w_v)


def prove_causal_mask(package_fn, view_fn):
    for T in (1, 5):
        assert torch.equal(package_fn(T, T), view_fn(T, T))


def prove_kv_cache(package_cls, view_cls):
    package, view = package_cls(2, 1, 3, 4, 6), view_cls(2, 1, 3, 4, 6)
    for T in (3, 1, 2):
        k, v = torch.randn(2, 1, 3, T, 4).unbind(0)
        for layer in (0, 1):
            for a, b in zip(package.append(layer, k, v), view.append(layer, k, v)):
                assert torch.equal(a, b)
        package.length += T
        view.length += T
    assert package.nbytes == view.nbytes


def prove_train_step(package_fn, view_fn):
    """The package's step computes the loss without logits (Appendix A); the Chapter 6 view
    through the logits. In float64 the two agree to rounding, step after step."""
    from tinygpt.model import GPT
    from tinygpt.train import TrainConfig

    x, y = torch.randint(0, 37, (2, 4, 9), generator=torch.Generator().manual_seed(0))
    for clip in (1.0, 0.0):
        runs = []
        for step in (package_fn, view_fn):
            torch.manual_seed(0)
            model = GPT(gpt_config()).double()
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
            out = [step(model, optimizer, x, y, 1e-2, TrainConfig(grad_clip=clip)) for _ in "abc"]
            runs.append((out, model.state_dict()))
        (out_p, state_p), (out_v, state_v) = runs
        for (loss_p, norm_p), (loss_v, norm_v) in zip(out_p, out_v, strict=True):
            assert torch.allclose(loss_p, loss_v, rtol=1e-12, atol=0)
            assert (norm_p is None) == (norm_v is None) == (clip == 0)
            assert norm_p is None or torch.allclose(norm_p, norm_v, rtol=1e-10, atol=0)
        for name, tensor in state_p.items():
            assert torch.allclose(tensor, state_v[name], rtol=0, atol=1e-12), name


def prove_from_hf(package_fn, view_fn):
    from types import SimpleNamespace

    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    hf_config = GPT2Config(vocab_size=37, n_positions=9, n_embd=8, n_layer=2, n_head=2)
    hf = GPT2LMHeadModel(hf_config).eval()
    ours, view = package_fn(hf), view_fn(hf)
    assert ours.config == view.config and not view.training
    for name, tensor in ours.state_dict().items():
        assert torch.equal(tensor, view.state_dict()[name]), name
    other = SimpleNamespace(config=SimpleNamespace(model_type="bert"))
    for convert in (package_fn, view_fn):
        with pytest.raises(ValueError, match="convert"):
            convert(other)


def prove_configure_optimizer(package_fn, view_fn, optimizer="adamw"):
    from tinygpt.model import GPT
    from tinygpt.train import TrainConfig

    config = TrainConfig(weight_decay=0.1, optimizer=optimizer)
    x, y = torch.randint(0, 37, (2, 4, 9), generator=torch.Generator().manual_seed(0))
    runs = []
    for configure in (package_fn, view_fn):
        torch.manual_seed(0)
        model = GPT(gpt_config()).double()
        optimizer = configure(model, config, torch.device("cpu"))
        settings = [
            {k: v for k, v in group.items() if k not in ("params", "fused")}
            for group in optimizer.param_groups
        ]
        sizes = [[p.shape for p in group["params"]] for group in optimizer.param_groups]
        for _ in range(3):
            optimizer.zero_grad()
            model(x, y)[1].backward()
            optimizer.step()
        runs.append((settings, sizes, model.state_dict()))
    (settings_p, sizes_p, state_p), (settings_v, sizes_v, state_v) = runs
    assert settings_p == settings_v and sizes_p == sizes_v
    for name, tensor in state_p.items():
        assert torch.allclose(tensor, state_v[name], rtol=0, atol=1e-12), name


def prove_either_optimizer(package_fn, view_fn):
    """Chapter 9's configure_optimizer: AdamW as before, and Muon beside AdamW when asked."""
    for optimizer in ("adamw", "muon"):
        prove_configure_optimizer(package_fn, view_fn, optimizer)


def prove_estimate_loss(package_fn, view_fn):
    """Chapter 6's evaluation (float32, no autocast yet): the same loss on the same windows."""
    from tinygpt.model import GPT
    from tinygpt.vocab import RestrictedVocab

    ids = torch.randint(0, 37, (400,), generator=torch.Generator().manual_seed(0))
    vocab = RestrictedVocab(list(range(30)), full_size=37)
    cpu = torch.device("cpu")
    for restricted, local in ((None, ids), (vocab, vocab.to_local(ids))):
        torch.manual_seed(0)
        model = GPT(gpt_config(dropout=0.1, vocab_size=37 if restricted is None else vocab.size))
        args = (model, local, ids, restricted, 2, 4, cpu)
        assert package_fn(*args) == view_fn(*args)
        assert model.training  # measured without dropout, then put back in training mode


def prove_lr_at(package_fn, view_fn):
    """Chapter 6's schedules (warmup, then cosine or constant) at every step of a run."""
    from tinygpt.train import TrainConfig

    for schedule in ("cosine", "constant"):
        config = TrainConfig(max_steps=100, warmup_steps=10, lr_schedule=schedule, min_lr=1e-4)
        for step in range(0, 101, 3):
            progress = step / 100
            assert package_fn(progress, config, step) == view_fn(progress, config, step)


PROOFS = {
    ("tinygpt.attention.causal_mask", "3"): prove_causal_mask,
    ("tinygpt.attention.scaled_dot_product_attention", "3"): prove_attention_function,
    ("tinygpt.attention.CausalSelfAttention", "4"): prove_attention,
    ("tinygpt.attention.KVCache", "7"): prove_kv_cache,
    ("tinygpt.attention.CausalSelfAttention", "8"): prove_attention,
    ("tinygpt.model.Block", "5"): prove_config_module,
    ("tinygpt.model.GPT", "5"): prove_gpt,
    ("tinygpt.model.GPT", "8"): prove_gpt_llama,
    ("tinygpt.model.MLP", "5"): prove_config_module,
    ("tinygpt.hf.from_hf", "5"): prove_from_hf,
    ("tinygpt.optim.configure_optimizer", "6"): prove_configure_optimizer,
    ("tinygpt.optim.configure_optimizer", "9"): prove_either_optimizer,
    ("tinygpt.optim.configure_muon", "9"): prove_configure_optimizer,
    ("tinygpt.train.lr_at", "6"): prove_lr_at,
    ("tinygpt.train.estimate_loss", "6"): prove_estimate_loss,
    ("tinygpt.train.train_step", "6"): prove_train_step,
}


def test_every_proof_is_used():
    """A proof in PROOFS that no listing needs is a sign a chapter stopped showing something."""
    used = {
        (owner_of(obj).__module__ + "." + owner_of(obj).__qualname__, str(chapter))
        for _, _, obj, chapter in LISTINGS
        if inspect.getmodule(obj).__name__.startswith("tinygpt")
    }
    assert set(PROOFS) <= used


@pytest.mark.parametrize("key", sorted(PROOFS), ids=lambda k: f"{k[0]}@{k[1]}")
def test_a_proof_can_fail(key, monkeypatch):
    """Each proof rejects a view that computes something else: here, the package's own object
    with one number changed (a weight scale or an input shift)."""
    import importlib

    module_name, _, name = key[0].rpartition(".")
    package = getattr(importlib.import_module(module_name), name)
    compiled = compile_view(package, key[1])
    if inspect.isclass(compiled) and issubclass(compiled, torch.nn.Module):

        class Wrong(compiled):
            def forward(self, *args, **kwargs):
                out = super().forward(*args, **kwargs)
                if isinstance(out, tuple):
                    return tuple(o * 1.001 if o is not None else o for o in out)
                return out * 1.001

        with pytest.raises(AssertionError):
            PROOFS[key](package, Wrong)
    elif inspect.isclass(compiled):

        class WrongCache(compiled):
            def append(self, layer, k, v):
                keys, values = super().append(layer, k, v)
                return keys + 1, values

        with pytest.raises(AssertionError):
            PROOFS[key](package, WrongCache)
    else:

        def wrong(*args, **kwargs):
            return perturbed(compiled(*args, **kwargs))

        with pytest.raises(AssertionError):
            PROOFS[key](package, wrong)


def perturbed(out):
    """The same kind of result, changed a little: what a wrong view would return."""
    if isinstance(out, tuple):
        return tuple(perturbed(o) for o in out)
    if isinstance(out, dict):
        return {k: perturbed(v) for k, v in out.items()}
    if isinstance(out, torch.optim.Optimizer) or hasattr(out, "param_groups"):  # or MuonAdamW
        for group in out.param_groups:
            group["lr"] *= 2
        return out
    if isinstance(out, torch.nn.Module):
        with torch.no_grad():
            next(out.parameters()).add_(1)
        return out
    if isinstance(out, torch.Tensor) and out.dtype == torch.bool:
        return ~out
    if isinstance(out, Path):  # a file written somewhere else
        return out.with_name("elsewhere-" + out.name)
    return out if out is None else out + 1


# ---- the mechanism, on small sources -------------------------------------------------------


def view(source: str, chapter) -> str:
    return "".join(view_lines(textwrap.dedent(source).splitlines(keepends=True), chapter))


def test_a_tagged_statement_is_left_out_with_a_marker_and_shown_from_its_chapter():
    source = """
        def f(x, y=0):
            x = x + 1
            x = x * 2  # doubles [ch8]
            return x
    """
    early, late = view(source, 7), view(source, 8)
    assert "x * 2" not in early and "# … more in Chapter 8" in early
    assert "    x = x * 2  # doubles\n" in late and "[ch8]" not in late


def test_a_tag_covers_a_block_its_else_and_a_continued_statement():
    source = """
        def f(x, rope=None):
            if rope is not None:  # [ch8]
                x = x + 1
            else:
                x = x - 1
            y = g(  # [ch7]
                x,
                rope,
            )
            y = g(
                x,
                rope=rope,  # [ch8]
            )
            return y
    """
    early = view(source, 6)
    assert early.count("rope") == 1  # only the untagged parameter is left
    assert (
        "x - 1" not in early
        and "x + 1" not in early
        and "g(\n        x,\n        rope" not in early
    )
    assert "    y = g(x)\n" in early  # a tagged argument leaves no marker; the call is relaid
    assert early.count("# … more in") == 1  # the two adjacent notes are joined
    assert "Chapters 7 and 8" in early
    compile(early, "view", "exec")


def test_earlier_forms_come_back_in_order_then_give_way():
    source = """
        def f(x):
            # [<ch7] x = x + 1
            # [<ch8] x = x + 2
            x = x + 3  # [ch8]
            return x
    """
    assert "x = x + 1" in view(source, 6) and "x + 3" not in view(source, 6)
    assert "x = x + 2" in view(source, 7)
    seen = view(source, 8)
    assert "x = x + 3\n" in seen and "x + 1" not in seen and "x + 2" not in seen


def test_an_earlier_header_keeps_the_blocks_body():
    source = """
        def f(xs):
            # [<ch7] for x in xs:
            for i, x in enumerate(xs):  # [ch7]
                print(x)
    """
    assert view(source, 5) == "def f(xs):\n    for x in xs:\n        print(x)\n"


def test_tagged_docstring_paragraphs_and_comments_disappear_silently():
    source = '''
        def f():
            """Does f.

            [ch8] With rope, more.
            And more.
            """
            # a comment about rope [ch8]
            # that goes on
            return 1
    '''
    early = view(source, 4)
    assert early == 'def f():\n    """Does f."""\n    return 1\n'
    assert "    With rope, more.\n" in view(source, 8)


def test_an_earlier_form_must_sit_above_a_tagged_line():
    with pytest.raises(ValueError, match="must sit above"):
        view("x = 1\n# [<ch7] x = 2\nx = 3\n", 5)


def test_chapter_names_and_stages():
    assert STAGES.index("8") < STAGES.index("A")
    assert stage(4) == stage("4")
    with pytest.raises(ValueError, match="no chapter"):
        stage("Z")
    assert set(CHAPTER_NAMES) <= set(STAGES)
    assert later_names("q, k = apply_rope(q, *rope), k", 4) == [
        "apply_rope (Chapter 8)",
        "rope (Chapter 8)",
    ]
    assert later_names("q, k = apply_rope(q, *rope), k", 8) == []


def test_the_final_view_is_the_source_without_tags():
    from tinygpt.attention import CausalSelfAttention

    final = view_source(CausalSelfAttention)
    assert "[ch" not in final and "[<ch" not in final
    assert "enable_gqa" in final and "cache.append" in final


def test_a_docstring_left_with_one_line_closes_on_it():
    source = '''
        def f():
            """Does f.

            [ch8] More.
            """
            return 1
    '''
    assert view(source, 4) == 'def f():\n    """Does f."""\n    return 1\n'


def test_notes_with_only_blank_lines_between_them_are_joined():
    source = """
        class A:
            def f(self):  # [ch9]
                return 1

            def g(self):  # [ch8]
                return 2

            def h(self):
                return 3
    """
    early = view(source, 4)
    assert early.count("# … more in") == 1 and "# … more in Chapters 8 and 9\n" in early
    compile(early, "view", "exec")


def test_a_list_that_lost_lines_is_laid_out_again():
    source = """
        def f(
            x,
            rope=None,  # [ch8]
        ) -> int:
            y = g(
                x,
                cache,  # [ch7]
            )  # a note
            z = a_rather_long_function_name_for_this_test(
                first_argument_name,
                second_argument_name,
                third_argument_name,
                rope,  # [ch8]
            )
            w = g(
                x,
                y,
            )
            return (
                z,  # [ch8]
                y,
            )
    """
    early = view(source, 6)
    assert early.startswith("def f(x) -> int:\n    y = g(x)  # a note\n")
    assert (  # too long for one line: the items on one line between the brackets
        "    z = a_rather_long_function_name_for_this_test(\n"
        "        first_argument_name, second_argument_name, third_argument_name\n    )\n"
    ) in early
    assert "    w = g(\n        x,\n        y,\n    )\n" in early  # lost nothing: as written
    assert "    return (y,)\n" in early  # a tuple of one keeps its comma
    assert view(source, 8) == textwrap.dedent(source).lstrip("\n").replace("  # [ch8]", "").replace(
        "  # [ch7]", ""
    )  # the final view keeps the source's layout
    compile(early, "view", "exec")


def test_a_listing_without_notes_says_once_what_later_chapters_add():
    from tinygpt.attention import CausalSelfAttention
    from tinygpt.book.source import later_chapters

    plain = view_source(CausalSelfAttention, 4, markers=False)
    assert "# … more in" not in plain and "[ch" not in plain
    noted = view_source(CausalSelfAttention, 4).splitlines()
    kept = [line for line in noted if not line.strip().startswith("# … more in")]
    kept = [line for k, line in enumerate(kept) if line or (k and kept[k - 1])]
    assert plain.splitlines() == kept  # the same code, without the notes
    assert later_chapters(CausalSelfAttention, 4) == ["7", "8", "9"]
    assert later_chapters(CausalSelfAttention, 9) == []
