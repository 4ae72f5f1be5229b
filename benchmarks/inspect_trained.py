"""Look inside a trained model: what the chapters say training does, measured.

Chapter 2 says tokens that behave alike end up with similar embedding rows; Chapter 3 cites
induction heads and "my kingdom for a -> horse"; Chapter 4 promises to point the attention
explorer at a model trained on the real task. This script measures each on a checkpoint (the
ten-minute default model) and, for comparison, on the same architecture untrained:

* embedding neighbours: the nearest tokens by cosine similarity of ``wte`` rows;
* what each attention head attends to on validation text: the previous token, the first token
  of the window, the token itself, newlines;
* an induction test: random token sequences shown twice; the loss on the second copy against
  the first, and each head's attention from a token of the second copy to the token that
  followed its earlier occurrence;
* a few next-token predictions the chapters mention;
* a recording of every head's attention on Chapter 4's explorer prompts and on a passage of
  validation text (``attention.json``, read by ``tinygpt.book.RecordedAttention``), so the
  book can show the trained model's attention without its weights.

    tinygpt train --preset default --max-minutes 10 --max-steps 1000000 --out runs/default-10min
    python benchmarks/inspect_trained.py runs/default-10min/best.safetensors \
        --out book/results/inspect/summary.json   # attention.json goes beside it
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from tinygpt.book.probes import RecordedAttention, attention_maps
from tinygpt.data import get_batch, gpt2_token_splits, load_text, split_text
from tinygpt.generate import TextGenerator
from tinygpt.model import GPT
from tinygpt.tokenizer import gpt2_encoding

PROBES = [" king", " queen", " love", " death", " lord", " sweet", " night", " blood", " son"]
PROMPTS = ["A horse! a horse! my kingdom for a", "ROMEO:\nBut, soft! what light through yonder"]
EXPLORER_PROMPTS = [  # Chapter 4's, then a passage of validation text (validation_passage)
    "ROMEO:\nBut, soft! what light through yonder window breaks?",
    "To be, or not to be, that is the question:",
    "Friends, Romans, countrymen, lend me your ears;",
    "First Citizen:\nBefore we proceed any further, hear me speak.",
]
REMAKE = (
    "to type your own, train the model (tinygpt train --preset default --max-minutes 10 "
    "--out runs/default-10min) and pass it instead of this recording"
)


def validation_passage(enc, tokens: int = 32) -> str:
    """The first exchange of validation text that starts a speech and holds a second speaker's
    name: the text of the first ``tokens`` GPT-2 tokens from there."""
    _, val_text = split_text(load_text())
    start = val_text.index("\n\n") + 2  # the first speech that starts inside the split
    return enc.decode(enc.encode_ordinary(val_text[start:])[:tokens])


def neighbours(table: torch.Tensor, vocab, enc, word: str, k: int = 5) -> dict:
    """The k rows of ``table`` (model ids) closest to ``word``'s by cosine similarity."""
    (gpt2_id,) = enc.encode_ordinary(word)
    local = int(vocab.to_local(torch.tensor([gpt2_id])))
    if local == vocab.unk_id:
        return {"neighbours": [], "cosine": [], "note": "not in the model's vocabulary"}
    unit = F.normalize(table, dim=-1)
    sims = unit @ unit[local]
    sims[[local, vocab.unk_id]] = -2.0  # not itself, not the unknown bucket
    best = sims.topk(k)
    names = [enc.decode([int(vocab.to_global(torch.tensor([i])))]) for i in best.indices]
    return {"neighbours": names, "cosine": [round(float(s), 3) for s in best.values]}


def head_habits(model: GPT, windows: torch.Tensor, newline: int) -> list[list[dict]]:
    """Per layer and head: the mean attention weight on the previous token, on position 0, on
    the token itself, and on newline tokens (averaged over queries t >= 1)."""
    maps = attention_maps(model, windows)  # per layer (B, nh, T, T)
    is_newline = (windows == newline).float()  # (B, T)
    habits = []
    for weights in maps:
        w = weights[:, :, 1:, :]  # queries 1 .. T-1
        layer = []
        for h in range(w.size(1)):
            wh = w[:, h]  # (B, T-1, T)
            layer.append({
                "previous": round(float(weights[:, h].diagonal(-1, -2, -1).mean()), 3),
                "first": round(float(wh[..., 0].mean()), 3),
                "self": round(float(weights[:, h, 1:].diagonal(1, -2, -1).mean()), 3),
                "newline": round(float((wh * is_newline[:, None, :]).sum(-1).mean()), 3),
            })  # fmt: skip
        habits.append(layer)
    return habits


