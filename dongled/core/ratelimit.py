"""How loud to say a failure that repeats on every retry (a refused AMI login, say).

A wrong secret does not fix itself: logging it at ERROR on every reconnect (every
`ami.backoff_max` seconds, forever) buries everything else in the journal. It is said once at
its full level, then at DEBUG, and again at its full level every `every` seconds with the
number of attempts in between, so an admin who looks later still finds it. A different
failure, or one after a success, is news and is said at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Say:
    level: int
    suffix: str  # appended to the message: "" or " (still failing: 12 more attempts in 600 s)"


@dataclass(slots=True)
class Repeats:
    level: int = logging.ERROR
    every: float = 600.0
    _what: str | None = None
    _loud_at: float = 0.0
    _quiet: int = 0

    def tell(self, what: str, now: float) -> Say:
        """The level and suffix for failure `what` (its message) happening at `now`."""
        if what != self._what:
            self._what, self._loud_at, self._quiet = what, now, 0
            return Say(self.level, "")
        if now - self._loud_at < self.every:
            self._quiet += 1
            return Say(logging.DEBUG, "")
        quiet, since = self._quiet, now - self._loud_at
        self._loud_at, self._quiet = now, 0
        return Say(self.level, f" (still failing: {quiet + 1} more attempts in {since:.0f} s)")

    def reset(self) -> None:
        """It worked: the next failure is news again."""
        self._what, self._quiet = None, 0
