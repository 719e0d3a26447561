"""When a reconcile pass runs: at once for a stick on its own, and so that a storm costs at
most two writes and two reloads (the leading pass and the storm's).

- A vanished stick asks for an urgent pass: it waits only until removals have been quiet for
  `REMOVAL_QUIET` (the sticks of one hub drop within milliseconds: one write parks them all),
  never longer than `REMOVAL_MAX_WAIT`.
- Anything else starts at once (leading edge): a stick identified goes into a pass the moment
  it is, whether or not other sticks are still settling or being probed. Those go into the
  next pass, which starts as soon as the current one has written and told Asterisk
  (verification runs beside it): passes never overlap.
- That next pass is a storm's (a hub returning) when the previous one, less than `TRAILING`
  s before, started while other sticks were settling or being probed, or saw a new stick
  appear within `ARRIVAL_QUIET` of its start: it waits while sticks are settling or being
  probed, or a port appeared in the last moment (`awaited(trailing=True)`), at most
  `batch_max_wait` after the first request. So a hub returning costs the leading pass and
  one more, not one per stick, and a stick returning on its own waits for nothing.
- A stick that is not back yet holds nobody: each line returns on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

REMOVAL_QUIET = 0.05  # sticks of one hub drop within milliseconds: park them in one write
REMOVAL_MAX_WAIT = 0.5  # ...but never wait longer than this to park and stop
RECHECK = 0.05  # while waiting for arrivals, look again at least this often
TRAILING = 1.0  # a pass asked for this soon after one that left sticks behind is a storm's
ARRIVAL_QUIET = 0.1  # the sticks of one hub appear within this of each other


class Coalescer:
    def __init__(
        self,
        batch_max_wait: float,
        awaited: Callable[[bool], float],
        last_removal: Callable[[], float],
        arrived_between: Callable[[float, float], bool] = lambda _a, _b: False,
        beat: Callable[[], None] = lambda: None,
        idle: float = 10.0,
    ) -> None:
        self._beat = beat  # progress, for the stall check (see tasks.py)...
        self._idle = idle  # ...marked at least this often while no pass is asked for
        self._batch_max_wait = batch_max_wait
        self._awaited = awaited
        self._last_removal = last_removal
        self._arrived_between = arrived_between
        self._dirty = asyncio.Event()
        self._wake = asyncio.Event()
        self._urgent = False
        self._pending_since: float | None = None
        self._left_behind = float("-inf")  # when a pass last left sticks behind it
        self._started: float | None = None  # when the last pass started
        self._busy = False  # ...with other sticks settling or being probed

    def request(self, urgent: bool) -> None:
        if self._pending_since is None:
            self._pending_since = time.monotonic()
        self._urgent = self._urgent or urgent
        self._dirty.set()
        self._wake.set()

    def wake(self) -> None:
        """Something a waiting pass may care about changed (a stick identified, a probe failed)."""
        self._wake.set()

    async def next_pass(self) -> bool:
        """Return when a pass should run; True when it was asked for urgently."""
        while not self._dirty.is_set():
            with contextlib.suppress(TimeoutError):  # no task of its own, unlike wait_for
                async with asyncio.timeout(self._idle):
                    await self._dirty.wait()
            self._beat()
        urgent = self._urgent
        if not urgent:
            await asyncio.sleep(0)
            started = self._started
            if started is not None and (  # did the last pass leave sticks behind it?
                self._busy or self._arrived_between(started, started + ARRIVAL_QUIET)
            ):
                self._left_behind = started
            deadline = (self._pending_since or time.monotonic()) + self._batch_max_wait
            trailing = time.monotonic() - self._left_behind < TRAILING
            while trailing and not self._urgent and (awaited := self._awaited(True)) > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._wake.clear()
                # Woken when a stick is identified or fails; a quiet after the last arrival
                # ends with no event, so that is waited for exactly (RECHECK: a safety net).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), min(left, awaited, RECHECK))
            urgent = self._urgent  # a stick vanished meanwhile: this pass is the urgent one
        if urgent:
            give_up = time.monotonic() + REMOVAL_MAX_WAIT
            while (quiet := self._last_removal() + REMOVAL_QUIET - time.monotonic()) > 0:
                await asyncio.sleep(min(quiet, max(0.0, give_up - time.monotonic())))
                if time.monotonic() >= give_up:
                    break
        self._dirty.clear()
        self._urgent = False
        self._pending_since = None
        self._started, self._busy = time.monotonic(), self._awaited(False) > 0
        return urgent
