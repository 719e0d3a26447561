"""Fences: our own UUCP lock on a vanished stick's old ports.

chan_dongle retries a lost device's configured paths at every `interval` pass, whatever
stick the kernel has put there meanwhile, and it honours a live process's lock. Holding
those ports keeps it off them until Asterisk has been told (DongleStop, or a reload of a
file that no longer names them); our own probes may still use a fenced port.
"""

from __future__ import annotations

import asyncio
import logging
import time

from dongled.core.backoff import Backoff
from dongled.modem.portlock import fence, unfence

log = logging.getLogger(__name__)

# chan_dongle drops its own lock ~0.1 s after it notices the loss: the first retries come
# quickly, later ones no more than 80 ms apart (far below chan_dongle's `interval` re-grab).
RETRY, RETRY_MAX = 0.02, 0.08
GIVE_UP = 3.0


class Fences:
    def __init__(self, lock_dir: str) -> None:
        self._lock_dir = lock_dir
        self._held: set[str] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._closed = False

    @property
    def held(self) -> frozenset[str]:
        return frozenset(self._held)

    def fence(self, port: str) -> None:
        self._try(port, time.monotonic() + GIVE_UP, Backoff(first=RETRY, cap=RETRY_MAX), None)

    def _try(
        self, port: str, give_up: float, wait: Backoff, timer: asyncio.TimerHandle | None
    ) -> None:
        if timer is not None:
            self._timers.discard(timer)
        if self._closed:
            return
        if fence(self._lock_dir, port):
            self._held.add(port)
        elif time.monotonic() < give_up:  # chan_dongle still holds its own lock
            loop = asyncio.get_running_loop()
            handle: asyncio.TimerHandle | None = None

            def again() -> None:
                self._try(port, give_up, wait, handle)

            handle = loop.call_later(wait.next(), again)
            self._timers.add(handle)
        else:
            log.warning("could not fence %s: its lock is still held", port)

    def lift_all(self) -> None:
        """Every device chan_dongle may (re)open now names a verified or parked port."""
        for port in self._held:
            unfence(self._lock_dir, port)
        self._held.clear()

    def close(self) -> None:
        self._closed = True
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        self.lift_all()
