"""chan_dongle as a module of the test Asterisk: its AMI actions (DongleShowDevices,
DongleReload, DongleStop/Start/Restart), its CLI commands and its monitor's interval passes,
around the device model of `fake_asterisk_dongle`. Runs on the FakeAsterisk loop thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from .fake_asterisk_actions import WHEN, CliAnswer, send_device_list
from .fake_asterisk_ami import Message, Session
from .fake_asterisk_dongle import ChanDongle, Device

if TYPE_CHECKING:
    from .fake_asterisk import FakeAsterisk

# chan_dongle's actions -> write classes of which the user needs one.
DONGLE_ACTIONS: dict[str, tuple[str, ...] | None] = {
    "dongleshowdevices": ("system", "reporting"),
    "donglereload": ("system", "config"),
    "donglestop": ("system", "config"),
    "donglestart": ("system", "config"),
    "donglerestart": ("system", "config"),
}


async def interval_passes(
    interval: Callable[[], float], chan: Callable[[], ChanDongle | None]
) -> None:
    """A driver's monitor: every `interval()` seconds, a pass over its devices."""
    while True:
        await asyncio.sleep(interval())
        current = chan()
        if current is not None:
            current.interval_pass()


class DongleModule:
    """chan_dongle.so, reading the host's `conf_path` with its `interval` (see FakeAsterisk)."""

    admin_command = "dongle reload now"  # what an admin types to reload it

    def __init__(self, chan_class: type[ChanDongle] = ChanDongle) -> None:
        self._chan_class = chan_class
        self.chan: ChanDongle | None = None
        self._host: FakeAsterisk | None = None
        self._monitor: asyncio.Task[None] | None = None

    @property
    def action_classes(self) -> Mapping[str, tuple[str, ...] | None]:
        return DONGLE_ACTIONS

    def load(self, host: FakeAsterisk, holders: dict[str, Device]) -> None:
        """Module load: read the file, open the devices; the monitor starts with the first."""
        self._host = host
        self.chan = self._chan_class(
            asyncio.get_running_loop(),
            host.conf_path,
            lock_dir=host.lock_dir,
            init_timeout=host.init_timeout,
            journal=host.journal,
            emit=host.emit,
            close_delay=host.close_delay,
            holders=holders,
        )
        self.chan.load()

    def start_monitor(self) -> None:
        if self._monitor is None and self._host is not None:
            host = self._host
            self._monitor = asyncio.get_running_loop().create_task(
                interval_passes(lambda: host.interval, lambda: self.chan)
            )

    async def unload(self) -> None:
        """The module closes its ttys (Asterisk stopping, restarting or crashing)."""
        if self.chan is not None:
            await self.chan.aclose()

    async def stop_monitor(self) -> None:
        task, self._monitor = self._monitor, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def entries(self) -> list[dict[str, str]]:
        """Its devices as DongleShowDevices lists them."""
        return self.chan.entries(None) if self.chan is not None else []

    def reload(self, source: str) -> None:
        if self.chan is not None:
            self.chan.reload(source)

    def reload_source(self, module: str) -> str | None:
        if module in ("", "chan_dongle.so", "chan_dongle"):
            return f"ami: Reload Module: {module or '(all)'}"
        return None

    def fatal_command(self, command: str) -> str | None:
        return None

    def _schedule(self, fn: Callable[[], object]) -> None:
        assert self._host is not None
        self._host.schedule(fn)

    # --- AMI -----------------------------------------------------------------------------------

    def handle(self, session: Session, msg: Message) -> bool:
        key = (msg.get("Action") or "").strip().lower()
        if key == "dongleshowdevices":
            entries = (
                self.chan.entries((msg.get("Device") or "").strip() or None) if self.chan else []
            )
            return send_device_list(session, msg, "Dongle", entries)
        if key == "donglereload":
            when = (msg.get("When") or "").strip().lower()
            if when not in WHEN:
                session.send(msg.reply("Error", "Invalid value of When"))
                return True
            session.send(msg.reply("Success", "reload scheduled"))
            self._schedule(lambda: self.reload(f"ami: DongleReload When: {when}"))
            return True
        verb = key.removeprefix("dongle")
        return self._device_action(session, msg, verb, verb != "start")

    def _device_action(self, session: Session, msg: Message, verb: str, when: bool) -> bool:
        device = (msg.get("Device") or "").strip()
        if not device:
            session.send(msg.reply("Error", "Device not specified"))
            return True
        if when and (msg.get("When") or "").strip().lower() not in WHEN:
            session.send(msg.reply("Error", "Invalid value of When"))
            return True
        chan = self.chan
        # chan_dongle's manager.c answers "[<device>] <what>" (contract test: the model said
        # "Device nope not found" and "stop scheduled").
        if chan is None or device not in chan.devices:
            session.send(msg.reply("Error", f"[{device}] Device not found"))
            return True
        session.send(msg.reply("Success", f"[{device}] {verb.capitalize()} scheduled"))
        self._schedule(lambda: self._op(verb)(device))
        return True

    def _op(self, verb: str) -> Callable[[str], bool]:
        def run(device: str) -> bool:
            chan = self.chan
            if chan is None:
                return False
            ops = {"stop": chan.control.stop, "start": chan.control.start}
            return ops.get(verb, chan.control.restart)(device)

        return run

    # --- CLI -----------------------------------------------------------------------------------

    def cli(self, command: str) -> CliAnswer | None:
        """`dongle ...` and `module reload chan_dongle`; None for any other command."""
        words = command.lower().split()
        when = " ".join(words[2:4]) if words[2:3] == ["when"] else " ".join(words[2:3])
        rest = words[2 + len(when.split()) :]
        if words[:2] == ["dongle", "reload"] and when in WHEN and not rest:
            return True, [], lambda: self.reload(f"cli: {command}")
        if words[:2] == ["module", "reload"] and words[2:] in (["chan_dongle.so"], ["chan_dongle"]):
            return (
                True,
                [f"Module '{words[2]}' reloaded successfully."],
                lambda: self.reload(f"cli: {command}"),
            )
        chan = self.chan
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
            return True, self._show_devices(), None
        return None

    def _show_devices(self) -> list[str]:
        lines = [
            "ID           Group State      RSSI Mode Submode Provider Name  Model      "
            "Firmware          IMEI             IMSI             Number"
        ]
        for e in self.entries():
            lines.append(
                f"{e['Device']:<12} {e['Group']:<5} {e['State'][:10]:<10} "
                f"{e['RSSI'].split(',')[0]:<4} 0    0       {e['ProviderName'][:14]:<14} "
                f"{e['Model']:<10} {e['Firmware']:<17} {e['IMEIState']:<16} "
                f"{e['IMSIState']:<16} {e['SubscriberNumber']}"
            )
        return lines
