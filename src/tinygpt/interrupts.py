"""Stopping a training run cleanly: Ctrl-C ends the current step, never a step half done.

Python turns Ctrl-C (SIGINT) into a ``KeyboardInterrupt`` wherever the program happens to be:
after a batch was drawn but before the optimizer stepped, say. A checkpoint saved there is not
a state that an uninterrupted run ever passed through (the random generators have moved, the
weights may be updated while the step counter is not), so resuming from it would not continue
bit for bit. ``StopRequest`` instead only *records* the first SIGINT or SIGTERM (what a job
scheduler sends); the training loop looks at it between steps, saves, and stops. A second
signal means "now": it raises ``KeyboardInterrupt`` at once, and the last checkpoint written
before it stays as it was (every save is atomic, see ``tinygpt.files``).
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType


class StopRequest:
    """``with StopRequest() as stop:`` ... ``if stop.requested: save and leave the loop``.

    Outside the main thread (where Python cannot take signals) it does nothing, and Ctrl-C
    behaves as usual.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, notice: str = "stopping after this step and saving") -> None:
        self.requested = False
        self.signal_name = ""
        self.notice = notice
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:  # the second signal: stop at once
            raise KeyboardInterrupt
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        print(f"\n{self.signal_name}: {self.notice} (again to abort at once)", file=sys.stderr)

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
