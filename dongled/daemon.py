"""Wiring: udev events -> probes -> one coalesced reconcile pass -> file -> AMI -> verify."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable

from dongled import models, notify, statusfile
from dongled.ami import AmiClient, DeviceEntry
from dongled.atomicfile import replace_atomically
from dongled.devicepoll import device_polls
from dongled.dongleconf import DeviceSection, DongleConf
from dongled.errors import (
    AmiAuthError,
    AmiError,
    ConfChangedError,
    ConfError,
    PortBusyError,
    ProbeError,
    ProbeTimeoutError,
)
from dongled.eventlog import Event, emit
from dongled.fences import Fences
from dongled.fleet import FleetHealth
from dongled.hotplug import TtyEvent, TtyInfo, UdevWatcher, UsbEvent, UsbInfo
from dongled.identity import Identity, limitations, valid_imei, valid_imsi
from dongled.metrics import Metrics
from dongled.portlock import holder
from dongled.probe import ProbeTimeouts, identify_port
from dongled.reconcile import PARKED, Expect, Located, Plan, plan
from dongled.recovery import Recovery
from dongled.release import Releases, opening
from dongled.settings import Settings
from dongled.sticks import Stick, StickState
from dongled.usbreset import RecoveryError

log = logging.getLogger(__name__)

STORM_MEMORY = 30.0  # a stick gone this recently is expected back with the others
REMOVAL_QUIET = 0.05  # sticks of one hub drop within milliseconds: park them in one write
REMOVAL_MAX_WAIT = 0.5  # ...but never wait longer than this to park and stop
RETRY_BASE, RETRY_MAX = 2.0, 60.0
BOOT_RETRY = 1.0  # first re-probe of a new stick that is still silent (it may be booting)


def _imsi(value: str | None) -> str | None:
    """chan_dongle's IMSIState, kept only when it is a plausible IMSI."""
    return value if value and valid_imsi(value) else None


