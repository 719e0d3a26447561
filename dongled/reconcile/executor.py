"""One reconcile pass of one driver (a "lane"): read and plan -> stop -> write -> tell
Asterisk -> verify.

The daemon runs it for every coalesced batch of events; `dongled scan --apply` runs it once.
The decisions are `reconcile.plan`'s; the steps are rooms of their own: `writer` (the file),
`teller` (Asterisk's verbs, after the release wait), `verifier` (one verification per device).
This module reads the file, plans, and carries the plan through the steps in the safe order:
devices whose stick is gone or foreign are stopped first, the file names only verified or
parked ports, and nothing re-opens a tty a stopped device may still be closing.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from dongled.asterisk.device import DeviceControl, DeviceEntry
from dongled.conf.dongleconf import DeviceSection, DongleConf, sections_now
from dongled.config.settings import Settings
from dongled.config.settings import conf_path as settings_conf_path
from dongled.core.errors import ConfError
from dongled.drivers.base import Driver
from dongled.drivers.chan_dongle import CHAN_DONGLE
from dongled.hotplug.sticks import Located
from dongled.modem.fences import Fences
from dongled.reconcile.driverports import DriverPorts
from dongled.reconcile.notices import Notices
from dongled.reconcile.plan import Plan, foreign_running, plan
from dongled.reconcile.release import Releases
from dongled.reconcile.seen import Seen
from dongled.reconcile.teller import Teller
from dongled.reconcile.verifier import Sticks, Verifier
from dongled.reconcile.writer import Writer
from dongled.telemetry.eventlog import Event, emit
from dongled.telemetry.metrics import Metrics

log = logging.getLogger(__name__)


def file_imeis(path: str) -> set[str]:
    """The imei= values the file names now; none when it cannot be read."""
    sections = sections_now(path) or {}
    return {sec.imei for sec in sections.values() if sec.imei}


def driver_plan(
    driver: Driver,
    sections: Mapping[str, DeviceSection],
    located: Sequence[Located],
    asterisk: Mapping[str, DeviceEntry] | None,
) -> Plan:
    """`reconcile.plan` with what `driver` says: its parked values, which sections take
    their voice from a USB sound card (the daemon's pass and `dongled scan` alike)."""
    return plan(
        sections, located, asterisk, driver.parked, uac=driver.uses_uac, ext=driver.uses_ext_uac
    )


class StickSource(Sticks, Protocol):
    """The identified sticks a pass plans with (the daemon's registry; scan's found sticks)."""

    def located(self) -> list[Located]: ...
    def learn_from_asterisk(self, entries: Mapping[str, DeviceEntry]) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class PassHooks:
    """What a pass asks of the rest of the daemon."""

    publish: Callable[[], None]
    request: Callable[[bool], None]  # another pass (urgent: stop and park now)
    spawn: Callable[[Awaitable[None], str], object]
    recovered: Callable[[str], None]  # usb_port: its stick works again
    failing: Callable[[str, str, str | None, str], None]  # usb_port, reason, device, sys_path
    # Another driver's devices stopped on ttys this pass would open (one box, two drivers:
    # a tty chan_dongle is still closing can be a chan_quectel module's now): None, or why
    # not yet.
    settle_elsewhere: Callable[[Collection[str]], Awaitable[str | None]] | None = None
    # IMEIs the other drivers' files name: their sticks are not "unbound" here.
    named_elsewhere: Callable[[], Awaitable[Collection[str]]] | None = None
    # The file's include tree (path -> content) as a pass just read or wrote it: the file
    # watch asks for no pass for these contents.
    conf_seen: Callable[[Mapping[str, bytes]], None] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Ready:
    """A pass between its halves: the file as read, the plan, and whether Asterisk took the
    stops."""

    conf: DongleConf
    plan: Plan
    ok: bool


@dataclass(frozen=True, slots=True)
class Done:
    """A pass that ended in its first half (the file does not parse: nothing is written or
    told), with its outcome."""

    ok: bool


class PassExecutor:
    """One driver's lane: its file, what it last saw, and its steps; runs its passes."""

    def __init__(
        self,
        settings: Settings,
        ami: DeviceControl,
        registry: StickSource,
        hooks: PassHooks,
        *,
        fences: Fences,
        metrics: Metrics,
        counters: dict[str, int],
        driver: Driver = CHAN_DONGLE,
    ) -> None:
        self.driver = driver
        self.conf_path = settings_conf_path(settings, driver)  # the driver's file
        self.ami = ami
        self.counters = counters
        self._registry = registry
        self._hooks = hooks
        self.seen = Seen()
        self.ports = DriverPorts(self.seen, self.conf_path, driver)
        self.verifier = Verifier(
            self.seen,
            ami,
            driver,
            registry,
            conf_path=self.conf_path,
            timeout=settings.verify_timeout,
            metrics=metrics,
            publish=hooks.publish,
            request=hooks.request,
            recovered=hooks.recovered,
            failing=hooks.failing,
        )
        self.teller = Teller(
            self.seen,
            ami,
            driver,
            ports=self.ports,
            releases=Releases(
                settings.lock_dir, settings.release_quiet, settings.verify_timeout, driver.parked
            ),
            fences=fences,
            reload_when=settings.ami.reload_when,
            metrics=metrics,
            counters=counters,
            forget=self.verifier.forget,
            settle_elsewhere=hooks.settle_elsewhere,
        )
        self.writer = Writer(
            self.seen,
            driver,
            request=hooks.request,
            conf_seen=hooks.conf_seen,
            metrics=metrics,
            counters=counters,
        )
        self._notices = Notices(driver.name)
        self._read_error = ""  # why the file did not parse at the last pass; "" if it did

    @property
    def conf_error(self) -> str:
        """Why the file was not read or not written at the last pass; "" when neither."""
        return self._read_error or self.writer.failed

    async def apply(self) -> bool:
        """One reconcile pass; False when Asterisk could not be brought to the right state."""
        return await self.finish(await self.prepare())

    async def prepare(self) -> Ready | Done:
        """A pass's first half: read the file, plan, stop what must not run. A box with two
        drivers runs this for both before either writes or reloads (a tty one driver's
        device holds must be let go before the other driver may open it). Returns the plan,
        or the pass's outcome when there is nothing more to do."""
        try:
            # Read in a thread: a slow disk (or an NFS /etc) must not hold the event loop.
            conf = await asyncio.to_thread(DongleConf.load, self.conf_path)
        except ConfError as exc:
            if str(exc) != self.conf_error:
                emit(
                    Event.CONF_ERROR,
                    "%s not usable, nothing written: %s",
                    os.path.basename(self.conf_path),
                    exc,
                    driver=self.driver.name,
                )
            self._read_error = str(exc)
            await self._stop_only()
            self._hooks.publish()
            return Done(ok=True)  # retried on the next event; nothing to gain by looping
        self._read_error = ""
        if self._hooks.conf_seen is not None:
            self._hooks.conf_seen(conf.render())
        ok = await self.teller.refresh()
        sections = conf.devices()
        if self.ports.known and foreign_running(sections, self.seen.asterisk or {}):
            # A device runs another section's stick: the driver read another file than dongled
            # last gave it (an admin's edit and reload). A listing without ports (RE) names
            # the ports dongled told it, so its rows would pin each IMEI on the wrong stick.
            self.ports.driver_read_unknown()
            ok = await self.teller.refresh() and ok
        self._registry.learn_from_asterisk(self.seen.asterisk or {})
        self.seen.sections = sections
        p = self._plan(sections)
        if self._hooks.named_elsewhere is not None:
            elsewhere = await self._hooks.named_elsewhere()
            p.unbound[:] = [imei for imei in p.unbound if imei not in elsewhere]
        self.verifier.forget_stale(p)
        for name, foreign in p.mismatched.items():
            emit(
                Event.MISMATCH,
                "device %s runs IMEI %s, not its own %s: stopping it",
                name,
                foreign,
                sections[name].imei or "",
                device=name,
                imei=sections[name].imei,
                driver=self.driver.name,
            )
        return Ready(conf=conf, plan=p, ok=await self.teller.stop(p.stop) and ok)

    async def finish(self, half: Ready | Done) -> bool:
        """A pass's second half: write, tell Asterisk, verify, say what needs saying."""
        if isinstance(half, Done):
            return half.ok
        conf, p, ok = half.conf, half.plan, half.ok
        sections = self.seen.sections
        if not p.port_changes:
            self.writer.failed = ""
        if p.port_changes:
            written = await self.writer.write(conf, p)
            self._hooks.publish()  # the file as written now, not after the release wait
            if not written:
                return True
        if self.ami.connected and ok:
            ok = await self.teller.tell(p)
        expect = self.verifier.needed(p)
        if expect and ok:
            self._hooks.spawn(self.verifier.verify(expect), "verify")
        self._notices.say(p, sections)
        self._hooks.publish()
        return ok or not self.ami.connected

    async def _stop_only(self) -> None:
        """The file cannot be parsed (an admin is editing it?): nothing may be written or
        reloaded, but devices whose stick is gone are still stopped, by the last good parse."""
        if not self.seen.sections or not await self.teller.refresh():
            return
        await self.teller.stop(self._plan(self.seen.sections).stop)

    def _plan(self, sections: dict[str, DeviceSection]) -> Plan:
        return driver_plan(self.driver, sections, self._registry.located(), self.seen.asterisk)
