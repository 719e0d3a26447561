"""One reconcile pass: plan -> stop -> write -> tell Asterisk -> verify.

The daemon runs it for every coalesced batch of events; its parts (stop, write, kick, verify)
are what `dongled scan --apply` does too. The decisions are `reconcile.plan`'s; this module
carries them out in the safe order: devices whose stick is gone or foreign are stopped first,
the file names only verified or parked ports, and nothing re-opens a tty a stopped device may
still be closing (`release`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from dongled.ami import DeviceControl, DeviceEntry
from dongled.atomicfile import replace_atomically
from dongled.devicepoll import device_polls
from dongled.dongleconf import DeviceSection, DongleConf, inherited_message
from dongled.drivers.base import Driver
from dongled.drivers.chan_dongle import CHAN_DONGLE
from dongled.drivers.quectel import interval_from
from dongled.errors import AmiError, ConfChangedError, ConfError
from dongled.eventlog import Event, emit
from dongled.fences import Fences
from dongled.metrics import Metrics
from dongled.parked import PARKED_ALSADEV, PARKED_AUDIO, PARKED_DATA
from dongled.prober import completed
from dongled.reconcile import (
    PARKED_UAC,
    Expect,
    Located,
    Plan,
    check_digit_message,
    foreign_running,
    plan,
)
from dongled.release import Releases, opening
from dongled.settings import Settings
from dongled.sticks import Stick
from dongled.usbreset import RecoveryError

log = logging.getLogger(__name__)


def file_ports(path: str, driver: Driver = CHAN_DONGLE) -> dict[str, tuple[str, str]]:
    """Each section's (data, audio) as the file names them now; {} when it cannot be read."""
    try:
        sections = DongleConf.load(path).devices()
    except ConfError:
        return {}
    return {name: section_ttys(sec, driver) for name, sec in sections.items()}


PARKED_VALUES = frozenset({PARKED_DATA, PARKED_AUDIO, PARKED_ALSADEV})


def cross_file_takes(
    sections: Mapping[str, DeviceSection],
    changes: Mapping[str, tuple[str, str]],
    parked: Collection[str] = PARKED_VALUES,
) -> set[str]:
    """The changed sections whose new tty (or card) a section in another file names now:
    written parked first, then given it, so no reader ever sees it named twice."""
    held: dict[str, set[str]] = {}  # tty or alsadev -> the files naming it now
    for sec in sections.values():
        for value in (sec.data, sec.audio, sec.alsadev):
            if value and value not in parked:
                held.setdefault(value, set()).add(sec.path)
    out = set()
    for name, new in changes.items():
        own = sections.get(name)
        if own is None:
            continue
        if any(held.get(v, set()) - {own.path} for v in new if v and v not in parked):
            out.add(name)
    return out


def file_imeis(path: str) -> set[str]:
    """The imei= values the file names now; none when it cannot be read."""
    try:
        sections = DongleConf.load(path).devices()
    except (ConfError, OSError):
        return set()
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


def section_ttys(sec: DeviceSection, driver: Driver) -> tuple[str, str]:
    """The (data, audio) ttys `driver` opens for `sec`: no audio tty when its voice is an ALSA
    card (an old audio= line there is not read, so it is neither held nor compared)."""
    alsa = driver.uses_uac(sec) or driver.uses_ext_uac(sec)
    return sec.data or "", "" if alsa else sec.audio or ""


class StickSource(Protocol):
    """The identified sticks a pass plans with (the daemon's registry; scan's found sticks)."""

    def located(self) -> list[Located]: ...
    def learn_from_asterisk(self, entries: Mapping[str, DeviceEntry]) -> None: ...
    def stick_with(self, imei: str) -> Stick | None: ...
    def back(self, imei: str) -> float | None: ...


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
class Prepared:
    """A pass between its halves: the file as read, the plan, and whether Asterisk took the
    stops."""

    conf: DongleConf
    plan: Plan
    ok: bool


