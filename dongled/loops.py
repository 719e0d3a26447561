"""The daemon's own loops, apart from the wiring that builds the rooms and starts them: one
reconcile pass after another, and the watchdog's pings. At the top level because each reads
rooms on several floors (the pass loop: the lanes, fleet health, the status summary; the
watchdog: the long-lived tasks and why the daemon gave up).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from dongled.core.backoff import Backoff
from dongled.core.tasks import Tasks
from dongled.hotplug.fleet import FleetHealth
from dongled.reconcile.coalescer import Coalescer
from dongled.reconcile.lanes import Lanes
from dongled.telemetry import notify

log = logging.getLogger(__name__)


class PassLoop:
    """The `reconcile` task: a pass of every lane when the coalescer says, under the pass
    lock; retried with backoff when Asterisk refused or failed; READY=1 after the first."""

    def __init__(
        self,
        coalescer: Coalescer,
        lanes: Lanes,
        pass_lock: asyncio.Lock,
        fleet: FleetHealth,
        counters: dict[str, int],
        summary: Callable[[], str],  # systemd's STATUS= text, sent with READY=1
        backoff_max: float,
        beat: Callable[[], None] = lambda: None,  # the task's progress mark (core.tasks)
    ) -> None:
        self._coalescer, self._lanes, self._lock = coalescer, lanes, pass_lock
        self._beat = beat
        self._fleet, self._counters, self._summary = fleet, counters, summary
        self._backoff_max = backoff_max
        self.ready = False  # READY=1 was sent (once: the task is restarted if it dies)

    async def run(self) -> None:
        retry = Backoff(first=0.5, cap=self._backoff_max)
        while True:
            self._beat()
            if await self._coalescer.next_pass():
                self._fleet.summarize_drops()
            try:
                async with self._lock:
                    self._counters["passes"] += 1
                    ok = await self._lanes.apply()
            except Exception:
                # A bug must not end the reconcile loop: the daemon would look alive and do
                # nothing. Logged with its traceback, retried with backoff.
                log.exception("reconcile pass failed; retrying")
                ok = False
            if not self.ready:
                self.ready = True
                notify.ready(self._summary())
            self._beat()
            if ok:
                retry.reset()
            else:  # Asterisk refused or failed: try again later, capped
                await asyncio.sleep(retry.next())
                self._coalescer.request(False)


async def watchdog(interval: float, tasks: Tasks, failed: Callable[[], str]) -> None:
    """Pinged from the event loop itself: a hung loop stops the pings and systemd restarts
    us. And only while every long-lived task is alive: a daemon that runs on with one of
    them dead must not look healthy (it is restarted by systemd instead). `failed`: why the
    daemon gave up, "" while it has not."""
    logged = False
    while True:
        dead = tasks.dead(interval)
        why = failed()
        if not dead and not why:
            notify.watchdog()
            logged = False
        elif not logged:
            log.error("no watchdog ping while dead: %s", ", ".join(dead) or why)
            logged = True
        await asyncio.sleep(interval)
