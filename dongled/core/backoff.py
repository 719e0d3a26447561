"""Capped exponential backoff: the one rule behind every retry wait in dongled.

The wait before retry n (1-based) is `first * factor ** (n - 1)`, never more than `cap`.
A pure function for callers that already count their attempts (the ladder, a stick's probe
failures), and a tiny counter for loops that only know "failed again" or "worked".
"""

from __future__ import annotations

from dataclasses import dataclass


def delay(attempt: int, *, first: float, cap: float, factor: float = 2.0) -> float:
    """The wait before retry number `attempt` (1 = the first retry). The cap always wins,
    even over `first` (settings may give recovery.backoff > recovery.backoff_max)."""
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, not {attempt}")
    if factor < 1:
        raise ValueError(f"a backoff factor below 1 would shrink the wait: {factor}")
    try:
        return min(cap, first * factor ** (attempt - 1))
    except OverflowError:  # a stick failing for weeks: the power is long past the cap
        return cap


@dataclass(slots=True)
class Backoff:
    """Counts consecutive failures; `next()` is the wait after one more, `reset()` after a
    success (the next failure waits `first` again)."""

    first: float
    cap: float
    factor: float = 2.0
    attempts: int = 0

    def next(self) -> float:
        self.attempts += 1
        return delay(self.attempts, first=self.first, cap=self.cap, factor=self.factor)

    def reset(self) -> None:
        self.attempts = 0