class PassExecutor:
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
        conf_path: str | None = None,
    ) -> None:
        self.s = settings
        self.driver = driver
        self.conf_path = conf_path or settings.dongle_conf  # the driver's file
        self.ami = ami
        self.registry = registry
        self._hooks = hooks
        self.fences = fences
        self.metrics = metrics
        self.counters = counters
        self.releases = Releases(
            settings.lock_dir, settings.release_quiet, settings.verify_timeout, driver.parked
        )
        self.sections: dict[str, DeviceSection] = {}  # the last good parse
        self.asterisk: dict[str, DeviceEntry] | None = None  # None: AMI unreachable
        # The ports a driver whose listing shows none read at dongled's last reload; None:
        # not known (dongled started; the file may have changed since its last reload).
        self._told: dict[str, tuple[str, str]] | None = None
        self._settings_trusted = True  # see trusts_driver_ports
        self.verified: dict[str, str] = {}  # section -> IMEI Asterisk was seen running
        # Which verification of each device is the current one: a newer pass's (or the
        # ladder's restart's) supersedes an older one, which then neither settles nor reports
        # that device (overlapping pollers raced and each said "did not come up").
        self._verifying: dict[str, object] = {}
        self.conf_error = ""
        # The last write's failure, "" once a write succeeds or none is needed: kept in
        # conf_error across passes, so status never calls a section parked that is not.
        self._write_failed = ""
        self.last_change = ""  # "<device> -> <tty> HH:MM:SS", for people
        self.last_change_at = 0.0  # its Unix time, for comparing (the clock wraps at midnight)
        self._unbound: set[str] = set()
        self._inherited_told: set[str] = set()
        self._check_digit_told: set[str] = set()
        self._ambiguous_told: dict[str, str] = {}
        self._waiting_for: dict[str, Expect] = {}  # what the current verifications wait for

    def _emit(
        self,
        event: Event,
        message: str,
        *args: object,
        device: str | None = None,
        imei: str | None = None,
        data: str | None = None,
        audio: str | None = None,
    ) -> None:
        """A journal event of this driver's (`DONGLED_DRIVER` says whose device it is)."""
        emit(
            event,
            message,
            *args,
            device=device,
            imei=imei,
            data=data,
            audio=audio,
            driver=self.driver.name,
        )

    def driver_read_unknown(self) -> None:
        """The driver may have read another file than dongled last reloaded it with (an
        admin's edit, maybe reloaded): the ports a listing without ports (RE) is taken to run
        are unknown until dongled's next reload. Nor is the driver's own word on them taken
        any more (`quectel show device settings`): a reload updates what it prints before a
        device restarts on the new ports (up to 10 s for RE), so it could pair a device's
        IMEI with ports it does not run yet."""
        self._told = None
        self._settings_trusted = False

    def trusts_driver_ports(self) -> bool:
        """Whether a device's unknown ports may be asked of the driver itself: only until
        dongled sees a sign that the driver read a file it did not give it."""
        return self._told is None and self._settings_trusted

    def ami_failed(self, exc: AmiError) -> None:
        self.metrics.ami_errors.inc()
        log.debug("AMI failure: %s", exc)

    def ami_lost(self) -> None:
        self.asterisk = None

    def ports_named(
        self, sections: Mapping[str, DeviceSection] | None = None
    ) -> dict[str, tuple[str, str]]:
        """Each section's (data, audio) as a driver whose listing shows no ports (RE) runs
        them: what it read at dongled's last reload (a start re-reads nothing). Before that
        they are unknown, ("", ""): the file may have been edited since the driver read it,
        and a module named after the wrong section stays wrong (its ports look right to every
        later pass). Unknown ports make the plan reload, and a module RE holds is not named by
        the listing but probed once its device is stopped. Every section is named (the listing
        cuts names to 12 characters), and every one the driver read at that reload."""
        if sections is not None:
            return {name: section_ttys(sec, self.driver) for name, sec in sections.items()}
        names = self.sections or file_ports(self.conf_path, self.driver)
        return {**dict.fromkeys(names, ("", "")), **(self._told or {})}

    def verify_window(self) -> float:
        """How long a device may take to report its IMEI: a driver that opens devices on its
        [general] interval timer (RE) may leave one that failed to open for a whole interval,
        so it gets that on top (read from its config at each pass: an admin may change it)."""
        if self.driver.connects_at_once:
            return self.s.verify_timeout
        try:
            with open(self.conf_path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError:
            text = ""
        return self.s.verify_timeout + interval_from(text)

    async def _verify_window(self) -> float:
        # The file read in a thread: a slow disk must not hold the event loop.
        if self.driver.connects_at_once:
            return self.s.verify_timeout
        return await asyncio.to_thread(self.verify_window)

    async def listing(self) -> dict[str, DeviceEntry] | None:
        """A fresh device listing (for a port another process holds), or None."""
        if not self.ami.connected:
            return None
        try:
            self.asterisk = await self.ami.show_devices()
        except AmiError:
            return None
        return self.asterisk

    async def apply(self) -> bool:
        """One reconcile pass; False when Asterisk could not be brought to the right state."""
        return await self.finish(await self.prepare())

    async def prepare(self) -> Prepared | bool:
        """A pass's first half: read the file, plan, stop what must not run. A box with two
        drivers runs this for both before either writes or reloads (a tty one driver's
        device holds must be let go before the other driver may open it). Returns the plan,
        or the pass's outcome when there is nothing more to do."""
        try:
            # Read in a thread: a slow disk (or an NFS /etc) must not hold the event loop.
            conf = await asyncio.to_thread(DongleConf.load, self.conf_path)
        except ConfError as exc:
            if str(exc) != self.conf_error:
                self._emit(
                    Event.CONF_ERROR,
                    "%s not usable, nothing written: %s",
                    os.path.basename(self.conf_path),
                    exc,
                )
            self.conf_error = str(exc)
            await self._stop_only()
            self._hooks.publish()
            return True  # retried on the next event; nothing to gain by looping
        self.conf_error = self._write_failed
        if self._hooks.conf_seen is not None:
            self._hooks.conf_seen(conf.render())
        ok = await self.refresh_asterisk()
        sections = conf.devices()
        if self._told is not None and foreign_running(sections, self.asterisk or {}):
            # A device runs another section's stick: the driver read another file than dongled
            # last gave it (an admin's edit and reload). A listing without ports (RE) names
            # the ports dongled told it, so its rows would pin each IMEI on the wrong stick.
            self.driver_read_unknown()
            ok = await self.refresh_asterisk() and ok
        self.registry.learn_from_asterisk(self.asterisk or {})
        self.sections = sections
        p = self._plan(sections)
        if self._hooks.named_elsewhere is not None:
            elsewhere = await self._hooks.named_elsewhere()
            p.unbound[:] = [imei for imei in p.unbound if imei not in elsewhere]
        self._forget_verified(p)
        for name, foreign in p.mismatched.items():
            self._emit(
                Event.MISMATCH,
                "device %s runs IMEI %s, not its own %s: stopping it",
                name,
                foreign,
                sections[name].imei or "",
                device=name,
                imei=sections[name].imei,
            )
        return Prepared(conf=conf, plan=p, ok=await self.stop(p.stop) and ok)

    async def finish(self, prepared: Prepared | bool) -> bool:
        """A pass's second half: write, tell Asterisk, verify, say what needs saying."""
        if isinstance(prepared, bool):
            return prepared
        conf, p, ok = prepared.conf, prepared.plan, prepared.ok
        sections = self.sections
        if not p.port_changes:
            self.conf_error = self._write_failed = ""
        if p.port_changes:
            written = await self.write(conf, p)
            self._hooks.publish()  # the file as written now, not after the release wait
            if not written:
                return True
        if self.ami.connected and ok:
            ok = await self.kick(p)
        # A device this pass told Asterisk nothing new about, and that a verification already
        # waits for, is not waited for twice (passes now follow each other closely).
        told = set(p.port_changes) | set(p.start)
        expect = {
            name: want
            for name, want in p.expect.items()
            if p.reload or name in told or self._waiting_for.get(name) != want
        }
        if expect and ok:
            self._hooks.spawn(self.verify(expect), "verify")
        for name, why in p.ambiguous.items():
            if self._ambiguous_told.get(name) != why:
                self._emit(Event.AMBIGUOUS, "device %s: %s; parked", name, why, device=name)
        self._ambiguous_told = dict(p.ambiguous)
        for name in p.inherited:
            if name not in self._inherited_told:
                self._emit(Event.CONF_ERROR, "%s", inherited_message(sections[name]), device=name)
        self._inherited_told = set(p.inherited)
        for name in p.check_digit:
            if name not in self._check_digit_told:
                self._emit(
                    Event.IMEI_CHECK_DIGIT,
                    "%s",
                    check_digit_message(sections[name]),
                    device=name,
                    imei=sections[name].imei,
                )
        self._check_digit_told = set(p.check_digit)
        for imei in sorted(set(p.unbound) - self._unbound):
            self._emit(
                Event.UNBOUND,
                "stick IMEI %s is plugged in but no section has imei=%s",
                imei,
                imei,
                imei=imei,
            )
        self._unbound = set(p.unbound)
        self._hooks.publish()
        return ok or not self.ami.connected

    async def _stop_only(self) -> None:
        """The file cannot be parsed (an admin is editing it?): nothing may be written or
        reloaded, but devices whose stick is gone are still stopped, by the last good parse."""
        if not self.sections or not await self.refresh_asterisk():
            return
        await self.stop(self._plan(self.sections).stop)

    def _plan(self, sections: dict[str, DeviceSection]) -> Plan:
        return driver_plan(self.driver, sections, self.registry.located(), self.asterisk)

    def _forget_verified(self, p: Plan) -> None:
        for name in list(self.verified):
            entry = (self.asterisk or {}).get(name)
            stale = entry is None or not entry.connected or entry.imei_state != self.verified[name]
            if name in p.port_changes or name in p.stop or (self.asterisk is not None and stale):
                del self.verified[name]

    async def refresh_asterisk(self) -> bool:
        if not self.ami.connected:
            self.asterisk = None
            return False
        try:
            self.asterisk = await self.ami.show_devices()
        except AmiError as exc:
            self.ami_failed(exc)
            log.error("cannot read Asterisk's devices: %s", exc)
            self.asterisk = None
            return False
        self.releases.prune(self.asterisk)
        return True

    async def stop(
        self, devices: list[str], entries: Mapping[str, DeviceEntry] | None = None
    ) -> bool:
        """Stop `devices` (as `entries` list them; default: the pass's listing)."""
        listed = (self.asterisk or {}) if entries is None else entries
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
            self._emit(
                Event.MISMATCH,
                "device %s came up on IMEI %s, not its own %s: stopping it",
                name,
                imei,
                want or "",
                device=name,
                imei=want,
            )
            self.verified.pop(name, None)
        self.driver_read_unknown()
        return await self.stop(list(foreign), entries)

    def _stopped(self, name: str, entry: DeviceEntry | None) -> None:
        """DongleStop answered: remember what the device may still be closing, journal it."""
        self.releases.stopped(name, entry)
        self._emit(Event.STOPPED, "stopped device %s", name, device=name)

    async def restart_device(self, name: str) -> None:
        """DongleStop, wait until chan_dongle has let go of the ttys, DongleStart: never
        DongleRestart, which re-opens the ttys while the device may still be closing."""
        entry = (await self.ami.show_devices(name)).get(name)
        await self.ami.stop(name)
        self._stopped(name, entry)
        sec = self.sections.get(name)
        why = await self._settle(Plan(start=[name]))
        if why is not None:
            raise RecoveryError(why)
        if sec is None or sec.data == self.driver.parked[0]:
            return  # its stick left meanwhile: stays stopped, parked
        await self.ami.start(name)
        self._emit(Event.STARTED, "started device %s", name, device=name)

    async def _last_look(self, p: Plan) -> str | None:
        """Right before a reload or start: wait for the release of what was stopped, then
        list once more. A device that came up on another section's stick since the pass
        listed (an admin's reload, the driver's own retry) is stopped, and its release waited
        for too: it may hold a tty the reload re-opens. None when done, else why not."""
        for _ in range(3):
            why = await self._settle(p)
            if why is not None:
                return why
            entries = await self.ami.show_devices()
            foreign = foreign_running(self.sections, entries)
            if not foreign:
                return None
            await self.stop_foreign(foreign, entries, self.sections)
        return "devices kept coming up on other sections' sticks"

    async def _settle(self, p: Plan) -> str | None:
        """Wait until no device stopped on a tty `p` would open still holds it: this
        driver's, then (one box, two drivers) the other's. None when done, else why not."""
        ttys = opening(self.sections, p, self.driver.parked)
        why = await self.releases.settle(self.ami, ttys)
        if why is None and self._hooks.settle_elsewhere is not None:
            why = await self._hooks.settle_elsewhere(ttys)
        return why

    async def write(self, conf: DongleConf, p: Plan) -> bool:
        """Write the plan's port changes. The files of an include tree are each replaced
        atomically, one after the other, not as a set: a reader between two renames sees
        some files new and others old. So a section that takes a tty another file's section
        names now is first written parked (with the rest of the changes), and given its tty
        in a second round, once no file names that tty any more: a reader in between sees no
        tty named twice, at worst that section parked for a moment."""
        try:
            read = conf.render()
            written, files = conf.with_ports(p.port_changes, alsa=p.alsa, data_only=p.data_only)
            later = cross_file_takes(self.sections, p.port_changes, PARKED_VALUES)
            rounds: list[dict[str, bytes]] = [files]
            if later:
                interim = {
                    n: ((PARKED_UAC if n in p.alsa else self.driver.parked) if n in later else v)
                    for n, v in p.port_changes.items()
                }
                _, first = conf.with_ports(interim, alsa=p.alsa, data_only=p.data_only)
                rounds = [first, files]
            on_disk = dict(read)
            for batch in rounds:
                for path, content in batch.items():
                    if content == on_disk[path]:
                        continue
                    # In a thread: two fsyncs and a backup link, seconds on a busy disk, must
                    # not hold the event loop (nor the watchdog's pings, nor other sticks').
                    await asyncio.to_thread(
                        replace_atomically, path, content, expected=on_disk[path]
                    )
                    on_disk[path] = content
                    if self._hooks.conf_seen is not None:  # dongled's own write: no pass for it
                        self._hooks.conf_seen(on_disk)
        except ConfChangedError as exc:
            # Someone saved the file while we asked Asterisk: their edit wins, and the plan
            # is made again from what they wrote.
            log.warning("%s", exc)
            self._hooks.request(False)
            return False
        except (ConfError, ValueError) as exc:
            self._emit(Event.CONF_ERROR, "not written: %s", exc)
            self.conf_error = self._write_failed = str(exc)
            return False
        self.conf_error = self._write_failed = ""
        self.counters["conf_writes"] += 1
        before, self.sections = self.sections, written.devices()
        self._emit(
            Event.CONF_WRITTEN,
            "wrote %s (%d section(s) changed; previous version kept as .dongled-bak)",
            ", ".join(sorted(files)),
            len(p.port_changes),
        )
        self.metrics.conf_writes.inc()
        now = time.strftime("%H:%M:%S")
        for name, (data, audio) in p.port_changes.items():
            sec = before[name]
            if data == self.driver.parked[0]:  # parked: both ports (or data and the card)
                self._emit(
                    Event.PARKED,
                    "device %s: its stick is absent, parked on %s",
                    name,
                    data,
                    device=name,
                    imei=sec.imei,
                    data=data,
                    audio=audio,
                )
            elif name in p.data_only:  # its voice is an external card, left as it is
                self._emit(
                    Event.RELINKED,
                    "device %s: data %s -> %s (its external card, alsadev %s, left as it is)",
                    name,
                    sec.data,
                    data,
                    sec.alsadev or "unset",
                    device=name,
                    imei=sec.imei,
                    data=data,
                    audio=audio,
                )
                self.last_change = f"{name} -> {data.rsplit('/', 1)[-1]} {now}"
                self.last_change_at = time.time()
            else:
                usb_audio = name in p.alsa  # then the second value is alsadev=
                self._emit(
                    Event.RELINKED,
                    "device %s: data %s -> %s, %s %s -> %s",
                    name,
                    sec.data,
                    data,
                    "alsadev" if usb_audio else "audio",
                    sec.alsadev if usb_audio else sec.audio,
                    audio,
                    device=name,
                    imei=sec.imei,
                    data=data,
                    audio=audio,
                )
                self.last_change = f"{name} -> {data.rsplit('/', 1)[-1]} {now}"
                self.last_change_at = time.time()
        return True

    async def kick(self, p: Plan) -> bool:
        try:
            if p.reload or p.start:
                why = await self._last_look(p)
                if why is not None:
                    log.warning("Asterisk not told yet: %s", why)
                    return False
                # Every device chan_dongle may now (re)open names a verified or parked port.
                self.fences.lift_all()
            if p.reload:
                await self.ami.reload(self.s.ami.reload_when)
                self._told = self.ports_named(self.sections)
                self.counters["reloads"] += 1
                self.metrics.reloads.inc()
                self._emit(
                    Event.RELOAD,
                    "asked Asterisk to reload %s (%s)",
                    self.driver.name,
                    self.s.ami.reload_when,
                )
            for name in p.start:
                await self.ami.start(name)
                self._emit(Event.STARTED, "started device %s", name, device=name)
        except AmiError as exc:
            self.ami_failed(exc)
            log.error("Asterisk did not take the change yet: %s", exc)
            return False
        return True

    def _settled(self, expect: dict[str, Expect], entries: dict[str, DeviceEntry]) -> bool:
        """Take out of `expect` each device that reports an IMEI: verified, or wrong and
        handed to the next pass. True if any was taken out."""
        changed = False
        for name, want in list(expect.items()):
            entry = entries.get(name)
            if entry is None or not entry.imei_state:
                continue
            del expect[name]
            changed = True
            if want.matches(entry.imei_state, entry.imsi_state) and entry.connected:
                # Said once per return of the device: a pass that finds it still running on
                # its own stick (a reload for another device re-verifies it) says nothing.
                known = self.verified.get(name) == want.imei
                self.verified[name] = want.imei
                stick = self.registry.stick_with(want.imei)
                if stick is not None:
                    if stick.identity is not None:  # what the lean probe left out
                        self._complete(stick, entry)
                    self._hooks.recovered(stick.usb_port)
                gone = self.registry.back(want.imei)
                if gone is not None:
                    self.metrics.recovery_seconds.observe(gone)
                if known:
                    continue
                self._emit(
                    Event.VERIFIED,
                    "device %s runs IMEI %s on %s",
                    name,
                    want.imei,
                    entry.data_state,
                    device=name,
                    imei=want.imei,
                    data=entry.data_state,
                    audio=entry.audio_state,
                )
            else:
                self._hooks.request(True)  # the next pass stops and parks it
        return changed

    def _complete(self, stick: Stick, entry: DeviceEntry) -> None:
        """Fill in what the daemon's probe leaves out (model, voice) from the listing of the
        device that runs the stick; a voice Asterisk reports missing is said once, as the
        probe of a SIM-less stick says it."""
        before = stick.identity
        assert before is not None
        after = stick.identity = completed(before, entry)
        if before.voice is None and after.voice is False:
            self._emit(
                Event.STICK_LIMITED,
                "stick IMEI %s: no voice (%s reports Voice: No): calls cannot work on it; it "
                "needs a voice-enabled firmware",
                after.imei,
                self.driver.name,
                imei=after.imei,
            )

    async def verify(self, expect: dict[str, Expect]) -> None:
        """Wait until each device in `expect` runs its IMEI; journal each outcome once. This
        verification becomes the current one of its devices: an older one drops them."""
        me, mine = object(), dict(expect)
        for name, want in mine.items():
            self._verifying[name] = me
            self._waiting_for[name] = want

        def drop_superseded() -> None:
            for name in list(expect):
                if self._verifying.get(name) is not me:
                    del expect[name]

        try:
            window = await self._verify_window()
            drop_superseded()
            async for poll in device_polls(self.ami, expect, window):
                drop_superseded()
                entries = poll.entries
                self.asterisk = entries if poll.whole else {**(self.asterisk or {}), **entries}
                if self._settled(expect, entries):
                    self._hooks.publish()
        except AmiError:
            return  # reconnect brings a full pass, which verifies again
        finally:
            drop_superseded()
            for name in mine:
                if self._verifying.get(name) is me:
                    del self._verifying[name]
                    self._waiting_for.pop(name, None)
        for name, want in expect.items():
            self._emit(
                Event.NOT_VERIFIED,
                "device %s did not come up with IMEI %s within %g s",
                name,
                want.imei,
                window,
                device=name,
                imei=want.imei,
            )
            stick = self.registry.stick_with(want.imei)
            if stick is not None:
                reason = f"device {name} did not come up within {window:g} s"
                self._hooks.failing(stick.usb_port, reason, name, stick.usb_device)
        self._hooks.publish()
