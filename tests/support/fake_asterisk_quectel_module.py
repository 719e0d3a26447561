"""A chan_quectel fork as a module of the test Asterisk: IM's `Quectel*` AMI actions, the CLI
both forks register (`quectel ...`, and RE's `simcom ...`), RE's device manager, and the command
that kills Asterisk under RE; the device model is `fake_asterisk_quectel`'s. Runs on the
FakeAsterisk loop thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

from .fake_asterisk_actions import WHEN, CliAnswer, no_such_command, send_device_list
from .fake_asterisk_ami import Message, Session
from .fake_asterisk_dongle import ChanDongle, Device
from .fake_asterisk_dongle_module import interval_passes
from .fake_asterisk_journal import Journal
from .fake_asterisk_quectel_chan import (
    IM_MODEL,
    RE_MODEL,
    ChanQuectel,
    ForkModel,
    QuectelJournal,
)

if TYPE_CHECKING:
    from .fake_asterisk import FakeAsterisk

# IM's ten actions -> the write classes of which a user needs one (its manager.c).
IM_ACTIONS: dict[str, tuple[str, ...] | None] = {
    "quectelshowdevices": ("system", "reporting"),
    "quectelsendussd": ("call",),
    "quectelsendsms": ("call",),
    "quectelsetccwa": ("config",),
    "quectelreset": ("system", "config"),
    "quectelrestart": ("system", "config"),
    "quectelstop": ("system", "config"),
    "quectelstart": ("system", "config"),
    "quectelremove": ("system", "config"),
    "quectelreload": ("system", "config"),
}
SCHEDULED = {"stop": "Stop scheduled", "restart": "Restart scheduled", "start": "Start scheduled"}


@dataclass(frozen=True)
class Fork:
    """What one chan_quectel fork does, as data."""

    name: Literal["im", "re"]
    model: ForkModel  # its devices: config keys, AT conversation, CLI, locks
    actions: Mapping[str, tuple[str, ...] | None]  # its AMI actions (RE: none)
    device_manager: bool  # RE: stop/start go through its eventfd device manager
    uac_on: str  # the section line that gives a module's voice to its own USB card


IM = Fork("im", IM_MODEL, IM_ACTIONS, device_manager=False, uac_on="quec_uac=1")
RE = Fork("re", RE_MODEL, {}, device_manager=True, uac_on="uac=on")
FORKS = {"im": IM, "re": RE}


class QuectelModule:
    """chan_quectel.so of one fork, reading `conf_path` with its own `interval` (RE's first
    connect waits that long after load). `alsa_cards`: see ChanQuectel.alsa_cards."""

    admin_command = "core reload"

    def __init__(self, fork: Fork, conf_path: str, interval: float) -> None:
        self.fork = fork
        self.conf_path = conf_path
        self.interval = interval
        self.alsa_cards: dict[str, str] = {}
        self.chan: ChanQuectel | None = None
        self._host: FakeAsterisk | None = None
        self._monitor: asyncio.Task[None] | None = None
        self.manager: DeviceManager | None = None

    @property
    def action_classes(self) -> Mapping[str, tuple[str, ...] | None]:
        return self.fork.actions

    def load(self, host: FakeAsterisk, holders: dict[str, Device]) -> None:
        self._host = host
        if self.fork.device_manager:
            self.manager = DeviceManager(host, host.journal, lambda: self.interval)
        journal = host.journal
        assert isinstance(journal, QuectelJournal), "a chan_quectel host keeps a QuectelJournal"
        chan = ChanQuectel(
            asyncio.get_running_loop(),
            self.conf_path,
            model=self.fork.model,
            lock_dir=host.lock_dir,
            init_timeout=host.init_timeout,
            journal=journal,
            emit=host.emit,
            holders=holders,
        )
        chan.alsa_cards = self.alsa_cards
        self.chan = chan
        chan.load()

    def start_monitor(self) -> None:
        if self._monitor is None:
            self._monitor = asyncio.get_running_loop().create_task(
                interval_passes(lambda: self.interval, lambda: self.chan)
            )

    async def unload(self) -> None:
        chan, self.chan = self.chan, None
        if chan is not None:
            await chan.aclose()

    async def stop_monitor(self) -> None:
        task, self._monitor = self._monitor, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def entries(self) -> list[dict[str, str]]:
        """chan_dongle's fields for its devices (IM's own listing renames some)."""
        return ChanDongle.entries(self.chan) if self.chan is not None else []

    def reload(self, source: str) -> None:
        if self.chan is not None:
            self.chan.reload(source)

    def reload_source(self, module: str) -> str | None:
        if module in ("chan_quectel.so", "chan_quectel"):
            return f"ami: Reload Module: {module}"
        return "ami: Reload (all)" if module == "" else None

    def fatal_command(self, command: str) -> str | None:
        """RE's `quectel show device state` of a device not registered since it connected."""
        words = command.lower().split()
        chan = self.chan
        if (
            chan is not None
            and words[:1] in ([w] for w in chan.cli_words)
            and words[1:4] == ["show", "device", "state"]
            and len(words) == 5
            and chan.show_device_state(command.split()[4]) is None
        ):
            return f"{command!r} on a device that never registered"
        return None

    def _schedule(self, fn: Callable[[], object]) -> None:
        assert self._host is not None
        self._host.schedule(fn)

    # --- AMI (IM) ------------------------------------------------------------------------------

    def handle(self, session: Session, msg: Message) -> bool:
        """IM's actions, answered as its manager.c does."""
        action = (msg.get("Action") or "").strip().lower().removeprefix("quectel")
        chan = self.chan
        device = (msg.get("Device") or "").strip()
        when = (msg.get("When") or "").strip().lower()
        if action == "showdevices":
            entries = chan.entries(device or None) if chan is not None else []
            return send_device_list(session, msg, "Quectel", entries)
        if action == "reload":
            if when not in WHEN:
                session.send(msg.reply("Error", "Invalid value of When"))
                return True
            session.send(msg.reply("Success", "reload scheduled"))
            self._schedule(lambda: self.reload(f"ami: QuectelReload When: {when}"))
            return True
        if action not in SCHEDULED:
            name = (msg.get("Action") or "").strip()
            assert self._host is not None
            self._host.journal.hazard(f"{name} sent: not modelled, dongled must not need it")
            session.send(msg.reply("Error", "not modelled by the test Asterisk"))
            return True
        if not device:
            session.send(msg.reply("Error", "Device not specified"))
            return True
        if action != "start" and when not in WHEN:
            session.send(msg.reply("Error", "Invalid value of When"))
            return True
        ok, text = self._schedule_device(action, device)
        session.send(msg.reply("Success" if ok else "Error", text))
        return True

    def _schedule_device(self, verb: str, device: str) -> tuple[bool, str]:
        chan = self.chan
        if chan is None or device not in chan.devices:
            return False, f"[{device}] Device not found"
        ops = {"stop": chan.control.stop, "start": chan.control.start}
        op = ops.get(verb, chan.control.restart)
        if self.manager is not None:
            self.manager.command(lambda: op(device))
        else:
            self._schedule(lambda: op(device))
        return True, f"[{device}] {SCHEDULED[verb]}"

    # --- CLI -----------------------------------------------------------------------------------

    def cli(self, command: str) -> CliAnswer | None:
        """`module reload chan_quectel` and its own words; None for any other command."""
        words = command.split()
        low = [w.lower() for w in words]
        chan = self.chan
        if low[:2] == ["module", "reload"] and low[2:] in (
            ["chan_quectel.so"],
            ["chan_quectel"],
        ):
            return (
                True,
                [f"Module '{words[2]}' reloaded successfully."],
                lambda: self.reload(f"cli: {command}"),
            )
        if chan is not None and low[:1] in ([w] for w in chan.cli_words):
            return self._quectel_cli(chan, command, words, low)
        return None

    def _quectel_cli(
        self, chan: ChanQuectel, command: str, words: list[str], low: list[str]
    ) -> CliAnswer:
        rest = low[1:]
        if rest == ["show", "devices"]:
            return True, chan.show_devices(), None
        if rest[:3] == ["show", "device", "settings"] and len(rest) == 4:
            return True, chan.show_device_settings(words[4]), None
        if rest[:3] == ["show", "device", "state"] and len(rest) == 4:
            return True, chan.show_device_state(words[4]) or [], None
        if rest[:1] == ["reload"] and rest[1:] in (["now"], ["gracefully"], ["when", "convenient"]):
            return True, [], lambda: self.reload(f"cli: {command}")
        if rest[:1] == ["start"] and len(rest) == 2:
            return True, [self._schedule_device("start", words[2])[1]], None
        if rest[:1] in (["stop"], ["restart"]):
            when = rest[1:-1]
            if when in (["now"], ["gracefully"], ["when", "convenient"]):
                return True, [self._schedule_device(rest[0], words[-1])[1]], None
            return True, [f"Usage: {words[0]} {rest[0]} < now | gracefully | when convenient >"
                          " <device>"], None  # fmt: skip
        return no_such_command(command)


