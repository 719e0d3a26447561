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
The chan_dongle model lives in `fake_asterisk_dongle`, its config parser in `fake_asterisk_conf`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .fake_asterisk_dongle import ChanDongle, Headers, Journal

_LOGGER = logging.getLogger(__name__)

T = TypeVar("T")

BANNER = b"Asterisk Call Manager/9.0.0\r\n"
GARBAGE = b"\x00\xff\xfe\x13garbage\x80\x81\r\n:::\r\nnot an ami line\x1b[0m\r\n\xc3\x28\r\n"
CALL_TIMEOUT = 10.0
WHEN = ("now", "gracefully", "when convenient")
_ALL_CLASSES = frozenset(
    ("system", "call", "log", "verbose", "command", "agent", "user", "config", "dtmf",
     "reporting", "cdr", "dialplan", "originate", "agi", "cc", "aoc", "test", "security",
     "message")
)  # fmt: skip
# Action -> write classes of which the user needs one (None: allowed to any logged-in user).
_ACTION_CLASSES: dict[str, tuple[str, ...] | None] = {
    "ping": None,
    "logoff": None,
    "dongleshowdevices": ("system", "reporting"),
    "donglereload": ("system", "config"),
    "donglestop": ("system", "config"),
    "donglestart": ("system", "config"),
    "donglerestart": ("system", "config"),
    "reload": ("system", "config"),
    "command": ("command",),
}
_EVENT_CLASS = {"DongleStatus": "call", "DonglePortFail": "call", "FullyBooted": "system"}


@dataclass(eq=False)
class Session:
    writer: asyncio.StreamWriter
    authenticated: bool = False
    events: frozenset[str] = frozenset()
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def send(self, pairs: Iterable[tuple[str, str]]) -> None:
        if not self.writer.is_closing():
            self.writer.write(_format(pairs))


def _format(pairs: Iterable[tuple[str, str]]) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in pairs).encode("utf-8") + b"\r\n"


