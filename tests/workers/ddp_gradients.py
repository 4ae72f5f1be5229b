"""Run by torchrun from tests/test_distributed.py: one DDP step on each rank's half of a batch.

Rank 0 also computes the single-process gradients on the whole batch and writes both, with
the maximum difference, to the JSON file named on the command line.
"""

import json
import sys

import torch

from tinygpt import distributed
from tinygpt.model import GPT, GPTConfig

CONFIG = GPTConfig(vocab_size=61, block_size=12, n_layer=2, n_head=2, n_embd=16, dropout=0.0)
B = 3  # per rank

ctx, device = distributed.setup(torch.device("cpu"))
torch.manual_seed(0)
model = GPT(CONFIG)
ddp = distributed.wrap(model, ctx, device)
data = torch.Generator().manual_seed(1)
x = torch.randint(0, CONFIG.vocab_size, (B * ctx.world_size, CONFIG.block_size), generator=data)
y = torch.randint(0, CONFIG.vocab_size, (B * ctx.world_size, CONFIG.block_size), generator=data)
mine = slice(ctx.rank * B, (ctx.rank + 1) * B)  # each rank sees only its own rows
_, loss = ddp(x[mine], y[mine])
loss.backward()  # DDP all-reduces: every rank now holds the mean of all ranks' gradients

if ctx.is_main:
    torch.manual_seed(0)
    single = GPT(CONFIG)
    _, full_loss = single(x, y)  # one process, the combined batch
    full_loss.backward()
    ours = dict(model.named_parameters())
    diff = max(
        (ours[name].grad - p.grad).abs().max().item() for name, p in single.named_parameters()
    )
    scale = max(p.grad.abs().max().item() for p in single.parameters())
    with open(sys.argv[1], "w") as f:
        json.dump({"world_size": ctx.world_size, "max_abs_diff": diff, "max_grad": scale}, f)
distributed.cleanup(ctx)
