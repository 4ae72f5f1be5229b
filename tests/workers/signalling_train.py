"""``tinygpt train`` that signals itself at a chosen moment, to test stopping and resuming.

    python signalling_train.py WHERE N SIGNAL COUNT -- TRAIN ARGS...

sends SIGNAL (SIGINT or SIGTERM) COUNT times to this process during the N-th call of WHERE:
``batch`` (after a batch is drawn, before the step that uses it), ``eval`` (an evaluation has
begun) or ``save`` (a checkpoint's bytes are written, not yet moved into place).
"""

import os
import signal
import sys

import tinygpt.checkpoint
import tinygpt.train
from tinygpt.cli import main

where, nth, name, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
targets = {
    "batch": (tinygpt.train, "get_batch"),
    "eval": (tinygpt.train, "estimate_loss"),
    "save": (tinygpt.checkpoint, "save_file"),
}
module, attribute = targets[where]
original = getattr(module, attribute)
calls = 0


def send() -> None:
    for _ in range(count):
        os.kill(os.getpid(), getattr(signal, name))


def signalling(*args, **kwargs):
    global calls
    calls += 1
    if calls == nth and where == "eval":  # the evaluation then runs with the signal pending
        send()
    result = original(*args, **kwargs)  # a batch drawn; a save's temporary file written
    if calls == nth and where != "eval":
        send()
    return result


setattr(module, attribute, signalling)
sys.exit(main(sys.argv[sys.argv.index("--") + 1 :]))
