"""The daemon's long-lived tasks under one rule: a task that dies is restarted with backoff
and a journal event; one that keeps dying ends the daemon with a non-zero exit, so systemd
restarts the whole process. Never a task that is dead while the process looks healthy.

The watchdog asks `dead()` before each ping: a task counts as alive if it runs now, or died
less than the watchdog interval ago and its restart is due (its backoff is capped below the
interval). Things that are not tasks (the udev reader, the metrics thread) register a check.

Running is not enough: a task hung for good in an await (a future nobody completes) runs
and does nothing. So a task kept with a `bound` marks its progress (`beat`) at each turn of
its loop, and while idle at least every `BEAT` s through its waits' timeouts; one that has
not for longer than its bound (well above its own longest legitimate wait) is stalled: no
ping, and a journal event, so systemd restarts the daemon.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from dongled.core.backoff import Backoff
from dongled.telemetry.eventlog import Event, emit

log = logging.getLogger(__name__)

FIRST = 0.5  # the first restart's wait
CAP = 5.0  # no restart waits longer (below any sane WatchdogSec/2)
LIMIT = 5  # this many deaths of one task ...
WINDOW = 60.0  # ... within this many seconds: it cannot be kept alive, the daemon exits
BEAT = 10.0  # an idle task marks its progress at least this often (its waits' timeouts)

Factory = Callable[[], Coroutine[Any, Any, None]]


@dataclass(slots=True)
class _Kept:
    name: str
    factory: Factory
    task: asyncio.Task[None] | None = None
    restart: asyncio.TimerHandle | None = None
    died_at: float | None = None  # monotonic time of the last death, None while running
    deaths: list[float] = field(default_factory=list)
    backoff: Backoff = field(default_factory=lambda: Backoff(first=FIRST, cap=CAP))
    bound: float | None = None  # longest time without progress before it counts as stalled
    progress: float = 0.0  # monotonic time of its last beat (or start)
    stalled: bool = False  # said once per stall


def overdue(progress: Mapping[str, float], bounds: Mapping[str, float], now: float) -> list[str]:
    """The tasks whose last progress is more than their bound ago (a task without a bound
    never is)."""
    return [n for n, at in progress.items() if n in bounds and now - at > bounds[n]]


class Tasks:
    """Starts, watches and restarts the long-lived tasks; `fatal(why)` when one cannot be
    kept alive (the daemon then stops and exits non-zero)."""

    def __init__(
        self, fatal: Callable[[str], None], *, limit: int = LIMIT, window: float = WINDOW
    ) -> None:
        self._fatal = fatal
        self._limit = limit
        self._window = window
        self._kept: dict[str, _Kept] = {}
        self._checks: dict[str, Callable[[], str | None]] = {}
        self._closed = False

    def keep(self, name: str, factory: Factory, *, bound: float | None = None) -> None:
        """Run `factory()` as the long-lived task `name` until close(). With a `bound`, the
        task must `beat(name)` at least that often, or it counts as stalled."""
        kept = self._kept[name] = _Kept(name, factory, bound=bound)
        self._start(kept)

    def beat(self, name: str) -> None:
        """Task `name` made progress (a turn of its loop, or an idle wait's timeout)."""
        kept = self._kept.get(name)
        if kept is None:  # not kept (yet): nothing watches its progress
            return
        kept.progress = time.monotonic()
        if kept.stalled:
            kept.stalled = False
            log.warning("task %s makes progress again", name)

    def beater(self, name: str) -> Callable[[], None]:
        """`beat` for one task, to hand to the code that runs in it."""
        return lambda: self.beat(name)

    def check(self, name: str, why_dead: Callable[[], str | None]) -> None:
        """Something alive that is not a task: `why_dead()` says why it is not, or None."""
        self._checks[name] = why_dead

    def _start(self, kept: _Kept) -> None:
        kept.restart = None
        if self._closed:
            return
        task = asyncio.ensure_future(kept.factory())
        task.set_name(kept.name)
        kept.task = task
        kept.died_at = None
        kept.progress = time.monotonic()
        kept.stalled = False
        task.add_done_callback(lambda t: self._done(kept, t))

    def _done(self, kept: _Kept, task: asyncio.Task[None]) -> None:
        if self._closed or kept.task is not task:
            return
        if task.cancelled():
            why = "was cancelled"
        elif (exc := task.exception()) is not None:
            why = f"failed: {type(exc).__name__}: {exc}"
            log.error("task %s failed", kept.name, exc_info=exc)
        else:
            why = "returned"  # a long-lived task never does: as bad as a crash
        now = time.monotonic()
        kept.died_at = now
        kept.deaths = [t for t in kept.deaths if now - t < self._window] + [now]
        if len(kept.deaths) == 1:
            kept.backoff.reset()  # the first death in a long while waits `FIRST` again
        if len(kept.deaths) >= self._limit:
            emit(
                Event.TASK_DIED,
                "task %s %s, %d times within %g s: exiting for systemd to restart dongled",
                kept.name,
                why,
                len(kept.deaths),
                self._window,
            )
            self._fatal(f"task {kept.name} {why}")
            return
        wait = kept.backoff.next()
        emit(Event.TASK_DIED, "task %s %s; restarting it in %g s", kept.name, why, wait)
        kept.restart = asyncio.get_running_loop().call_later(wait, self._start, kept)

    def dead(self, within: float) -> list[str]:
        """What is dead now: a task not running for `within` seconds or more, or without a
        restart due; a running task stalled past its bound; a check that fails. Empty: the
        watchdog may ping."""
        now = time.monotonic()
        out = []
        for kept in self._kept.values():
            if kept.died_at is None:
                continue
            if kept.restart is None or now - kept.died_at >= within:
                out.append(kept.name)
        running = {k.name: k.progress for k in self._kept.values() if k.died_at is None}
        bounds = {k.name: k.bound for k in self._kept.values() if k.bound is not None}
        for name in overdue(running, bounds, now):
            kept = self._kept[name]
            idle = now - kept.progress
            if not kept.stalled:
                kept.stalled = True
                emit(
                    Event.TASK_STALLED,
                    "task %s has made no progress for %.1f s (bound %g s): hung in an await; "
                    "no watchdog ping, so systemd restarts dongled",
                    name,
                    idle,
                    bounds[name],
                )
            out.append(f"{name} (no progress for {idle:.0f} s)")
        for name, why_dead in self._checks.items():
            try:
                why = why_dead()
            except Exception:  # a broken check is a dead thing, not a dead daemon
                log.exception("the liveness check of %s failed", name)
                why = "its check failed"
            if why is not None:
                out.append(f"{name} ({why})")
        return out

    def running(self) -> list[asyncio.Task[None]]:
        return [k.task for k in self._kept.values() if k.task is not None and not k.task.done()]

    async def close(self) -> None:
        self._closed = True
        for kept in self._kept.values():
            if kept.restart is not None:
                kept.restart.cancel()
        tasks = self.running()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
