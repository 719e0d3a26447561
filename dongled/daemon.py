"""Wiring: builds the rooms of the pipeline, connects them and owns the event loop's tasks.

    udev (hotplug) -> sticks (registry, prober) -> when (coalescer) -> pass (executor:
    plan -> stop -> write -> Asterisk -> verify) -> status (snapshot, writer; notify, metrics)

with the AMI connection kept by `asterisk.supervisor` and hung sticks handled by `recovery`
(its runner, and the line-down watch). An admin's edit of the drivers' files asks for a pass
too (`confwatch`), and a device that comes up on a foreign IMEI between passes is stopped
(`bindwatch`, under the pass lock). Each room gets what it needs passed in, not the daemon;
none imports this module (only the CLI does).

A box can run chan_dongle beside a chan_quectel fork: each driver gets its own pass executor
(a "lane": its file, its devices, its actions over the one AMI connection), sharing the sticks,
the fences and the coalescer. A pass runs every lane; section names are one namespace.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Sequence
from concurrent.futures import ThreadPoolExecutor

from dongled.asterisk.ami import AmiClient
from dongled.asterisk.control import control_for
from dongled.asterisk.supervisor import AmiSupervisor
from dongled.config.settings import Settings, conf_path
from dongled.core.tasks import BEAT, Tasks
from dongled.drivers.base import Driver
from dongled.drivers.chan_dongle import CHAN_DONGLE
from dongled.hotplug.feed import UdevFeed
from dongled.hotplug.fleet import FleetHealth
from dongled.hotplug.registry import RegistryHooks, StickRegistry
from dongled.loops import PassLoop, watchdog
from dongled.modem.fences import Fences
from dongled.reconcile.bindwatch import BindingWatch
from dongled.reconcile.coalescer import REMOVAL_MAX_WAIT, Coalescer
from dongled.reconcile.confwatch import ConfWatch
from dongled.reconcile.executor import PassExecutor, PassHooks
from dongled.reconcile.lanes import Lanes
from dongled.reconcile.release import QUIET_LIMIT
from dongled.recovery.linewatch import listing_every, watch_lines
from dongled.recovery.runner import Recovery, ladder_for
from dongled.status.document import PUBLISH_EVERY
from dongled.status.snapshot import Sources
from dongled.status.writer import Publisher
from dongled.telemetry import notify
from dongled.telemetry.metrics import Metrics

log = logging.getLogger(__name__)
IO_THREADS = 4  # the event loop's pool for blocking file I/O


def task_bounds(settings: Settings, idle: float, poll: float, drivers: int) -> dict[str, float]:
    """How long each long-lived task may go without marking its progress before it counts as
    stalled: `stall_after` (which covers a pass however long) plus twice its own longest
    legitimate wait between two marks."""
    ami = settings.ami
    longest = {
        "status": PUBLISH_EVERY / 2,
        "ami": ami.backoff_max + ami.timeout,  # its backoff, then a login
        "reconcile": max(idle, settings.batch_max_wait + REMOVAL_MAX_WAIT, ami.backoff_max),
        # a check: a listing, its stops and their release wait
        "bindings": poll + 2 * ami.timeout + settings.verify_timeout + QUIET_LIMIT,
        "lines": listing_every(settings.offline_after) + drivers * ami.timeout,
    }
    return {name: settings.stall_after + 2 * wait for name, wait in longest.items()}


class DaemonFailed(Exception):
    """A long-lived task could not be kept alive: the process exits non-zero for systemd."""


class Daemon:
    def __init__(self, settings: Settings, drivers: Sequence[Driver] = (CHAN_DONGLE,)) -> None:
        self.settings = settings
        self.drivers = tuple(drivers)
        self._tasks: set[asyncio.Task[None]] = set()
        # The long-lived ones: restarted when they die, or the daemon exits for systemd.
        self.tasks = Tasks(self._fatal)
        # An idle task marks its progress this often; task_bounds: how long it may not.
        self._beat_every = min(BEAT, settings.stall_after / 4)
        self.failed = ""  # why the daemon gave up (then `run` raises DaemonFailed)
        self._stop = asyncio.Event()
        kinds = ("conf_writes", "reloads", "probes", "passes", "conf_edits", "conf_looks")
        self.counters = dict.fromkeys(kinds, 0)
        self.metrics = Metrics()
        self.metrics.textfile = settings.metrics.textfile
        self.fences = Fences(settings.lock_dir)
        # One executor per driver ("lanes"), added below, each with its driver's control over
        # the one AMI connection.
        self.lanes = Lanes()
        self.ami = AmiClient(settings.ami, on_lost=self._ami_lost)
        self.ladder = ladder_for(settings.recovery)
        # The fleet and the registry tell rooms built after them (those read the registry):
        # these calls look them up when made.
        self.fleet = FleetHealth(
            settings.switch_limit,
            lambda info: self.recovery.stuck_in_storage(info),
            lambda: self.status.publish(),
        )
        self.registry = StickRegistry(
            settings,
            RegistryHooks(
                request=lambda urgent: self.coalescer.request(urgent),
                wake=lambda: self.coalescer.wake(),
                failing=lambda *failure: self.recovery.failing(*failure),
                spawn=self.spawn,
                listing=self.lanes.listing,
                changed=lambda: self.status.stick_changed(),
            ),
            fences=self.fences,
            fleet=self.fleet,
            metrics=self.metrics,
            counters=self.counters,
            # A driver without lock files (chan_quectel-re) marks its ttys by TIOCEXCL/flock:
            # then every busy port is checked that way.
            lock_files=all(d.lock_files for d in self.drivers),
        )
        self.coalescer = Coalescer(
            settings.batch_max_wait,
            self.registry.awaited,
            lambda: self.registry.last_removal,
            self.registry.arrived_between,
            beat=self.tasks.beater("reconcile"),
            idle=self._beat_every,
        )
        sticks = self.registry.sticks
        self.status = Publisher(
            Sources(settings, self.ami, self.lanes, sticks, self.ladder, self.fleet, self.counters),
            self.metrics,
            beat=self.tasks.beater("status"),
        )
        self.recovery = Recovery(
            settings,
            self.ladder,
            self.lanes,
            sticks,
            self.ami,
            self.metrics,
            spawn=self.spawn,
            publish=self.status.publish,
            request=self.coalescer.request,
        )
        # An admin's edit of a driver's file asks for a pass; a foreign binding is stopped
        # between passes (a pass holds the lock, so neither acts on a stale listing).
        self.pass_lock = asyncio.Lock()
        self.bindwatch = BindingWatch(self.pass_lock, self.coalescer.request, self.spawn)
        self.confwatch = ConfWatch(
            [conf_path(settings, d) for d in self.drivers],
            self._conf_edited,
            stirred=self.bindwatch.hurry,  # RE's listing is polled faster while one is edited
        )
        for driver in self.drivers:
            lane = self._lane(driver)
            self.lanes.add(lane)
            if driver.status_event is not None:
                self.ami.on_status_event(driver.status_event, self.bindwatch.taking(lane))
        self.supervisor = AmiSupervisor(
            self.ami,
            backoff_max=settings.ami.backoff_max,
            up=functools.partial(self.coalescer.request, True),
            failed=self.lanes.first.teller.ami_failed,
            beat=self.tasks.beater("ami"),
            idle=self._beat_every,
        )
        self.passes = PassLoop(
            self.coalescer,
            self.lanes,
            self.pass_lock,
            self.fleet,
            self.counters,
            self.status.summary,
            settings.ami.backoff_max,
            beat=self.tasks.beater("reconcile"),
        )
        uac = any(d.uac_key is not None for d in self.drivers)
        self.udev = UdevFeed(self.registry, self.fleet, self.spawn, uac)

    def _lane(self, driver: Driver) -> PassExecutor:
        several = len(self.drivers) > 1
        lane = PassExecutor(
            self.settings,
            # A listing without ports (RE) gets the ports this lane knows the driver read.
            control_for(self.ami, driver, lambda: lane.ports.named(), lambda: lane.ports.trusted()),
            self.registry,
            PassHooks(
                publish=self.status.publish,
                request=self.coalescer.request,
                spawn=self.spawn,
                recovered=self.recovery.recovered,
                failing=self.recovery.failing,
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
        )
        return lane

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
        settings = self.settings
        if settings.metrics.listen:
            self.metrics.serve(settings.metrics.listen)
        present = self.udev.start()
        # Learn which ports chan_dongle holds before probing.
        if await self.supervisor.connect_once():
            await self.lanes.refresh()
        for info in present:
            self.registry.add_port(info)
        bound = task_bounds(settings, self._beat_every, self.bindwatch.poll, len(self.drivers))
        self.tasks.keep("status", self.status.run, bound=bound["status"])
        self.tasks.keep("ami", self.supervisor.run, bound=bound["ami"])
        self.confwatch.start()
        self.tasks.keep("reconcile", self.passes.run, bound=bound["reconcile"])
        for lane in self.lanes:
            if lane.driver.status_event is None:  # it announces nothing: its listing is polled
                name = f"bindings {lane.driver.name}"
                poll = functools.partial(self.bindwatch.polling, lane, self.tasks.beater(name))
                self.tasks.keep(name, poll, bound=bound["bindings"])
        if settings.offline_after > 0 or settings.metrics.listen or settings.metrics.textfile:
            lines = (settings.offline_after, self.lanes, self.registry, self.metrics, self.recovery)
            watch = functools.partial(watch_lines, *lines, self.tasks.beater("lines"))
            self.tasks.keep("lines", watch, bound=bound["lines"])
        self.tasks.check("udev", self.udev.watcher.why_not_watching)
        self.tasks.check("metrics", self.metrics.why_not_serving)
        interval = notify.watchdog_interval()
        if interval is not None:
            self.spawn(watchdog(interval, self.tasks, lambda: self.failed), "watchdog")
        self.coalescer.request(False)
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

    async def close(self) -> None:
        self.status.close()
        await self.tasks.close()
        self.udev.stop()
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

    # ---- the connections between rooms -----------------------------------------------

    def _conf_edited(self, changed: bool) -> None:
        """The file watch read the files after their events (changed: not as dongled knew
        them, so an admin's edit)."""
        self.counters["conf_looks"] += 1
        if changed:
            self.counters["conf_edits"] += 1
            for lane in self.lanes:  # the driver may be reloaded with it before our pass
                lane.ports.driver_read_unknown()
            self.coalescer.request(False)
        else:
            self.status.publish()  # `dongled status` counts the looks that asked for nothing

    def _ami_lost(self) -> None:
        self.lanes.ami_lost()
        self.supervisor.lost()
        self.status.publish()  # `dongled status` must see it now, not at the next pass


async def run(
    settings: Settings, stop: asyncio.Event, drivers: Sequence[Driver] = (CHAN_DONGLE,)
) -> None:
    await Daemon(settings, drivers).run(stop)
