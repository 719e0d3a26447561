"""A test Asterisk 20 with chan_dongle: a real TCP AMI server and real ttys, in a thread.

`FakeAsterisk` runs its own event loop in a background thread so that a test (or dongled
running as a subprocess) talks to it exactly as to the real thing. It matches what a real
Asterisk 20 with chan_dongle was seen to do (docs/design.md, docs/asterisk-behaviour.md),
including the dangerous behaviours dongled exists to prevent: chan_dongle re-opens a lost
device's OLD paths at every `interval` pass without looking at the IMEI, any reload starts
every stopped device again on whatever the file names, and a device stopped moments ago still
holds its tty (a re-open then shifts the new opener's AT replies, and the real one segfaulted:
counted in `crashes`).

Every public method and property is thread-safe and meant to be called from the test thread.
The parts: the AMI transport (`fake_asterisk_ami`), what its actions do
(`fake_asterisk_actions`), the channel drivers it hosts (`fake_asterisk_dongle_module`,
`fake_asterisk_quectel_module`), chan_dongle's device model (`fake_asterisk_dongle`), the ttys'
locks (`fake_asterisk_ttys`), the record of what happened (`fake_asterisk_journal`) and the
config parser (`fake_asterisk_conf`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from .fake_asterisk_actions import AmiActions, ChannelDriver
from .fake_asterisk_ami import AmiServer
from .fake_asterisk_dongle import ChanDongle, Device
from .fake_asterisk_dongle_module import DongleModule
from .fake_asterisk_journal import Headers, Journal
from .fake_asterisk_thread import LoopThread

T = TypeVar("T")


class HostedDriver(ChannelDriver, Protocol):
    """A channel driver as the Asterisk process loads, runs and unloads it."""

    admin_command: str  # what an admin types at the console to reload it

    def load(self, host: FakeAsterisk, holders: dict[str, Device]) -> None: ...

    def start_monitor(self) -> None: ...

    async def unload(self) -> None: ...

    async def stop_monitor(self) -> None: ...

    def entries(self) -> list[dict[str, str]]:
        """Its devices with chan_dongle's DongleDeviceEntry fields."""
        ...