class Daemon:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.sticks: dict[str, Stick] = {}  # usb_device sysfs path -> stick
        self._by_syspath: dict[str, str] = {}  # tty sys_path -> usb_device
        self._gone_at: dict[str, float] = {}  # IMEI -> when its stick vanished
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._dirty = asyncio.Event()
        self._wake = asyncio.Event()
        self._urgent = False
        self._pending_since: float | None = None
        self._last_removal = 0.0
        self.fences = Fences(settings.lock_dir)
        self.releases = Releases(settings.lock_dir, settings.release_quiet, settings.verify_timeout)
        self._closed = False
        self.sections: dict[str, DeviceSection] = {}  # the last good parse
        self._unbound: set[str] = set()
        self._inherited_told: set[str] = set()
        self._ambiguous_told: dict[str, str] = {}
        self.ami = AmiClient(settings.ami, on_lost=self._on_ami_lost)
        self._ami_lost = asyncio.Event()
        self.asterisk: dict[str, DeviceEntry] | None = None
        self.fleet = FleetHealth(settings.switch_limit, self._switch_stuck, self.publish)
        self._udev = UdevWatcher(self._on_tty_event, self.fleet.on_usb_event)
        self.recovery = Recovery(self)
        self._timeouts = ProbeTimeouts(
            first=min(1.0, settings.at_timeout), command=settings.at_timeout
        )
        self.counters = {"conf_writes": 0, "reloads": 0, "probes": 0}
        self.metrics = Metrics()
        self.metrics.textfile = settings.metrics.textfile
        self.last_change = ""
        self.conf_error = ""
        self.ready = asyncio.Event()
        self.verified: dict[str, str] = {}  # section -> IMEI Asterisk was seen running

    # ---- lifecycle -------------------------------------------------------------------

    def spawn(self, coro: Awaitable[None], name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("internal task %s failed", task.get_name(), exc_info=task.exception())

    async def run(self, stop: asyncio.Event) -> None:
        if self.s.metrics.listen:
            self.metrics.serve(self.s.metrics.listen)
        present = self._udev.start()
        for usb in self._udev.usb_devices():
            self.fleet.on_usb_event(UsbEvent(action="add", sys_path=usb.sys_path, info=usb))
        await self._try_ami_once()  # learn which ports chan_dongle holds before probing
        for info in present:
            self._add_port(info)
        self.spawn(self._ami_loop(), "ami")
        self.spawn(self._reconcile_loop(), "reconcile")
        interval = notify.watchdog_interval()
        if interval is not None:
            self.spawn(self._watchdog(interval), "watchdog")
        self._request(urgent=False)
        try:
            await stop.wait()
        finally:
            await self.close()

    async def _watchdog(self, interval: float) -> None:
        # Pinged from the event loop itself: a hung loop stops the pings and systemd restarts us.
        while True:
            notify.watchdog()
            await asyncio.sleep(interval)

    async def close(self) -> None:
        self._closed = True
        self._udev.stop()
        self.fences.close()
        self.fleet.close()
        self.recovery.close()
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.ami.close()
        self.metrics.close()

    # ---- udev ------------------------------------------------------------------------

    def _on_tty_event(self, event: TtyEvent) -> None:
        if event.action == "remove":
            usb = self._by_syspath.get(event.sys_path)
            if usb is not None:
                self._remove_stick(usb)
        elif event.info is not None:
            self._add_port(event.info)

    def _add_port(self, info: TtyInfo) -> None:
        stick = self.sticks.get(info.usb_device)
        if stick is None:
            stick = Stick(
                usb_device=info.usb_device,
                usb_port=info.usb_port,
                vid=info.vid,
                pid=info.pid,
                appeared=time.monotonic(),
            )
            self.sticks[info.usb_device] = stick
            self.fleet.stick_added(info.usb_port, [st.usb_port for st in self.sticks.values()])
            emit(
                Event.APPEARED,
                "stick appeared at USB %s (%s:%s)",
                info.usb_port,
                info.vid,
                info.pid,
                usb_port=info.usb_port,
            )
        if not stick.add(info):
            return
        self._by_syspath[info.sys_path] = info.usb_device
        stick.forget_identity()
        stick.state = StickState.SETTLING
        stick.last_change = time.monotonic()
        self._wake.set()
        interfaces = frozenset(stick.ports)
        delay = 0.0 if models.complete(stick.vid, stick.pid, interfaces) else self.s.settle_time
        self._schedule_probe(stick, delay)

    def _schedule_probe(self, stick: Stick, delay: float) -> None:
        key = stick.usb_device
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.pop(key, None)
            if self.sticks.get(key) is stick:
                self.spawn(self._probe(stick), f"probe {stick.usb_port}")

        self._timers[key] = loop.call_later(delay, fire)

    def _remove_stick(self, usb_device: str) -> None:
        stick = self.sticks.pop(usb_device, None)
        if stick is None:
            return
        for path in stick.sys_paths:
            self._by_syspath.pop(path, None)
        timer = self._timers.pop(usb_device, None)
        if timer is not None:
            timer.cancel()
        stick.state = StickState.FAILED  # a running probe sees it is no longer current
        for port in stick.ports.values():
            self.fences.fence(port)
        self._last_removal = time.monotonic()
        imei = stick.identity.imei if stick.identity is not None else None
        self.fleet.dropped(stick.usb_port)
        emit(
            Event.GONE,
            "stick at USB %s is gone",
            stick.usb_port,
            imei=imei,
            data=stick.data,
            audio=stick.audio,
            usb_port=stick.usb_port,
        )
        if imei is not None:
            self._gone_at[imei] = time.monotonic()
            self.metrics.reenumerations.inc()
            self._request(urgent=True)
        self._wake.set()

    def _switch_stuck(self, info: UsbInfo) -> None:
        reason = f"still in storage mode after {self.s.switch_limit:g} s"
        self.recovery.failing(info.usb_port, reason, None, info.sys_path)

    def stick_with(self, imei: str) -> Stick | None:
        for stick in self.sticks.values():
            if stick.identity is not None and stick.identity.imei == imei:
                return stick
        return None

    # ---- identification --------------------------------------------------------------

    def _asterisk_holds(self, entry: DeviceEntry) -> bool:
        """chan_dongle runs a stick on this entry's port right now: it reports an IMEI and a
        live process other than us holds the port's lock. (A kernel never gives a port that is
        still open to a new stick, so such a port cannot carry a different stick.)"""
        if not (entry.connected and valid_imei(entry.imei_state) and entry.data_state):
            return False
        owner = holder(self.s.lock_dir, entry.data_state)
        return owner is not None and owner != os.getpid()

    async def _held_by_asterisk(self, stick: Stick) -> Located | None:
        """Asked afresh whenever a port is locked: a snapshot from before the stick appeared
        would describe whatever stick had those numbers before."""
        if not self.ami.connected:
            return None
        try:
            self.asterisk = await self.ami.show_devices()
        except AmiError:
            return None
        for entry in self.asterisk.values():
            if entry.data_state in stick.ports.values() and self._asterisk_holds(entry):
                return Located(
                    imei=entry.imei_state,
                    imsi=entry.imsi_state or None,
                    data=entry.data_state,
                    audio=entry.audio_state,
                )
        return None

    async def _probe(self, stick: Stick) -> None:
        if stick.state is not StickState.BOOTING:  # a booting stick's re-probe holds no pass
            stick.state = StickState.PROBING
        layouts = models.candidates(stick.vid, stick.pid, frozenset(stick.ports))
        if not layouts and time.monotonic() - stick.appeared < self.s.batch_max_wait:
            # Ports still arriving (a known model needs its data and audio ports): wait,
            # never probe half a stick, and do not count it as a failure.
            stick.state = StickState.SETTLING
            self._schedule_probe(stick, self.s.settle_time)
            return
        error = "no port answered AT"
        hung = True  # until a port says otherwise: ports there, nobody answering
        for layout in layouts:
            data, audio = stick.ports[layout.data], stick.ports[layout.audio]
            self.counters["probes"] += 1
            try:
                async with asyncio.timeout(self.s.probe_timeout):
                    ident = await identify_port(data, self.s.lock_dir, self._timeouts)
            except PortBusyError as exc:
                hung = False
                held = await self._held_by_asterisk(stick)
                if held is not None and self.sticks.get(stick.usb_device) is stick:
                    ident = Identity(imei=held.imei, imsi=_imsi(held.imsi))
                    self._identified(stick, ident, held.data, held.audio, "asterisk")
                    return
                error = str(exc)
                stick.state = StickState.BUSY
                break
            except ProbeTimeoutError as exc:
                error = str(exc)
                continue  # a silent port: try the next layout
            except TimeoutError:
                error = f"{data}: whole probe took over {self.s.probe_timeout:g} s"
                break
            except ProbeError as exc:
                error = str(exc)
                hung = False  # it answered, but not well: a reset would not help
                stick.answered = True
                break
            if self.sticks.get(stick.usb_device) is not stick:
                return  # unplugged while we talked to it
            self._identified(stick, ident, data, audio, "probe")
            return
        if self.sticks.get(stick.usb_device) is not stick:
            return
        stick.failures += 1
        age = time.monotonic() - stick.appeared
        if hung and layouts and not stick.answered and age < self.s.boot_grace:
            self._booting(stick, error, age)
            return
        if stick.state is not StickState.BUSY:
            stick.state = StickState.FAILED
        stick.error = error
        self.metrics.probe_failures.inc()
        emit(
            Event.PROBE_FAILED,
            "cannot identify stick at USB %s: %s",
            stick.usb_port,
            error,
            usb_port=stick.usb_port,
        )
        self._schedule_probe(stick, min(RETRY_MAX, RETRY_BASE * 2 ** (stick.failures - 1)))
        if hung and layouts:
            self.recovery.failing(stick.usb_port, error, None, stick.usb_device)
        self._wake.set()

    def _booting(self, stick: Stick, error: str, age: float) -> None:
        """A stick whose ttys appeared recently and that has not answered yet is booting, not
        hung: real sticks are silent for seconds after enumeration (longer after a mode
        switch), and resetting one restarts its boot. Probed again with backoff until
        `boot_grace`; it holds no other stick back (BOOTING is not in flight)."""
        left = self.s.boot_grace - age
        delay = min(left, BOOT_RETRY * 2 ** (stick.failures - 1))
        stick.state = StickState.BOOTING
        stick.error = f"not answering yet, {age:.1f} s after it appeared ({error})"
        log.info(
            "stick at USB %s not answering yet %.1f s after it appeared (booting?): %s; "
            "probing again in %.1f s",
            stick.usb_port,
            age,
            error,
            delay,
        )
        self._schedule_probe(stick, delay)
        self._wake.set()

    def _identified(
        self, stick: Stick, ident: Identity, data: str, audio: str, source: str
    ) -> None:
        stick.identity, stick.data, stick.audio, stick.source = ident, data, audio, source
        stick.state = StickState.IDENTIFIED
        stick.answered = True
        stick.error = ""
        stick.failures = 0
        emit(
            Event.IDENTIFIED,
            "stick at USB %s is IMEI %s (%s %s, by %s) on %s / %s",
            stick.usb_port,
            ident.imei,
            ident.manufacturer or "?",
            ident.model or "?",
            source,
            data,
            audio,
            imei=ident.imei,
            data=data,
            audio=audio,
            usb_port=stick.usb_port,
        )
        for what in limitations(ident, source):
            emit(
                Event.STICK_LIMITED,
                "stick IMEI %s: %s",
                ident.imei,
                what,
                imei=ident.imei,
                usb_port=stick.usb_port,
            )
        self._request(urgent=False)
        self._wake.set()

    def _learn_from_asterisk(self) -> None:
        """chan_dongle's IMEIState on the port it holds is the freshest word on that stick."""
        for entry in (self.asterisk or {}).values():
            if not self._asterisk_holds(entry):
                continue
            for stick in self.sticks.values():
                if entry.data_state not in stick.ports.values():
                    continue
                if stick.identity is None or stick.identity.imei != entry.imei_state:
                    self._identified(
                        stick,
                        Identity(imei=entry.imei_state, imsi=_imsi(entry.imsi_state)),
                        entry.data_state,
                        entry.audio_state,
                        "asterisk",
                    )

    def located(self) -> list[Located]:
        return [
            Located(imei=s.identity.imei, imsi=s.identity.imsi, data=s.data, audio=s.audio)
            for s in self.sticks.values()
            if s.identity is not None and s.data and s.audio
        ]

    # ---- coalescing ------------------------------------------------------------------

    def _request(self, *, urgent: bool) -> None:
        if self._pending_since is None:
            self._pending_since = time.monotonic()
        self._urgent = self._urgent or urgent
        self._dirty.set()
        self._wake.set()

    def _awaited(self) -> bool:
        """Work still expected soon: sticks settling/probing, or recently gone sticks not back."""
        if any(s.in_flight for s in self.sticks.values()):
            return True
        now = time.monotonic()
        back = {s.identity.imei for s in self.sticks.values() if s.identity is not None}
        return any(now - t < STORM_MEMORY and imei not in back for imei, t in self._gone_at.items())

    async def _reconcile_loop(self) -> None:
        retry = 0.5
        while True:
            await self._dirty.wait()
            if not self._urgent:
                await asyncio.sleep(0)
                deadline = (self._pending_since or time.monotonic()) + self.s.batch_max_wait
                while not self._urgent and self._awaited():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), left)
            else:
                give_up = time.monotonic() + REMOVAL_MAX_WAIT
                while (quiet := self._last_removal + REMOVAL_QUIET - time.monotonic()) > 0:
                    await asyncio.sleep(min(quiet, max(0.0, give_up - time.monotonic())))
                    if time.monotonic() >= give_up:
                        break
                self.fleet.summarize_drops()
            self._dirty.clear()
            self._urgent = False
            self._pending_since = None
            try:
                ok = await self.apply()
            except Exception:
                # A bug must not end the reconcile loop: the daemon would look alive and do
                # nothing. Logged with its traceback, retried with backoff.
                log.exception("reconcile pass failed; retrying")
                ok = False
            if not self.ready.is_set():
                self.ready.set()
                notify.ready(self.summary())
            if ok:
                retry = 0.5
            else:  # Asterisk refused or failed: try again later, capped
                await asyncio.sleep(retry)
                retry = min(retry * 2, self.s.ami.backoff_max)
                self._request(urgent=False)

    # ---- the pass --------------------------------------------------------------------

    async def apply(self) -> bool:
        """One reconcile pass; False when Asterisk could not be brought to the right state."""
        try:
            conf = DongleConf.load(self.s.dongle_conf)
        except ConfError as exc:
            if str(exc) != self.conf_error:
                emit(Event.CONF_ERROR, "dongle.conf not usable, nothing written: %s", exc)
            self.conf_error = str(exc)
            await self._stop_only()
            self.publish()
            return True  # retried on the next event; nothing to gain by looping
        self.conf_error = ""
        ok = await self._refresh_asterisk()
        self._learn_from_asterisk()
        sections = self.sections = conf.devices()
        p = plan(sections, self.located(), self.asterisk)
        self._forget_verified(p)
        for name, foreign in p.mismatched.items():
            emit(
                Event.MISMATCH,
                "device %s runs IMEI %s, not its own %s: stopping it",
                name,
                foreign,
                sections[name].imei or "",
                device=name,
                imei=sections[name].imei,
            )
        ok = await self._stop(p.stop) and ok
        if p.port_changes and not self._write(conf, p):
            self.publish()
            return True
        if self.ami.connected and ok:
            ok = await self._kick(p)
        if p.expect and ok:
            self.spawn(self.verify(dict(p.expect)), "verify")
        for name, why in p.ambiguous.items():
            if self._ambiguous_told.get(name) != why:
                emit(Event.AMBIGUOUS, "device %s: %s; parked", name, why, device=name)
        self._ambiguous_told = dict(p.ambiguous)
        for name in p.inherited:
            if name not in self._inherited_told:
                emit(
                    Event.CONF_ERROR,
                    "section %s takes data=/audio= from a template: dongled will not edit it; "
                    "move data= and audio= into [%s] itself",
                    name,
                    name,
                    device=name,
                )
        self._inherited_told = set(p.inherited)
        for imei in sorted(set(p.unbound) - self._unbound):
            emit(
                Event.UNBOUND,
                "stick IMEI %s is plugged in but no section has imei=%s",
                imei,
                imei,
                imei=imei,
            )
        self._unbound = set(p.unbound)
        self.publish()
        return ok or not self.ami.connected

    async def _stop_only(self) -> None:
        """The file cannot be parsed (an admin is editing it?): nothing may be written or
        reloaded, but devices whose stick is gone are still stopped, by the last good parse."""
        if not self.sections or not await self._refresh_asterisk():
            return
        p = plan(self.sections, self.located(), self.asterisk)
        await self._stop(p.stop)

    def _forget_verified(self, p: Plan) -> None:
        for name in list(self.verified):
            entry = (self.asterisk or {}).get(name)
            stale = entry is None or not entry.connected or entry.imei_state != self.verified[name]
            if name in p.port_changes or name in p.stop or (self.asterisk is not None and stale):
                del self.verified[name]

    async def _refresh_asterisk(self) -> bool:
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

    async def _stop(self, devices: list[str]) -> bool:
        ok = True
        for name in devices:
            try:
                await self.ami.stop(name)
            except AmiError as exc:
                self.ami_failed(exc)
                log.error("DongleStop %s failed: %s", name, exc)
                ok = False
                continue
            self.releases.stopped(name, (self.asterisk or {}).get(name))
            emit(Event.STOPPED, "stopped device %s", name, device=name)
        return ok

    async def restart_device(self, name: str) -> None:
        """DongleStop, wait until chan_dongle has let go of the ttys, DongleStart: never
        DongleRestart, which re-opens the ttys while the device may still be closing."""
        entry = (await self.ami.show_devices(name)).get(name)
        await self.ami.stop(name)
        self.releases.stopped(name, entry)
        emit(Event.STOPPED, "stopped device %s", name, device=name)
        sec = self.sections.get(name)
        why = await self.releases.settle(self.ami, opening(self.sections, Plan(start=[name])))
        if why is not None:
            raise RecoveryError(why)
        if sec is None or (sec.data, sec.audio) == PARKED:
            return  # its stick left meanwhile: stays stopped, parked
        await self.ami.start(name)
        emit(Event.STARTED, "started device %s", name, device=name)

    def _write(self, conf: DongleConf, p: Plan) -> bool:
        try:
            read = conf.render()
            written, files = conf.with_ports(p.port_changes)
            for path, content in files.items():
                replace_atomically(path, content, expected=read[path])
        except ConfChangedError as exc:
            # Someone saved the file while we asked Asterisk: their edit wins, and the plan
            # is made again from what they wrote.
            log.warning("%s", exc)
            self._request(urgent=False)
            return False
        except (ConfError, ValueError) as exc:
            emit(Event.CONF_ERROR, "not written: %s", exc)
            self.conf_error = str(exc)
            return False
        self.counters["conf_writes"] += 1
        before, self.sections = self.sections, written.devices()
        emit(
            Event.CONF_WRITTEN,
            "wrote %s (%d section(s) changed; previous version kept as .dongled-bak)",
            ", ".join(sorted(files)),
            len(p.port_changes),
        )
        self.metrics.conf_writes.inc()
        now = time.strftime("%H:%M:%S")
        for name, (data, audio) in p.port_changes.items():
            sec = before[name]
            if (data, audio) == PARKED:
                emit(
                    Event.PARKED,
                    "device %s: its stick is absent, parked on %s",
                    name,
                    data,
                    device=name,
                    imei=sec.imei,
                    data=data,
                    audio=audio,
                )
            else:
                emit(
                    Event.RELINKED,
                    "device %s: data %s -> %s, audio %s -> %s",
                    name,
                    sec.data,
                    data,
                    sec.audio,
                    audio,
                    device=name,
                    imei=sec.imei,
                    data=data,
                    audio=audio,
                )
                self.last_change = f"{name} -> {data.rsplit('/', 1)[-1]} {now}"
        return True

    async def _kick(self, p: Plan) -> bool:
        try:
            if p.reload or p.start:
                why = await self.releases.settle(self.ami, opening(self.sections, p))
                if why is not None:
                    log.warning("Asterisk not told yet: %s", why)
                    return False
                # Every device chan_dongle may now (re)open names a verified or parked port.
                self.fences.lift_all()
            if p.reload:
                await self.ami.reload(self.s.ami.reload_when)
                self.counters["reloads"] += 1
                self.metrics.reloads.inc()
                emit(
                    Event.RELOAD,
                    "asked Asterisk to reload chan_dongle (%s)",
                    self.s.ami.reload_when,
                )
            for name in p.start:
                await self.ami.start(name)
                emit(Event.STARTED, "started device %s", name, device=name)
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
                self.verified[name] = want.imei
                stick = self.stick_with(want.imei)
                if stick is not None:
                    self.recovery.recovered(stick.usb_port)
                gone = self._gone_at.pop(want.imei, None)
                if gone is not None:
                    self.metrics.recovery_seconds.observe(time.monotonic() - gone)
                emit(
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
                self._request(urgent=True)  # the next pass stops and parks it
        return changed

    async def verify(self, expect: dict[str, Expect]) -> None:
        try:
            async for poll in device_polls(self.ami, expect, self.s.verify_timeout):
                entries = poll.entries
                self.asterisk = entries if poll.whole else {**(self.asterisk or {}), **entries}
                if self._settled(expect, entries):
                    self.publish()
        except AmiError:
            return  # reconnect brings a full pass, which verifies again
        for name, want in expect.items():
            emit(
                Event.NOT_VERIFIED,
                "device %s did not come up with IMEI %s within %g s",
                name,
                want.imei,
                self.s.verify_timeout,
                device=name,
                imei=want.imei,
            )
            stick = self.stick_with(want.imei)
            if stick is not None:
                reason = f"device {name} did not come up within {self.s.verify_timeout:g} s"
                self.recovery.failing(stick.usb_port, reason, name, stick.usb_device)
        self.publish()

    # ---- Asterisk connection ---------------------------------------------------------

    def ami_failed(self, exc: AmiError) -> None:
        self.metrics.ami_errors.inc()
        log.debug("AMI failure: %s", exc)

    def _on_ami_lost(self) -> None:
        self.asterisk = None
        self._ami_lost.set()

    async def _try_ami_once(self) -> bool:
        try:
            await self.ami.connect()
        except AmiError as exc:
            self.ami_failed(exc)
            emit(Event.AMI_DOWN, "Asterisk AMI: %s", exc)
            return False
        emit(Event.AMI_UP, "connected to Asterisk AMI")
        await self._refresh_asterisk()
        return True

    async def _ami_loop(self) -> None:
        backoff = 0.5
        while True:
            if self.ami.connected:
                self._ami_lost.clear()
                await self._ami_lost.wait()
                emit(Event.AMI_DOWN, "lost the connection to Asterisk AMI; reconnecting")
                backoff = 0.5
            await asyncio.sleep(backoff)
            try:
                await self.ami.connect()
            except AmiAuthError as exc:
                self.ami_failed(exc)
                emit(Event.AMI_DOWN, "Asterisk AMI: %s", exc)
                backoff = min(backoff * 2, self.s.ami.backoff_max)
                continue
            except AmiError as exc:
                self.ami_failed(exc)
                log.debug("AMI reconnect failed: %s", exc)
                backoff = min(backoff * 2, self.s.ami.backoff_max)
                continue
            emit(Event.AMI_UP, "reconnected to Asterisk AMI")
            backoff = 0.5
            self._request(urgent=True)  # bring Asterisk to the right state now

    # ---- status ----------------------------------------------------------------------

    def summary(self) -> str:
        total = len(self.sticks)
        last = f"; last: {self.last_change}" if self.last_change else ""
        return f"{total} sticks, {len(self.verified)} on their devices{last}"

    def publish(self) -> None:
        statusfile.publish(self)
        notify.status(self.summary())
        m = self.metrics
        m.sticks_present.set(len(self.sticks))
        m.sticks_identified.set(sum(1 for s in self.sticks.values() if s.identity is not None))
        m.devices_verified.set(len(self.verified))
        m.devices(self.asterisk or {})
        m.flush()


async def run(
    settings: Settings, stop: asyncio.Event, started: Callable[[Daemon], None] | None = None
) -> None:
    daemon = Daemon(settings)
    if started is not None:
        started(daemon)
    await daemon.run(stop)
