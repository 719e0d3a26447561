"""Telling Asterisk: the driver's verbs (list, stop, reload, start) in the safe order.

Separate from the pass because the order is the safety rule's: a stop is sent at once, but
nothing is reloaded or started before every device stopped on a tty it would open has let go
of it (`release`), and before a last look finds no device run on another section's stick;
the fences on vanished sticks' ports are lifted only then. The ladder's restart of a device
takes the same path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping

from dongled.asterisk.device import DeviceControl, DeviceEntry
from dongled.conf.dongleconf import DeviceSection
from dongled.core.errors import AmiError, RecoveryError
from dongled.drivers.base import Driver
from dongled.modem.fences import Fences
from dongled.reconcile.driverports import DriverPorts
from dongled.reconcile.plan import Plan, foreign_running
from dongled.reconcile.release import Releases, opening
from dongled.reconcile.seen import Seen
from dongled.telemetry.eventlog import Event, emit
from dongled.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

LAST_LOOKS = 3  # listings before a reload or start that may find a device on a foreign stick
WATCH_EVERY = 0.1  # s between listings while a pass waits for a release before its reload


class Teller:
    def __init__(
        self,
        seen: Seen,
        ami: DeviceControl,
        driver: Driver,
        *,
        ports: DriverPorts,
        releases: Releases,
        fences: Fences,
        reload_when: str,
        metrics: Metrics,
        counters: dict[str, int],
        forget: Callable[[str], None],
        settle_elsewhere: Callable[[Collection[str]], Awaitable[str | None]] | None = None,
    ) -> None:
        self._seen = seen
        self.ami = ami
        self._driver = driver
        self._ports = ports
        self.releases = releases
        self._fences = fences
        self._reload_when = reload_when
        self._metrics = metrics
        self._counters = counters
        self._forget = forget  # a device stopped on a foreign stick is verified no more
        # Another driver's devices stopped on ttys this lane would open (one box, two
        # drivers: a tty chan_dongle is still closing can be a chan_quectel module's now):
        # None, or why not yet.
        self._settle_elsewhere = settle_elsewhere

    def ami_failed(self, exc: AmiError) -> None:
        self._metrics.ami_errors.inc()
        log.debug("AMI failure: %s", exc)

    async def refresh(self) -> bool:
        """List the driver's devices into what the lane saw; False when Asterisk cannot say."""
        if not self.ami.connected:
            self._seen.asterisk = None
            return False
        try:
            self._seen.asterisk = await self.ami.show_devices()
        except AmiError as exc:
            self.ami_failed(exc)
            log.error("cannot read Asterisk's devices: %s", exc)
            self._seen.asterisk = None
            return False
        self.releases.prune(self._seen.asterisk)
        return True

    async def listing(self) -> dict[str, DeviceEntry] | None:
        """A fresh device listing (for a port another process holds), or None."""
        if not self.ami.connected:
            return None
        try:
            self._seen.asterisk = await self.ami.show_devices()
        except AmiError:
            return None
        return self._seen.asterisk

    async def stop(
        self, devices: list[str], entries: Mapping[str, DeviceEntry] | None = None
    ) -> bool:
        """Stop `devices` (as `entries` list them; default: the pass's listing)."""
        listed = (self._seen.asterisk or {}) if entries is None else entries
        ok = True
        for name in devices:
            try:
                await self.ami.stop(name)
            except AmiError as exc:
                self.ami_failed(exc)
                log.error("stopping %s failed: %s", name, exc)
                ok = False
                continue
            self._stopped(name, listed.get(name))
        return ok

    async def stop_foreign(
        self,
        foreign: Mapping[str, str],
        entries: Mapping[str, DeviceEntry],
        sections: Mapping[str, DeviceSection],
    ) -> bool:
        """Stop the devices found running a foreign IMEI between passes (`foreign`: device ->
        the IMEI it runs, `entries` the listing that showed it, `sections` the file now)."""
        for name, imei in foreign.items():
            want = sections[name].imei if name in sections else None
            emit(
                Event.MISMATCH,
                "device %s came up on IMEI %s, not its own %s: stopping it",
                name,
                imei,
                want or "",
                device=name,
                imei=want,
                driver=self._driver.name,
            )
            self._forget(name)
        self._ports.driver_read_unknown()
        return await self.stop(list(foreign), entries)

    def _stopped(self, name: str, entry: DeviceEntry | None) -> None:
        """DongleStop answered: remember what the device may still be closing, journal it."""
        self.releases.stopped(name, entry)
        emit(Event.STOPPED, "stopped device %s", name, device=name, driver=self._driver.name)

    def _started(self, name: str) -> None:
        emit(Event.STARTED, "started device %s", name, device=name, driver=self._driver.name)

    async def restart_device(self, name: str) -> None:
        """DongleStop, wait until chan_dongle has let go of the ttys, DongleStart: never
        DongleRestart, which re-opens the ttys while the device may still be closing."""
        entry = (await self.ami.show_devices(name)).get(name)
        await self.ami.stop(name)
        self._stopped(name, entry)
        sec = self._seen.sections.get(name)
        why = await self._settle(Plan(start=[name]))
        if why is not None:
            # Stopped and not started: verified no more (the ladder must not call the stick
            # healthy); the pass its runner asks for starts it once its ttys are let go.
            self._forget(name)
            raise RecoveryError(why)
        if sec is None or sec.data == self._driver.parked[0]:
            return  # its stick left meanwhile: stays stopped, parked
        await self.ami.start(name)
        self._started(name)

    async def tell(self, p: Plan) -> bool:
        """Reload and start as `p` says, once every device stopped on a tty they would open
        has let go of it; False when Asterisk was not told (yet)."""
        try:
            if p.reload or p.start:
                why = await self._last_look(p)
                if why is not None:
                    log.warning("Asterisk not told yet: %s", why)
                    return False
                # Every device chan_dongle may now (re)open names a verified or parked port.
                self._fences.lift_all()
            if p.reload:
                await self.ami.reload(self._reload_when)
                self._ports.reloaded()
                self._counters["reloads"] += 1
                self._metrics.reloads.inc()
                emit(
                    Event.RELOAD,
                    "asked Asterisk to reload %s (%s)",
                    self._driver.name,
                    self._reload_when,
                    driver=self._driver.name,
                )
            for name in p.start:
                await self.ami.start(name)
                self._started(name)
        except AmiError as exc:
            self.ami_failed(exc)
            log.error("Asterisk did not take the change yet: %s", exc)
            return False
        return True

    async def _last_look(self, p: Plan) -> str | None:
        """Right before a reload or start: wait for the release of what was stopped, then
        list once more. A device that came up on another section's stick since the pass
        listed (an admin's reload, the driver's own retry) is stopped, and its release waited
        for too: it may hold a tty the reload re-opens. None when done, else why not."""
        for _ in range(LAST_LOOKS):
            why, stopped = await self._settle_watching(p)
            if why is not None:
                return why
            if stopped:
                continue  # wait for its release too, then look again
            entries = await self.ami.show_devices()
            foreign = foreign_running(self._seen.sections, entries)
            if not foreign:
                return None
            await self.stop_foreign(foreign, entries, self._seen.sections)
        return "devices kept coming up on other sections' sticks"

    async def _settle_watching(self, p: Plan) -> tuple[str | None, bool]:
        """`_settle`, listing every WATCH_EVERY s while it waits. The pass holds the lock the
        event's (or RE's poll's) check needs, so a device the driver's own retry starts on
        another section's stick meanwhile (on a tty the stopped device let go of) would run
        until the wait ended: it is stopped here instead. Also says whether any was."""
        settle = asyncio.ensure_future(self._settle(p))
        stopped = False
        try:
            while not (await asyncio.wait({settle}, timeout=WATCH_EVERY))[0]:
                entries = await self.ami.show_devices()
                foreign = foreign_running(self._seen.sections, entries)
                if foreign:
                    await self.stop_foreign(foreign, entries, self._seen.sections)
                    stopped = True
        finally:
            if not settle.done():  # an AmiError of the listing: the wait goes with it
                settle.cancel()
                await asyncio.gather(settle, return_exceptions=True)
        return settle.result(), stopped

    async def _settle(self, p: Plan) -> str | None:
        """Wait until no device stopped on a tty `p` would open still holds it: this
        driver's, then (one box, two drivers) the other's. None when done, else why not."""
        ttys = opening(self._seen.sections, p, self._driver.parked)
        why = await self.released(ttys)
        if why is None and self._settle_elsewhere is not None:
            why = await self._settle_elsewhere(ttys)
        return why

    async def released(self, ttys: Collection[str]) -> str | None:
        """Wait until no device this driver stopped holds one of `ttys`; None when done, else
        why not (then nothing may open them yet)."""
        return await self.releases.settle(self.ami, ttys)