class FakeAsterisk:
    """Asterisk 20 for tests, hosting `drivers` (default: chan_dongle); see the module
    docstring.

    `start()` listens on 127.0.0.1:`port` (ephemeral) and loads the drivers (chan_dongle reads
    `conf_path`); `stop()` tears everything down. `interval` replaces [general] interval= of
    the file (tests need short passes); `init_timeout` bounds each AT command of a device's
    initialization; `close_delay` is how long a stopped device keeps its ttys after DongleStop
    answered. `journal` records what happened (a chan_quectel host passes its own).
    """

    chan_class: type[ChanDongle] = ChanDongle  # the benchmark swaps in a subclass

    def __init__(
        self,
        conf_path: str,
        *,
        lock_dir: str,
        username: str = "dongled",
        secret: str = "s3cret",
        write_classes: Iterable[str] = ("system", "config", "reporting"),
        read_classes: Iterable[str] = ("system", "call"),
        interval: float = 2.0,
        init_timeout: float = 2.0,
        close_delay: float = 0.1,
        drivers: Sequence[HostedDriver] | None = None,
        journal: Journal | None = None,
    ) -> None:
        self.conf_path = conf_path
        self.lock_dir = lock_dir
        self.username = username
        self.secret = secret
        self.write_classes = frozenset(c.lower() for c in write_classes)
        self.read_classes = frozenset(c.lower() for c in read_classes)
        self.interval = interval
        self.init_timeout = init_timeout
        self.close_delay = close_delay
        self.journal = Journal() if journal is None else journal
        self.drivers: list[HostedDriver] = (
            [DongleModule(self.chan_class)] if drivers is None else list(drivers)
        )
        self._thread = LoopThread("fake-asterisk")
        self._loop = self._thread.loop
        self._started_at = time.time()
        self._restarts = 0
        self.dispatch = AmiActions(
            self,
            self.journal,
            self.drivers,
            uptime=lambda: int(time.time() - self._started_at),
            schedule=self.schedule,
            crash=self._crash,
        )
        self.ami = AmiServer(self.journal, self.dispatch.handle)
        self._crash_tasks: set[asyncio.Task[None]] = set()

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the loop thread, listen on 127.0.0.1:<ephemeral> (`.port`), load the drivers."""
        self._thread.start()
        self._run(self._astart())

    def stop(self) -> None:
        """Close sessions, listener, ttys and locks; stop and join the thread; close the loop."""
        self._thread.stop(self._astop)

    def __enter__(self) -> FakeAsterisk:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _astart(self) -> None:
        await self.ami.listen(0)
        self._load_modules()
        for driver in reversed(self.drivers):  # the last-loaded one's monitor first
            driver.start_monitor()

    def _load_modules(self) -> None:
        """Asterisk loading its channel drivers, in order. One process: a tty one driver
        still holds (still closing) is as busy for the others (the same pid in the lock)."""
        holders: dict[str, Device] = {}
        for driver in self.drivers:
            driver.load(self, holders)

    async def _unload_modules(self) -> None:
        """The drivers close their ttys (Asterisk stopping, restarting or crashing)."""
        for driver in reversed(self.drivers):
            await driver.unload()

    async def _astop(self) -> None:
        for driver in self.drivers:
            await driver.stop_monitor()
        await self.ami.close_listener()
        await self.ami.drop_sessions()
        await self._unload_modules()
        current = asyncio.current_task()
        leftovers = [t for t in asyncio.all_tasks() if t is not current]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)
        await asyncio.get_running_loop().shutdown_default_executor()

    def emit(self, name: str, headers: Headers) -> None:
        """A driver's AMI event (loop thread)."""
        self.ami.emit(name, headers)

    def schedule(self, fn: Callable[[], object]) -> None:
        """Run `fn` after the response is written, like chan_dongle's scheduled restarts."""
        self._loop.call_soon(fn)

    def call_later(self, delay: float, fn: Callable[..., object], *args: Any) -> None:
        """Run `fn(*args)` on the loop `delay` seconds from now (loop thread)."""
        self._loop.call_later(delay, fn, *args)

    def _crash(self) -> None:
        """Asterisk died: no more AMI, every tty closed (flocks and TIOCEXCL go with it)."""
        task = self._loop.create_task(self._acrash())
        self._crash_tasks.add(task)
        task.add_done_callback(self._crash_tasks.discard)

    async def _acrash(self) -> None:
        await self.ami.close_listener()
        await self.ami.drop_sessions()
        await self._unload_modules()

    # --- test hooks -------------------------------------------------------------------------

    @property
    def bindings_log(self) -> list[tuple[float, str, str, str]]:
        """(monotonic time, device, data path, IMEI read) each time a device reached Free."""
        return self.journal.bindings

    @property
    def foreign_bindings(self) -> list[tuple[float, str, str, str]]:
        """The bindings where IMEISetting was set and differed from the IMEI the modem gave."""
        return self.journal.foreign

    @property
    def actions(self) -> list[tuple[float, str, dict[str, str]]]:
        """(monotonic time, action name, headers) of every AMI action received."""
        return self.journal.actions

    @property
    def events(self) -> list[tuple[float, str, dict[str, str]]]:
        """(monotonic time, event name, headers) of every event chan_dongle raised."""
        return self.journal.events

    @property
    def hazards(self) -> list[str]:
        """Situations in which the real Asterisk may crash or corrupt a device's AT stream."""
        return self.journal.hazards

    @property
    def crashes(self) -> list[str]:
        """Where the real Asterisk would have segfaulted (each is also in `hazards`)."""
        return self.journal.crashes

    @property
    def log_messages(self) -> list[str]:
        """chan_dongle's notable log lines (lost connection, already used by process, ...)."""
        return self.journal.messages

    @property
    def reload_count(self) -> int:
        return self.journal.reload_count

    @property
    def restart_count(self) -> int:
        return self._restarts

    @property
    def never_answer(self) -> bool:
        """True: the AMI sends no banner, no reply and no event (set by a test)."""
        return self.ami.never_answer

    @never_answer.setter
    def never_answer(self, value: bool) -> None:
        self.ami.never_answer = value

    @property
    def garbage_mode(self) -> bool:
        """True: the AMI sends line noise instead of every answer (set by a test)."""
        return self.ami.garbage_mode

    @garbage_mode.setter
    def garbage_mode(self, value: bool) -> None:
        self.ami.garbage_mode = value

    @property
    def port(self) -> int:
        return self.ami.port

    def devices_snapshot(self) -> dict[str, dict[str, str]]:
        """Device name -> its DongleDeviceEntry fields, as DongleShowDevices would list them
        (chan_dongle's fields for every driver's devices)."""
        return self._call(
            lambda: {e["Device"]: e for driver in self.drivers for e in driver.entries()}
        )

    def wait_for(
        self, predicate: Callable[[], bool], timeout: float = 5.0, *, what: str = ""
    ) -> None:
        """Poll `predicate` until true; TimeoutError (with the device table) otherwise."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                states = {
                    name: (e["State"], e["IMEIState"], e["DataSetting"])
                    for name, e in self.devices_snapshot().items()
                }
                raise TimeoutError(
                    f"timed out after {timeout} s waiting for {what or predicate!r}; "
                    f"devices (State, IMEIState, DataSetting): {states}"
                )
            time.sleep(0.01)

    def wait_for_state(
        self, device: str, state: str, timeout: float = 5.0, *, imei: str | None = None
    ) -> dict[str, str]:
        """Wait until `device` shows `state` (and IMEIState `imei` if given); return its entry."""

        def ready() -> bool:
            entry = self.devices_snapshot().get(device)
            if entry is None or entry["State"] != state:
                return False
            return imei is None or entry["IMEIState"] == imei

        self.wait_for(ready, timeout, what=f"{device} {state} {imei or ''}".strip())
        return self.devices_snapshot()[device]

    def admin_reload(self) -> None:
        """An admin reloading the channel drivers at the console: `dongle reload now` with
        chan_dongle alone, `core reload` otherwise."""
        only = self.drivers[0].admin_command if len(self.drivers) == 1 else "core reload"

        def every() -> None:
            for driver in self.drivers:
                driver.reload(f"cli: {only}")

        self._call(every)

    def driver_retry(self) -> None:
        """chan_dongle's own retry now: its monitor's pass (every `interval` s) that re-opens a
        device whose open failed, on the paths of the configuration it last read."""

        def passes() -> None:
            for driver in self.drivers:
                if isinstance(driver, DongleModule) and driver.chan is not None:
                    driver.chan.interval_pass()

        self._call(passes)

    def restart(self) -> None:
        """Asterisk restarts: sessions dropped, ttys closed, config re-read, devices opened.

        A SIGTERM'd Asterisk leaves its lock files behind with its (then dead) pid. Here the pid
        stays ours and alive, so leftover locks would be taken over as our own anyway; they are
        removed instead, which is what the real one's next start does with a dead pid's lock.
        """
        self._run(self._arestart())

    async def _arestart(self) -> None:
        await self.ami.drop_sessions()
        await self._unload_modules()
        self._restarts += 1
        self._started_at = time.time()
        self._load_modules()

    def go_down(self) -> None:
        """The AMI listener closes and every session is dropped (devices keep running)."""
        self._run(self._ago_down())

    async def _ago_down(self) -> None:
        await self.ami.close_listener()
        await self.ami.drop_sessions()

    def come_up(self) -> None:
        """The AMI listener is back on the same port."""
        self._run(self.ami.listen(self.port))

    def drop_sessions(self) -> None:
        """Hang up every AMI session (the listener stays up)."""
        self._run(self.ami.drop_sessions())

    def cli(self, command: str) -> list[str]:
        """What `command` prints at the Asterisk console (no crash check: test use only)."""
        return self._call(lambda: self.dispatch.cli(command)[1])

    # --- thread plumbing --------------------------------------------------------------------

    def _call(self, fn: Callable[[], T]) -> T:
        return self._thread.call(fn)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._thread.run(coro)