def induction(model: GPT, vocab_size: int, length: int = 32, batch: int = 64) -> dict:
    """Random sequences of ``length`` common tokens, shown twice. Loss per copy, and per head
    the mean attention from position t of the second copy to t - length + 1 (the token that
    followed the same token in the first copy: what an induction head looks at)."""
    g = torch.Generator().manual_seed(0)
    first = torch.randint(0, min(vocab_size - 1, 2000), (batch, length), generator=g)
    x = torch.cat([first, first], dim=1)  # (B, 2L)
    model.eval()
    with torch.no_grad():
        logits, _ = model(x[:, :-1])
    nll = F.cross_entropy(logits.transpose(1, 2), x[:, 1:], reduction="none")  # (B, 2L-1)
    maps = attention_maps(model, x)
    scores = []
    for weights in maps:  # (B, nh, 2L, 2L)
        t = torch.arange(length, 2 * length)
        target = t - length + 1
        heads = range(weights.size(1))
        scores.append([round(float(weights[:, h, t, target].mean()), 3) for h in heads])
    return {
        "length": length,
        "loss_first_copy": round(float(nll[:, : length - 1].mean()), 3),
        "loss_second_copy": round(float(nll[:, length:].mean()), 3),
        "induction_score": scores,
        "chance_weight": round(1.0 / (1.5 * length), 4),
    }


def predictions(gen: TextGenerator, enc, prompt: str, k: int = 5) -> dict:
    ids = torch.tensor([enc.encode_ordinary(prompt)])
    local = gen.vocab.to_local(ids) if gen.vocab is not None else ids
    with torch.no_grad():
        logits, _ = gen.model(local[:, -gen.model.config.block_size :])
    probs = logits[0, -1].softmax(-1)
    top = probs.topk(k)

    def to_text(i: int) -> str:
        if i == gen.vocab.unk_id:
            return "⟨unknown⟩"
        return enc.decode([int(gen.vocab.to_global(torch.tensor([i])))])

    return {"prompt": prompt, "top": [[to_text(int(i)), round(float(p), 3)]
                                      for p, i in zip(top.values, top.indices)]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--out", type=Path, default=Path("book/results/inspect/summary.json"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    enc = gpt2_encoding()
    gen = TextGenerator.from_checkpoint(args.checkpoint)
    trained, vocab = gen.model.eval(), gen.vocab
    torch.manual_seed(0)
    untrained = GPT(trained.config).eval()
    _, val = gpt2_token_splits()
    windows, _ = get_batch(vocab.to_local(val), 32, 128, torch.Generator().manual_seed(0))
    newline = int(vocab.to_local(torch.tensor(enc.encode_ordinary("\n"))))
    summary = {
        "checkpoint": str(args.checkpoint),
        "embedding_neighbours": {
            name: {w: neighbours(m.transformer.wte.weight.detach(), vocab, enc, w) for w in PROBES}
            for name, m in (("trained", trained), ("untrained", untrained))
        },
        "heads": {name: head_habits(m, windows, newline)
                  for name, m in (("trained", trained), ("untrained", untrained))},  # fmt: skip
        "induction": {name: induction(m, vocab.size)
                      for name, m in (("trained", trained), ("untrained", untrained))},  # fmt: skip
        "predictions": [predictions(gen, enc, p) for p in PROMPTS],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    prompts = [*EXPLORER_PROMPTS, validation_passage(enc)]
    sequences = [vocab.to_local(torch.tensor(enc.encode_ordinary(p))).tolist() for p in prompts]
    recording = RecordedAttention.record(trained, sequences, source=REMAKE)
    record = {"prompts": prompts, **recording.to_json()}
    (args.out.parent / "attention.json").write_text(json.dumps(record, separators=(",", ":")))
    print(json.dumps(summary["induction"], indent=1))
    print(json.dumps(summary["predictions"], indent=1, ensure_ascii=False))
    for w in PROBES[:4]:
        print(w, summary["embedding_neighbours"]["trained"][w]["neighbours"], "| untrained:",
              summary["embedding_neighbours"]["untrained"][w]["neighbours"])


if __name__ == "__main__":
    main()
