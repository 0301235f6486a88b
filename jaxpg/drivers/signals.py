r"""SIGINT and SIGTERM as a request to stop at the next safe point (a chunk
boundary, where a checkpoint can be written), instead of an exception in the
middle of a compiled call."""

from __future__ import annotations

import signal
from typing import Any

__all__ = ["Stopper"]


class Stopper:
    """Turns SIGINT/SIGTERM into a stop request at the next chunk boundary
    (a second signal gets the previous handler: Ctrl-C twice raises)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.stop = False
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame):
        self.stop = True
        self.signum = signum
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def __enter__(self):
        if self.enabled:
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}
        return False
