"""Work a process does at most once per interval and key (a project), without asking anyone."""
from __future__ import annotations

import time
from collections.abc import Hashable


class AtMostEvery:
    """`due(key)` is True at most once per `seconds` per key in this process, and marks it done:
    for work whose repetition is harmless but costly (a lease sweep, asking a worker for a fill)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._last: dict[Hashable, float] = {}

    def due(self, key: Hashable) -> bool:
        now = time.monotonic()
        if now - self._last.get(key, float("-inf")) < self.seconds:
            return False
        self._last[key] = now
        return True

    def reset(self) -> None:
        """Forget every key (tests, which start from a fresh process's state)."""
        self._last.clear()