class Message:
    """One AMI action: headers in order, looked up case-insensitively (first value wins)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs
        self._map: dict[str, str] = {}
        for key, value in pairs:
            self._map.setdefault(key.lower(), value)

    def get(self, key: str) -> str | None:
        return self._map.get(key.lower())

    def reply(self, response: str, message: str | None, *extra: tuple[str, str]) -> Headers:
        pairs: Headers = [("Response", response)]
        action_id = self.get("ActionID")
        if action_id is not None:
            pairs.append(("ActionID", action_id))
        if message is not None:
            pairs.append(("Message", message))
        pairs.extend(extra)
        return pairs


class FakeAsterisk:
    """Asterisk 20 + chan_dongle for tests; see the module docstring.

    `start()` listens on 127.0.0.1:`port` (ephemeral) and loads chan_dongle from `conf_path`;
    `stop()` tears everything down. `interval` replaces [general] interval= of the file (tests
    need short passes); `init_timeout` bounds each AT command of a device's initialization;
    `close_delay` is how long a stopped device keeps its ttys after DongleStop answered.
    """

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
        self.never_answer = False
        self.garbage_mode = False
        self.port = 0
        self._journal = Journal()
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._sessions: set[Session] = set()
        self._chan: ChanDongle | None = None
        self._interval_task: asyncio.Task[None] | None = None
        self._started_at = time.time()
        self._restarts = 0
        self._action_classes = dict(_ACTION_CLASSES)  # a subclass adds its driver's actions
        self._handlers: dict[str, Callable[[Session, Message], bool]] = {
            "ping": self._action_ping,
            "logoff": self._action_logoff,
            "dongleshowdevices": self._action_dongleshowdevices,
            "donglereload": self._action_donglereload,
            "donglestop": self._action_donglestop,
            "donglestart": self._action_donglestart,
            "donglerestart": self._action_donglerestart,
            "reload": self._action_reload,
            "command": self._action_command,
        }

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the loop thread, listen on 127.0.0.1:<ephemeral> (`.port`), load chan_dongle."""
        if self._thread is not None:
            raise RuntimeError("FakeAsterisk already started")
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fake-asterisk", daemon=True
        )
        self._thread.start()
        self._run(self._astart())

    def stop(self) -> None:
        """Close sessions, listener, ttys and locks; stop and join the thread; close the loop."""
        thread = self._thread
        if thread is None or self._loop.is_closed():
            return
        try:
            self._run(self._astop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            thread.join(CALL_TIMEOUT)
            self._loop.close()

    def __enter__(self) -> FakeAsterisk:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _astart(self) -> None:
        await self._listen(0)
        self._load_modules()
        self._interval_task = asyncio.get_running_loop().create_task(self._interval_loop())

    def _load_modules(self) -> None:
        """Asterisk loading its channel drivers: here chan_dongle (a subclass adds others)."""
        self._chan = self._new_chan()
        self._chan.load()

    async def _unload_modules(self) -> None:
        """The drivers close their ttys (Asterisk stopping or restarting)."""
        if self._chan is not None:
            await self._chan.aclose()

    async def _astop(self) -> None:
        if self._interval_task is not None:
            self._interval_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._interval_task
        await self._close_listener()
        await self._drop_sessions()
        await self._unload_modules()
        current = asyncio.current_task()
        leftovers = [t for t in asyncio.all_tasks() if t is not current]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)
        await asyncio.get_running_loop().shutdown_default_executor()

    chan_class: type[ChanDongle] = ChanDongle  # the benchmark swaps in a subclass

    def _new_chan(self) -> ChanDongle:
        return self.chan_class(
            asyncio.get_running_loop(),
            self.conf_path,
            lock_dir=self.lock_dir,
            init_timeout=self.init_timeout,
            journal=self._journal,
            emit=self._emit,
            close_delay=self.close_delay,
        )

    async def _interval_loop(self) -> None:
        await self._interval_passes(lambda: self.interval, lambda: self._chan)

    @staticmethod
    async def _interval_passes(
        interval: Callable[[], float], chan: Callable[[], ChanDongle | None]
    ) -> None:
        """A driver's monitor: every `interval()` seconds, a pass over its devices."""
        while True:
            await asyncio.sleep(interval())
            current = chan()
            if current is not None:
                current.interval_pass()

    # --- test hooks -------------------------------------------------------------------------

    @property
    def bindings_log(self) -> list[tuple[float, str, str, str]]:
        """(monotonic time, device, data path, IMEI read) each time a device reached Free."""
        return self._journal.bindings

    @property
    def foreign_bindings(self) -> list[tuple[float, str, str, str]]:
        """The bindings where IMEISetting was set and differed from the IMEI the modem gave."""
        return self._journal.foreign

    @property
    def actions(self) -> list[tuple[float, str, dict[str, str]]]:
        """(monotonic time, action name, headers) of every AMI action received."""
        return self._journal.actions

    @property
    def events(self) -> list[tuple[float, str, dict[str, str]]]:
        """(monotonic time, event name, headers) of every event chan_dongle raised."""
        return self._journal.events

    @property
    def hazards(self) -> list[str]:
        """Situations in which the real Asterisk may crash or corrupt a device's AT stream."""
        return self._journal.hazards

    @property
    def crashes(self) -> list[str]:
        """Where the real Asterisk would have segfaulted (each is also in `hazards`)."""
        return self._journal.crashes

    @property
    def log_messages(self) -> list[str]:
        """chan_dongle's notable log lines (lost connection, already used by process, ...)."""
        return self._journal.messages

    @property
    def reload_count(self) -> int:
        return self._journal.reload_count

    @property
    def restart_count(self) -> int:
        return self._restarts

    def devices_snapshot(self) -> dict[str, dict[str, str]]:
        """Device name -> its DongleDeviceEntry fields, as DongleShowDevices would list them."""
        return self._call(lambda: {e["Device"]: e for e in self._chan_entries(None)})

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
        """An admin typing `dongle reload now` at the Asterisk CLI."""
        self._call(lambda: self._reload("cli: dongle reload now"))

    def driver_retry(self) -> None:
        """chan_dongle's own retry now: its monitor's pass (every `interval` s) that re-opens a
        device whose open failed, on the paths of the configuration it last read."""
        self._call(lambda: self._chan.interval_pass() if self._chan is not None else None)

    def restart(self) -> None:
        """Asterisk restarts: sessions dropped, ttys closed, config re-read, devices opened.

        A SIGTERM'd Asterisk leaves its lock files behind with its (then dead) pid. Here the pid
        stays ours and alive, so leftover locks would be taken over as our own anyway; they are
        removed instead, which is what the real one's next start does with a dead pid's lock.
        """
        self._run(self._arestart())

    async def _arestart(self) -> None:
        await self._drop_sessions()
        await self._unload_modules()
        self._restarts += 1
        self._started_at = time.time()
        self._load_modules()

    def go_down(self) -> None:
        """The AMI listener closes and every session is dropped (devices keep running)."""
        self._run(self._ago_down())

    async def _ago_down(self) -> None:
        await self._close_listener()
        await self._drop_sessions()

    def come_up(self) -> None:
        """The AMI listener is back on the same port."""
        self._run(self._listen(self.port))

    def drop_sessions(self) -> None:
        """Hang up every AMI session (the listener stays up)."""
        self._run(self._drop_sessions())

    # --- thread plumbing --------------------------------------------------------------------

    def _call(self, fn: Callable[[], T]) -> T:
        if threading.current_thread() is self._thread:
            return fn()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the caller's thread
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return future.result(CALL_TIMEOUT)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(CALL_TIMEOUT)

    # --- chan_dongle glue -------------------------------------------------------------------

    def _chan_entries(self, device: str | None) -> list[dict[str, str]]:
        return self._chan.entries(device) if self._chan is not None else []

    def _reload(self, source: str) -> None:
        if self._chan is not None:
            self._chan.reload(source)

    def _emit(self, name: str, headers: Headers) -> None:
        self._journal.event(name, headers)
        if self.never_answer:
            return
        event_class = _EVENT_CLASS.get(name, "call")
        pairs: Headers = [("Event", name), ("Privilege", f"{event_class},all"), *headers]
        for session in list(self._sessions):
            if session.authenticated and event_class in session.events:
                self._send(session, pairs)

    def _send(self, session: Session, pairs: Headers) -> None:
        if self.garbage_mode:
            if not session.writer.is_closing():
                session.writer.write(GARBAGE)
            return
        session.send(pairs)

    # --- AMI server -------------------------------------------------------------------------

    async def _listen(self, port: int) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close_listener(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            # Since Python 3.12.1 wait_closed() also waits for every connection the server
            # accepted: drop the sessions first, or it waits for clients that never hang up.
            await self._drop_sessions()
            await server.wait_closed()

    async def _drop_sessions(self) -> None:
        sessions = list(self._sessions)
        for session in sessions:
            session.writer.transport.abort()
        tasks = [s.task for s in sessions if s.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(writer, task=asyncio.current_task())
        self._sessions.add(session)
        try:
            if self.garbage_mode:
                writer.write(GARBAGE)
            elif not self.never_answer:
                writer.write(BANNER)
            while True:
                pairs = await _read_message(reader)
                if pairs is None:
                    break
                if not pairs:
                    continue
                if self.never_answer:
                    continue
                if self.garbage_mode:
                    writer.write(GARBAGE)
                    continue
                if not self._handle(session, Message(pairs)):
                    break
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass  # peer gone, or a line over the StreamReader limit: hang up
        finally:
            self._sessions.discard(session)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    def _handle(self, session: Session, msg: Message) -> bool:
        """Answer one action; False hangs up the session."""
        action = (msg.get("Action") or "").strip()
        headers = {k: v for k, v in msg.pairs}
        self._journal.action(action, headers)
        key = action.lower()
        if not action:
            session.send(msg.reply("Error", "Missing action in request"))
            return True
        if key == "login":
            return self._login(session, msg)
        if not session.authenticated:
            session.send(msg.reply("Error", "Permission denied"))
            return True
        if key not in self._action_classes:
            session.send(msg.reply("Error", "Invalid/unknown command"))
            return True
        needed = self._action_classes[key]
        if needed is not None and not self.write_classes.intersection(needed):
            session.send(msg.reply("Error", "Permission denied"))
            return True
        return self._handlers[key](session, msg)

    def _login(self, session: Session, msg: Message) -> bool:
        if msg.get("Username") != self.username or msg.get("Secret") != self.secret:
            session.send(msg.reply("Error", "Authentication failed"))
            return False
        session.authenticated = True
        wanted = (msg.get("Events") or "on").strip().lower()
        if wanted in ("on", "yes", "true", "1", "all"):
            session.events = self.read_classes
        elif wanted in ("off", "no", "false", "0", ""):
            session.events = frozenset()
        else:
            asked = {c.strip() for c in wanted.split(",")}
            if "all" in asked:
                asked = set(_ALL_CLASSES)
            session.events = self.read_classes.intersection(asked)
        session.send(msg.reply("Success", "Authentication accepted"))
        if "system" in session.events:
            uptime = str(int(time.time() - self._started_at))
            session.send(
                [
                    ("Event", "FullyBooted"),
                    ("Privilege", "system,all"),
                    ("Uptime", uptime),
                    ("LastReload", uptime),
                    ("Status", "Fully Booted"),
                ]
            )
        return True

    def _action_ping(self, session: Session, msg: Message) -> bool:
        session.send(
            msg.reply("Success", None, ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}"))
        )
        return True

    def _action_logoff(self, session: Session, msg: Message) -> bool:
        session.send(msg.reply("Goodbye", "Thanks for all the fish."))
        return False

    def _action_dongleshowdevices(self, session: Session, msg: Message) -> bool:
        entries = self._chan_entries((msg.get("Device") or "").strip() or None)
        return self._send_device_list(session, msg, "Dongle", entries)

    def _send_device_list(
        self, session: Session, msg: Message, prefix: str, entries: list[dict[str, str]]
    ) -> bool:
        """A ShowDevices answer: the list start, one <prefix>DeviceEntry each, the Complete."""
        action_id = msg.get("ActionID")
        tail: Headers = [("ActionID", action_id)] if action_id is not None else []
        out = [
            msg.reply(
                "Success",
                None,
                ("EventList", "start"),
                ("Message", "Device status list will follow"),
            )
        ]
        for entry in entries:
            out.append([("Event", f"{prefix}DeviceEntry"), *tail, *entry.items()])
        out.append(
            [
                ("Event", f"{prefix}ShowDevicesComplete"),
                *tail,
                ("EventList", "Complete"),
                ("ListItems", str(len(entries))),
            ]
        )
        for pairs in out:
            session.send(pairs)
        return True

    def _action_donglereload(self, session: Session, msg: Message) -> bool:
        when = (msg.get("When") or "").strip().lower()
        if when not in WHEN:
            session.send(msg.reply("Error", "Invalid value of When"))
            return True
        session.send(msg.reply("Success", "reload scheduled"))
        self._schedule(lambda: self._reload(f"ami: DongleReload When: {when}"))
        return True

    def _device_action(
        self, session: Session, msg: Message, verb: str, op: Callable[[str], bool], when: bool
    ) -> bool:
        device = (msg.get("Device") or "").strip()
        if not device:
            session.send(msg.reply("Error", "Device not specified"))
            return True
        if when and (msg.get("When") or "").strip().lower() not in WHEN:
            session.send(msg.reply("Error", "Invalid value of When"))
            return True
        chan = self._chan
        # chan_dongle's manager.c answers "[<device>] <what>" (contract test: the model said
        # "Device nope not found" and "stop scheduled").
        if chan is None or device not in chan.devices:
            session.send(msg.reply("Error", f"[{device}] Device not found"))
            return True
        session.send(msg.reply("Success", f"[{device}] {verb.capitalize()} scheduled"))
        self._schedule(lambda: op(device))
        return True

    def _action_donglestop(self, session: Session, msg: Message) -> bool:
        return self._device_action(session, msg, "stop", self._op("stop"), True)

    def _action_donglestart(self, session: Session, msg: Message) -> bool:
        return self._device_action(session, msg, "start", self._op("start"), False)

    def _action_donglerestart(self, session: Session, msg: Message) -> bool:
        return self._device_action(session, msg, "restart", self._op("restart"), True)

    def _op(self, verb: str) -> Callable[[str], bool]:
        def run(device: str) -> bool:
            chan = self._chan
            if chan is None:
                return False
            ops = {"stop": chan.stop_device, "start": chan.start_device}
            return ops.get(verb, chan.restart_device)(device)

        return run

    def _action_reload(self, session: Session, msg: Message) -> bool:
        module = (msg.get("Module") or "").strip()
        if module not in ("", "chan_dongle.so", "chan_dongle"):
            session.send(msg.reply("Error", "No such module"))
            return True
        session.send(msg.reply("Success", "Module Reloaded"))
        self._schedule(lambda: self._reload(f"ami: Reload Module: {module or '(all)'}"))
        return True

    def _action_command(self, session: Session, msg: Message) -> bool:
        command = " ".join((msg.get("Command") or "").split())
        ok, lines, later = self._cli(command)
        response = "Success" if ok else "Error"
        outputs = [("Output", line) for line in lines] or [("Output", "")]
        session.send(msg.reply(response, "Command output follows", *outputs))
        if later is not None:
            self._schedule(later)
        return True

    def _cli(self, command: str) -> tuple[bool, list[str], Callable[[], object] | None]:
        """A few Asterisk CLI commands: (known, output lines, what to do after answering)."""
        words = command.lower().split()
        when = " ".join(words[2:4]) if words[2:3] == ["when"] else " ".join(words[2:3])
        rest = words[2 + len(when.split()) :]
        if words[:2] == ["dongle", "reload"] and when in WHEN and not rest:
            return True, [], lambda: self._reload(f"cli: {command}")
        if words[:2] == ["module", "reload"] and words[2:] in (["chan_dongle.so"], ["chan_dongle"]):
            return (
                True,
                [f"Module '{words[2]}' reloaded successfully."],
                lambda: self._reload(f"cli: {command}"),
            )
        chan = self._chan
        if words[:2] in (["dongle", "stop"], ["dongle", "restart"]) and when in WHEN:
            device = command.split()[-1] if len(rest) == 1 else ""
            if chan is not None and device in chan.devices:
                return (
                    True,
                    [f"[{device}] {words[1]} scheduled"],
                    lambda: self._op(words[1])(device),
                )
            return True, [f"Device {device} not found"], None
        if words[:2] == ["dongle", "start"] and len(words) == 3:
            device = command.split()[2]
            if chan is not None and device in chan.devices:
                return True, [f"[{device}] start scheduled"], lambda: self._op("start")(device)
            return True, [f"Device {device} not found"], None
        if words == ["dongle", "show", "devices"]:
            lines = [
                "ID           Group State      RSSI Mode Submode Provider Name  Model      "
                "Firmware          IMEI             IMSI             Number"
            ]
            for e in self._chan_entries(None):
                lines.append(
                    f"{e['Device']:<12} {e['Group']:<5} {e['State'][:10]:<10} "
                    f"{e['RSSI'].split(',')[0]:<4} 0    0       {e['ProviderName'][:14]:<14} "
                    f"{e['Model']:<10} {e['Firmware']:<17} {e['IMEIState']:<16} "
                    f"{e['IMSIState']:<16} {e['SubscriberNumber']}"
                )
            return True, lines, None
        return no_such_command(command)

    def _schedule(self, fn: Callable[[], object]) -> None:
        """Run `fn` after the response is written, like chan_dongle's scheduled restarts."""
        self._loop.call_soon(fn)


def no_such_command(command: str) -> tuple[bool, list[str], None]:
    """Asterisk's answer to a CLI command nobody registered."""
    return (
        False,
        [f"No such command '{command}' (type 'core show help {command}' for other possible "
         "commands)"],
        None,
    )  # fmt: skip


async def _read_message(reader: asyncio.StreamReader) -> list[tuple[str, str]] | None:
    """Read header lines until a blank line; None at end of stream."""
    pairs: list[tuple[str, str]] = []
    while True:
        line = await reader.readline()
        if not line:
            return None
        text = line.decode("utf-8", errors="replace").rstrip("\r\n")
        if not text.strip():
            return pairs
        key, sep, value = text.partition(":")
        if sep:
            pairs.append((key.strip(), value.strip()))