class DeviceManager:
    """RE's device manager, one per load (a new thread each time Asterisk starts).

    RE's CLI stop/start (and a reload that changed a device) write "scan" (1) to an eventfd
    that its device-manager thread reads as one command; eventfd writes add up, so two
    commands written while the manager is busy read as 2, its "exit" command: the thread
    ends and no device is started or stopped by it again (seen against the real RE: after
    three stops a few ms apart it brought no device back); three read as an unknown command
    and are dropped until its next interval. Each stop keeps the manager busy while the
    device's monitor thread ends (BUSY here; the real one took from 0 to 10 s).
    """

    BUSY: ClassVar[float] = 0.05

    def __init__(self, host: FakeAsterisk, journal: Journal, interval: Callable[[], float]):
        self._host = host
        self._journal = journal
        self._interval = interval
        self._unread = 0
        self._ops: list[Callable[[], object]] = []
        self._busy = False
        self._dead = False

    def command(self, op: Callable[[], object]) -> None:
        self._unread += 1
        self._ops.append(op)
        if not self._busy and not self._dead:
            self._busy = True
            self._host.schedule(self._read)

    def _read(self) -> None:
        value, self._unread = self._unread, 0
        ops, self._ops = self._ops, []
        if value == 2:
            self._dead = True
            self._busy = False
            self._journal.hazard(
                "RE's device manager read two commands as one (2, its exit command) and ended: "
                "RE starts and stops no device any more"
            )
            return
        if value >= 3:  # "Unknown command": nothing done until the next interval tick
            self._host.call_later(self._interval(), self._idle_sweep, ops)
            return
        for op in ops:
            op()
        self._host.call_later(self.BUSY, self._free)

    def _idle_sweep(self, ops: list[Callable[[], object]]) -> None:
        for op in ops:
            op()
        self._free()

    def _free(self) -> None:
        self._busy = False
        if self._unread and not self._dead:
            self._busy = True
            self._read()
