"""Seeing a foreign binding within a second, whatever caused it.

An admin's reload of a hand-swapped file, the driver's own retry on a stale path, an
Asterisk restart: any of them can start a device on another section's stick, and nothing in
Asterisk announces a file edit. What chan_dongle and chan_quectel IM do announce is a device
that has finished initializing (`DongleStatus` / `QuectelStatus`, `Status: Initialize`, read
class `call`): its IMEI is in the listing by then, so that one device is listed and checked.
chan_quectel RE announces nothing: its listing is polled every `POLL` seconds instead, and
every `HURRY` seconds for `HURRY_FOR` seconds after a driver's file changed (`hurry`): a swap
saved by hand is bound by an admin's reload only until dongled has put the file back, so that
is when a foreign binding is likely, and a second poll period would push it past a second.

A device found on a foreign IMEI is stopped at once and an urgent pass sets it right (it
writes only verified ports). The check holds the pass lock, so a listing read before a pass
started the device on its right stick is never acted on after that pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from dongled.conf.dongleconf import DeviceSection, sections_now
from dongled.core.errors import AmiError
from dongled.reconcile.executor import PassExecutor
from dongled.reconcile.plan import foreign_running

log = logging.getLogger(__name__)

__all__ = ["HURRY", "HURRY_FOR", "POLL", "READY", "BindingWatch"]

POLL = 0.5  # s between listings of a driver that announces nothing (RE)
HURRY, HURRY_FOR = 0.1, 3.0  # s between its listings, and for how long, after a file changed
READY = "Initialize"  # the status after which a device's IMEI is in the listing


class BindingWatch:
    def __init__(
        self,
        lock: asyncio.Lock,
        request: Callable[[bool], None],
        spawn: Callable[[Awaitable[None], str], object],
        *,
        poll: float = POLL,
    ) -> None:
        self._lock = lock  # held by every reconcile pass
        self._request = request
        self._spawn = spawn
        self.poll = poll
        self.checks = 0  # listings read for this watch (benchmarks)
        self._hurry_until = float("-inf")  # loop time until which polls come every HURRY s
        self._sleepers: set[asyncio.Event] = set()  # one per polling task: woken by `hurry`

    def taking(self, lane: PassExecutor) -> Callable[[str, str], None]:
        """The callback for `lane`'s driver's status events: (device, status)."""
        return lambda device, status: self.on_status(lane, device, status)

    def on_status(self, lane: PassExecutor, device: str, status: str) -> None:
        """A device status event of `lane`'s driver."""
        if status == READY:
            self._spawn(self.check(lane, device), f"check {device}")

    def hurry(self) -> None:
        """A driver's file changed (an edit under way, or dongled's own write): poll at once,
        then every HURRY s for the next HURRY_FOR s."""
        self._hurry_until = asyncio.get_running_loop().time() + HURRY_FOR
        for woken in self._sleepers:
            woken.set()

    async def polling(self, lane: PassExecutor, beat: Callable[[], None] = lambda: None) -> None:
        """Check every device of a driver without events, every `poll` seconds, or HURRY
        while hurried (`beat`: a turn done, for the stall check)."""
        woken = asyncio.Event()
        self._sleepers.add(woken)
        try:
            while True:
                beat()
                hurried = asyncio.get_running_loop().time() < self._hurry_until
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(HURRY if hurried else self.poll):
                        await woken.wait()
                woken.clear()
                if lane.ami.connected:
                    await self.check(lane, None)
        finally:
            self._sleepers.discard(woken)

    async def check(self, lane: PassExecutor, device: str | None) -> None:
        """List `device` (None: all of the lane's) and stop whatever runs a foreign IMEI."""
        async with self._lock:
            if not lane.ami.connected:
                return
            try:
                entries = await lane.ami.show_devices(device)
            except AmiError as exc:
                log.debug("listing for the binding check failed: %s", exc)
                return
            self.checks += 1
            sections = lane.seen.sections
            if foreign_running(sections, entries) or set(entries) - set(sections):
                # The file may name other IMEIs, or more devices, than the last pass read
                # (an admin's edit and reload before it): the file decides.
                sections = await asyncio.to_thread(_sections_now, lane)  # off the loop
            foreign = foreign_running(sections, entries)
            if not foreign:
                return
            await lane.teller.stop_foreign(foreign, entries, sections)
        self._request(True)


def _sections_now(lane: PassExecutor) -> dict[str, DeviceSection]:
    """The lane's sections as its file says now (an admin may have edited it since the last
    pass); the last good parse while it does not parse."""
    sections = sections_now(lane.conf_path)
    return lane.seen.sections if sections is None else sections
