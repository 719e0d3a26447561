"""Wiring: builds the rooms of the pipeline, connects them and owns the event loop's tasks.

    udev (hotplug) -> sticks (registry, prober) -> when (coalescer) -> pass (passexec:
    plan -> stop -> write -> Asterisk -> verify) -> status (statusfile, notify, metrics)

with the AMI connection kept by `amisupervisor` and hung sticks handled by `recovery`. An
admin's edit of the drivers' files asks for a pass too (`confwatch`), and a device that comes
up on a foreign IMEI between passes is stopped (`bindwatch`, under the pass lock). Each
room gets what it needs passed in; none imports this module (only the CLI does).

A box can run chan_dongle beside a chan_quectel fork: each driver gets its own pass executor
(a "lane": its file, its devices, its actions over the one AMI connection), sharing the sticks,
the fences and the coalescer. A pass runs every lane; section names are one namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from dongled import notify, statusfile
from dongled.ami import AmiClient, DeviceEntry, DriverLink
from dongled.amisupervisor import AmiSupervisor
from dongled.backoff import Backoff
from dongled.bindwatch import BindingWatch
from dongled.coalescer import REMOVAL_MAX_WAIT, Coalescer
from dongled.confwatch import ConfWatch
from dongled.dongleconf import DeviceSection
from dongled.drivers.base import Driver
from dongled.drivers.chan_dongle import CHAN_DONGLE
from dongled.errors import AmiError
from dongled.eventlog import Event, emit
from dongled.fences import Fences
from dongled.fleet import FleetHealth
from dongled.hotplug import SoundEvent, UdevWatcher, UsbEvent, UsbInfo
from dongled.lanes import Lanes
from dongled.metrics import Metrics
from dongled.offline import OfflineWatch
from dongled.passexec import PassExecutor, PassHooks
from dongled.probe import answers_at
from dongled.reconcile import Expect
from dongled.recovery import Recovery
from dongled.registry import RegistryHooks, StickRegistry
from dongled.release import QUIET_LIMIT
from dongled.settings import Settings, conf_path
from dongled.sticks import Stick
from dongled.tasks import BEAT, Tasks

log = logging.getLogger(__name__)
# A stick's change of state reaches `dongled status` within this (its burst published once).
STICK_PUBLISH_DELAY = 0.1


IO_THREADS = 4  # the event loop's pool for blocking file I/O
RESYNC_AFTER = 1.0  # udev events lost: the ttys are listed again this much later


class DaemonFailed(Exception):
    """A long-lived task could not be kept alive: the process exits non-zero for systemd."""


class Daemon:
    def __init__(self, settings: Settings, drivers: Sequence[Driver] = (CHAN_DONGLE,)) -> None:
        self.s = settings
        self.drivers = tuple(drivers)
        self._tasks: set[asyncio.Task[None]] = set()
        self._publish_soon: asyncio.TimerHandle | None = None
        # The long-lived ones: restarted when they die, or the daemon exits for systemd.
        self.tasks = Tasks(self._fatal)
        # An idle task marks its progress this often; see _bound for how long it may not.
        self._beat_every = min(BEAT, settings.stall_after / 4)
        self.failed = ""  # why the daemon gave up (then `run` raises DaemonFailed)
        self._stop = asyncio.Event()
        self._dirty = asyncio.Event()  # publish() was called: the status task writes
        self.counters = {
            "conf_writes": 0,
            "reloads": 0,
            "probes": 0,
            "passes": 0,
            "conf_edits": 0,
            "conf_looks": 0,
        }
        self.metrics = Metrics()
        self.metrics.textfile = settings.metrics.textfile
        self.fences = Fences(settings.lock_dir)
        self.ready = asyncio.Event()
        self.ami = AmiClient(
            settings.ami,
            on_lost=self._ami_lost,
            verbs=self.drivers[0].ami,
            ports=lambda: self.lanes.first.ports_named(),
            ask_ports=lambda: self.lanes.first.trusts_driver_ports(),
        )
        self.fleet = FleetHealth(settings.switch_limit, self._switch_stuck, self.publish)
        self.registry = StickRegistry(
            settings,
            RegistryHooks(
                request=self._request,
                wake=self._wake,
                failing=self._failing,
                spawn=self.spawn,
                listing=self.listing,
                changed=self._stick_changed,
            ),
            fences=self.fences,
            fleet=self.fleet,
            metrics=self.metrics,
            counters=self.counters,
            # A driver without lock files (chan_quectel-re) marks its ttys by TIOCEXCL/flock:
            # then every busy port is checked that way.
            lock_files=all(d.lock_files for d in self.drivers),
        )
        # An admin's edit of a driver's file asks for a pass; a foreign binding is stopped
        # between passes (a pass holds the lock, so neither acts on a stale listing).
        self.confwatch = ConfWatch(
            [conf_path(settings, d.conf_key) for d in self.drivers], self._conf_edited
        )
        self.pass_lock = asyncio.Lock()
        self.bindwatch = BindingWatch(self.pass_lock, self._request, self.spawn)
        self.lanes = Lanes()
        for driver in self.drivers:
            lane = self._lane(driver)
            self.lanes.add(lane)
            if driver.status_event is not None:
                self.ami.on_status_event(driver.status_event, self.bindwatch.taking(lane))
        self.coalescer = Coalescer(
            settings.batch_max_wait,
            self.registry.awaited,
            lambda: self.registry.last_removal,
            self.registry.arrived_between,
            beat=self.tasks.beater("reconcile"),
            idle=self._beat_every,
        )
        self.supervisor = AmiSupervisor(
            self.ami,
            backoff_max=settings.ami.backoff_max,
            up=lambda: self._request(True),
            failed=self.ami_failed,
            beat=self.tasks.beater("ami"),
            idle=self._beat_every,
        )
        self.recovery = Recovery(self)
        # Sound cards matter only to a driver with USB audio (which card is whose module's).
        self._uac = any(d.uac_key is not None for d in self.drivers)
        sound = self.registry.on_sound_event if self._uac else None
        self._udev = UdevWatcher(
            self.registry.on_tty_event, self.fleet.on_usb_event, sound, self._udev_lost
        )
        self._resync: asyncio.TimerHandle | None = None

    def _lane(self, driver: Driver) -> PassExecutor:
        first = driver is self.drivers[0]
        several = len(self.drivers) > 1
        lane = PassExecutor(
            self.s,
            self.ami
            if first
            else DriverLink(
                self.ami,
                driver.ami,
                lambda: lane.ports_named(),
                lambda: lane.trusts_driver_ports(),
            ),
            self.registry,
            PassHooks(
                publish=self.publish,
                request=self._request,
                spawn=self.spawn,
                recovered=self._recovered,
                failing=self._failing,
                settle_elsewhere=(
                    (lambda ttys: self.lanes.settle_elsewhere(lane, ttys)) if several else None
                ),
                named_elsewhere=((lambda: self.lanes.named_elsewhere(lane)) if several else None),
                conf_seen=lambda files: self.confwatch.seen(lane.conf_path, files),
            ),
            fences=self.fences,
            metrics=self.metrics,
            counters=self.counters,
            driver=driver,
            conf_path=conf_path(self.s, driver.conf_key),
        )
        return lane

    # ---- what recovery and status read (each owned by one room) ----------------------

    @property
    def executor(self) -> PassExecutor:
        """The first driver's lane (the only one on a box with one driver)."""
        return self.lanes.first

    @property
    def sticks(self) -> dict[str, Stick]:
        return self.registry.sticks

    @property
    def sections(self) -> dict[str, DeviceSection]:
        return self.lanes.sections

    @property
    def asterisk(self) -> dict[str, DeviceEntry] | None:
        return self.lanes.asterisk

    @property
    def verified(self) -> dict[str, str]:
        return self.lanes.verified

    @property
    def conf_error(self) -> str:
        return self.lanes.conf_error

    @property
    def conf_files(self) -> dict[str, str]:
        return self.lanes.conf_files

    @property
    def conf_warnings(self) -> list[str]:
        return self.lanes.conf_warnings

    def driver_of(self, section: str) -> str:
        """The driver whose file holds `section`."""
        return self.lanes.lane_of(section).driver.name

    def ami_failed(self, exc: AmiError) -> None:
        self.lanes.first.ami_failed(exc)

    async def apply(self) -> bool:
        return await self.lanes.apply()

    async def restart_device(self, name: str) -> None:
        await self.lanes.restart_device(name)

    async def verify(self, expect: dict[str, Expect]) -> None:
        await self.lanes.verify(expect)

    async def listing(self) -> dict[str, DeviceEntry] | None:
        return await self.lanes.listing()

    async def modem_answers(self, usb_port: str) -> bool:
        """Whether the identified stick at `usb_port` answers AT on its data port now (a
        port its driver holds is not touched: False)."""
        for stick in self.registry.sticks.values():
            if stick.usb_port == usb_port and stick.data:
                return await answers_at(stick.data, self.s.lock_dir, self.s.at_timeout)
        return False

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

    def _fatal(self, why: str) -> None:
        self.failed = self.failed or why
        self._stop.set()

    async def run(self, stop: asyncio.Event) -> None:
        # Blocking file I/O (writes, fsyncs, re-reads, the status file) runs in this pool;
        # bounded, its idle threads stay (a probe port's close has a thread of its own).
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="dongled-io")
        )
        if self.s.metrics.listen:
            self.metrics.serve(self.s.metrics.listen)
        present = self._udev.start()
        for usb in self._udev.usb_devices():
            self.fleet.on_usb_event(UsbEvent(action="add", sys_path=usb.sys_path, info=usb))
        for card in self._udev.sound_cards() if self._uac else ():
            self.registry.on_sound_event(
                SoundEvent(action="add", sys_path=card.sys_path, card=card)
            )
        # Learn which ports chan_dongle holds before probing.
        if await self.supervisor.connect_once():
            await self.lanes.refresh()
        for info in present:
            self.registry.add_port(info)
        s, idle = self.s, self._beat_every
        # Each task's bound: its longest legitimate wait between two beats (a pass's own
        # time is in stall_after).
        self.tasks.keep(
            "status", self._write_status, bound=self._bound(statusfile.PUBLISH_EVERY / 2)
        )
        self.tasks.keep(
            "ami", self.supervisor.run, bound=self._bound(s.ami.backoff_max + s.ami.timeout)
        )
        self.confwatch.start()
        self.tasks.keep(
            "reconcile",
            self._reconcile_loop,
            bound=self._bound(max(idle, s.batch_max_wait + REMOVAL_MAX_WAIT, s.ami.backoff_max)),
        )
        for lane in self.lanes:
            if lane.driver.status_event is None:  # it announces nothing: its listing is polled
                name = f"bindings {lane.driver.name}"
                self.tasks.keep(
                    name,
                    functools.partial(self.bindwatch.polling, lane, self.tasks.beater(name)),
                    # a check: a listing, its stops and their release wait
                    bound=self._bound(
                        self.bindwatch.poll + 2 * s.ami.timeout + s.verify_timeout + QUIET_LIMIT
                    ),
                )
        if self.s.offline_after > 0 or self.s.metrics.listen or self.s.metrics.textfile:
            self.tasks.keep(
                "lines",
                self._watch_lines,
                bound=self._bound(self._lines_every() + len(self.drivers) * s.ami.timeout),
            )
        self.tasks.check("udev", self._udev.why_not_watching)
        self.tasks.check("metrics", self.metrics.why_not_serving)
        interval = notify.watchdog_interval()
        if interval is not None:
            self.spawn(self._watchdog(interval), "watchdog")
        self._request(False)
        outside = asyncio.ensure_future(stop.wait())
        outside.set_name("stop")  # SIGTERM
        inside = asyncio.ensure_future(self._stop.wait())
        inside.set_name("fatal")  # a task that cannot be kept alive
        try:
            await asyncio.wait((outside, inside), return_when=asyncio.FIRST_COMPLETED)
        finally:
            outside.cancel()
            inside.cancel()
            await self.close()
        if self.failed:
            raise DaemonFailed(self.failed)

    def _bound(self, longest: float) -> float:
        """How long a task may go without a beat before it counts as stalled."""
        return self.s.stall_after + 2 * longest

    def _lines_every(self) -> float:
        return min(60.0, self.s.offline_after / 4) if self.s.offline_after > 0 else 60.0

    async def _watchdog(self, interval: float) -> None:
        # Pinged from the event loop itself: a hung loop stops the pings and systemd restarts
        # us. And only while every long-lived task is alive: a daemon that runs on with one
        # of them dead must not look healthy (it is restarted by systemd instead).
        told = False
        while True:
            dead = self.tasks.dead(interval)
            if not dead and not self.failed:
                notify.watchdog()
                told = False
            elif not told:
                log.error("no watchdog ping while dead: %s", ", ".join(dead) or self.failed)
                told = True
            await asyncio.sleep(interval)

    async def close(self) -> None:
        if self._publish_soon is not None:
            self._publish_soon.cancel()
        await self.tasks.close()
        self._udev.stop()
        self.confwatch.close()
        self.fences.close()
        self.fleet.close()
        self.recovery.close()
        self.registry.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.ami.close()
        self.metrics.close()

    async def _reconcile_loop(self) -> None:
        retry = Backoff(first=0.5, cap=self.s.ami.backoff_max)
        beat = self.tasks.beater("reconcile")
        while True:
            beat()
            if await self.coalescer.next_pass():
                self.fleet.summarize_drops()
            try:
                async with self.pass_lock:
                    self.counters["passes"] += 1
                    ok = await self.apply()
            except Exception:
                # A bug must not end the reconcile loop: the daemon would look alive and do
                # nothing. Logged with its traceback, retried with backoff.
                log.exception("reconcile pass failed; retrying")
                ok = False
            if not self.ready.is_set():
                self.ready.set()
                notify.ready(self.summary())
            beat()
            if ok:
                retry.reset()
            else:  # Asterisk refused or failed: try again later, capped
                await asyncio.sleep(retry.next())
                self._request(False)

    async def _watch_lines(self) -> None:
        """Lines down too long with their stick plugged in go to the recovery ladder. Each
        listing also refreshes the per-line metrics: a line's registration and signal change
        with no pass at all (the network drops a SIM), and a pass is the only other time
        they are read."""
        watch = OfflineWatch(self.s.offline_after)  # off (0): it hands nothing over
        every = self._lines_every()
        while True:
            self.tasks.beat("lines")
            await asyncio.sleep(every)
            entries = await self.listing()
            if entries is None:
                continue
            self.metrics.devices(entries)
            self.metrics.flush()
            present = {
                name: stick
                for name, sec in self.sections.items()
                if sec.imei and (stick := self.registry.stick_with(sec.imei)) is not None
            }
            ports = {name: stick.usb_port for name, stick in present.items()}
            for device, reason in watch.update(time.monotonic(), entries, ports):
                stick = present[device]
                emit(
                    Event.LINE_DOWN,
                    "%s with its stick at USB %s plugged in: handing it to recovery",
                    reason,
                    stick.usb_port,
                    device=device,
                    usb_port=stick.usb_port,
                )
                self.metrics.lines_down.inc()
                self.recovery.failing(stick.usb_port, reason, device, stick.usb_device)

    # ---- the connections between rooms -----------------------------------------------

    def _request(self, urgent: bool) -> None:
        self.coalescer.request(urgent)

    def _conf_edited(self, changed: bool) -> None:
        """The file watch read the files after their events (changed: not as dongled knew
        them, so an admin's edit)."""
        self.counters["conf_looks"] += 1
        if changed:
            self.counters["conf_edits"] += 1
            for lane in self.lanes:  # the driver may be reloaded with it before our pass
                lane.driver_read_unknown()
            self._request(False)
        else:
            self.publish()  # `dongled status` counts the looks that asked for nothing

    def _wake(self) -> None:
        self.coalescer.wake()

    def _failing(self, usb_port: str, reason: str, device: str | None, sys_path: str) -> None:
        self.recovery.failing(usb_port, reason, device, sys_path)

    def _recovered(self, usb_port: str) -> None:
        self.recovery.recovered(usb_port)

    def _ami_lost(self) -> None:
        self.lanes.ami_lost()
        self.supervisor.lost()
        self.publish()  # `dongled status` must see it now, not at the next pass

    def _udev_lost(self) -> None:
        """udev events were lost: list the ttys again a moment later (once per burst)."""
        if self._resync is None:
            self._resync = asyncio.get_running_loop().call_later(RESYNC_AFTER, self._relist)

    def _relist(self) -> None:
        self._resync = None
        self.spawn(self._relist_now(), "udev resync")

    async def _relist_now(self) -> None:
        try:
            present = await asyncio.to_thread(self._udev.ttys)
            self.registry.resync(present)
        except Exception:
            log.exception("listing the ttys again failed; trying again")
            self._udev_lost()

    def _switch_stuck(self, info: UsbInfo) -> None:
        reason = f"still in storage mode after {self.s.switch_limit:g} s"
        self.recovery.failing(info.usb_port, reason, None, info.sys_path)

    # ---- status ----------------------------------------------------------------------

    def summary(self) -> str:
        total = len(self.sticks)
        last = self.lanes.last_change
        return f"{total} sticks, {len(self.verified)} on their devices" + (
            f"; last: {last}" if last else ""
        )

    def _stick_changed(self) -> None:
        """A stick's state changed: published within STICK_PUBLISH_DELAY, once for a burst
        (a hub's sticks change together), and never in the middle of the probes' callbacks,
        whose order and timing a pass depends on."""
        if self._publish_soon is None:
            self._publish_soon = asyncio.get_running_loop().call_later(
                STICK_PUBLISH_DELAY, self._publish_now
            )

    def _publish_now(self) -> None:
        self._publish_soon = None
        self.publish()

    def publish(self) -> None:
        """Say what changed: STATUS= and the gauges now, the status file and the metrics
        textfile by the status task (their writes run in a thread, off the event loop)."""
        notify.status(self.summary())
        m = self.metrics
        m.sticks_present.set(len(self.sticks))
        m.sticks_identified.set(sum(1 for s in self.sticks.values() if s.identity is not None))
        m.devices_verified.set(len(self.verified))
        m.sticks_given_up.set(sum(1 for st in self.recovery.ladder.ports.values() if st.given_up))
        m.devices(self.asterisk or {})
        self._dirty.set()

    async def _write_status(self) -> None:
        """The status task: after each publish(), the status document as it is then; and
        at least every PUBLISH_EVERY / 2 s, so a reader can tell a current one from an old
        one (a hung daemon, or one that cannot write, leaves a file that ages)."""
        while True:
            self.tasks.beat("status")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), statusfile.PUBLISH_EVERY / 2)
            self._dirty.clear()
            on_disk = None
            if not self.sections:  # no parse yet: what the files say, read off the loop
                on_disk = await asyncio.to_thread(statusfile.sections_on_disk, self.conf_files)
            doc = statusfile.snapshot(self, on_disk)  # on the loop: it reads the daemon's state
            await asyncio.to_thread(statusfile.write, self.s.state_dir, doc)
            await asyncio.to_thread(self.metrics.flush)


async def run(
    settings: Settings,
    stop: asyncio.Event,
    started: Callable[[Daemon], None] | None = None,
    drivers: Sequence[Driver] = (CHAN_DONGLE,),
) -> None:
    daemon = Daemon(settings, drivers)
    if started is not None:
        started(daemon)
    await daemon.run(stop)
