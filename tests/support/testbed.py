"""Fake USB sticks with real uevents on the umockdev testbed (`tests.support.umockdev`).

The process owning a `Testbed` must run under ``umockdev-wrapper`` (the preload); so must any
subprocess that should see it, started with ``env=testbed.env()``.

What umockdev 0.17.16 does to us and how we work around it is told in umockdev.py. Here:
``remove_device()`` sends no uevent, does not remove children, and only unlinks the /dev node
when the device has an ``A: dev=`` attribute: we send the ``remove`` uevents ourselves, remove
children first and unlink the node ourselves. Each tty's pty master is taken out of the
testbed's table right after the tty is added (the port, not the testbed, owns and closes it),
so the same ttyUSB number can come back.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType

from .modemsim import CDROM_MODE_USB, Role, SimPort, StickSim, UsbModel, serve
from .sysfs_text import (
    HUB_PATH,
    ROOT_HUB,
    hub_text,
    mass_storage_text,
    sound_card_text,
    tty_interface_text,
    usb_device_text,
    usbfs_node,
)
from .umockdev import DEVICE_LOCK, TestbedError, Umockdev, serialized

__all__ = [
    "DEVICE_LOCK",
    "HUB_PATH",
    "FakePort",
    "FakeSoundCard",
    "FakeStick",
    "FakeUsbDevice",
    "Testbed",
    "TestbedError",
]


@dataclass(slots=True, eq=False)
class FakePort:
    """One ttyUSBn of a fake stick."""

    tty_number: int
    interface: int
    role: Role
    sys_path: str
    """/sys/devices/... of the tty device (SUBSYSTEM=tty)."""
    sim_port: SimPort

    @property
    def devnode(self) -> str:
        return f"/dev/ttyUSB{self.tty_number}"

    @property
    def received(self) -> bytes:
        return self.sim_port.received


@dataclass(slots=True, frozen=True)
class FakeSoundCard:
    """The ALSA card of a module with USB audio: ``sound/cardN`` under its usb_device."""

    number: int
    id: str
    sys_path: str

    @property
    def alsa_name(self) -> str:
        return f"hw:{self.id}"


@dataclass(slots=True, eq=False, kw_only=True)
class FakeUsbDevice:
    """A usb_device in the testbed and the devices under it, parents first."""

    model: UsbModel
    usb_port: str
    devnum: int
    sys_paths: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"1-1.{self.usb_port}"

    @property
    def sys_path(self) -> str:
        """/sys/devices/... of the usb_device (what groups a stick's ports)."""
        return f"/sys{HUB_PATH}/{self.name}"


@dataclass(slots=True, eq=False, kw_only=True)
class FakeStick(FakeUsbDevice):
    """A fake stick: its usb_device, interfaces and ports, served by `sim`."""

    sim: StickSim
    ports: dict[int, FakePort] = field(default_factory=dict)
    """By bInterfaceNumber."""
    plugged: bool = False
    sound_card: FakeSoundCard | None = None
    """Its ALSA card while plugged, if the model has USB audio."""

    @property
    def data_port(self) -> FakePort:
        return self.ports[self.model.data_interface]

    @property
    def audio_port(self) -> FakePort:
        if self.model.audio_interface is None:
            raise LookupError(f"{self.model.name} has no voice port")
        return self.ports[self.model.audio_interface]

    @property
    def tty_numbers(self) -> list[int]:
        return [p.tty_number for p in self.ports.values()]

    def port_by_tty(self, tty_number: int) -> FakePort:
        return next(p for p in self.ports.values() if p.tty_number == tty_number)


class Testbed:
    """Fake USB devices on this process's umockdev testbed (one Testbed at a time)."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self) -> None:
        self.umockdev = Umockdev()
        self.root_dir: str = self.umockdev.root_dir
        self.event_queue_len = self.umockdev.event_queue_len
        self._devnums = itertools.count(2)
        self._devices: list[FakeUsbDevice] = []
        self._base_paths: list[str] = []
        self.add_from_string(hub_text())
        self._base_paths = [f"/sys{ROOT_HUB}", f"/sys{HUB_PATH}"]

    @staticmethod
    def available() -> bool:
        """Whether this process runs under the umockdev preload (umockdev-wrapper)."""
        return Umockdev.available()

    # ---- the testbed underneath (every device change goes through add_from_string) ---------

    @property
    def usb_resets(self) -> int:
        """USBDEVFS_RESET ioctls sent to any stick's usbfs node so far."""
        return self.umockdev.usb_resets

    def env(self) -> dict[str, str]:
        """os.environ plus UMOCKDEV_DIR (set with setenv(3), invisible to os.environ)."""
        return self.umockdev.env()

    def add_from_string(self, text: str) -> None:
        """Add devices in umockdev-record format; each paragraph emits an ``add`` uevent."""
        self.umockdev.add_from_string(text)

    def uevent(self, sys_path: str, action: str) -> None:
        self.umockdev.uevent(sys_path, action)

    def remove_device(self, sys_path: str) -> None:
        """Remove one device (no event; children are NOT removed: do them first)."""
        self.umockdev.remove_device(sys_path)

    def take_dev_fd(self, devnode: str) -> int:
        """Take the pty master of `devnode` out of the testbed: the caller must close it."""
        return self.umockdev.take_dev_fd(devnode)

    # ---- plugging, step by step (a plug is add_usb_device, add_port per port, adopt) -------

    def add_usb_device(self, stick: FakeStick) -> None:
        """A plug's first step: the stick's usb_device on a new devnum, no ports yet."""
        stick.devnum = next(self._devnums)
        stick.ports = {}
        stick.sys_paths = [stick.sys_path]
        self.add_from_string(usb_device_text(stick.model, stick.name, stick.usb_port, stick.devnum))

    def add_port(self, stick: FakeStick, ifnum: int, role: Role, tty_no: int) -> FakePort:
        """One interface of the stick as ttyUSB<tty_no>, served by the stick's simulator."""
        if_path = f"{HUB_PATH}/{stick.name}/{stick.name}:1.{ifnum}"
        tty_path = f"{if_path}/ttyUSB{tty_no}/tty/ttyUSB{tty_no}"
        stick.sys_paths += [f"/sys{if_path}", f"/sys{if_path}/ttyUSB{tty_no}", f"/sys{tty_path}"]
        self.add_from_string(tty_interface_text(stick.model, if_path, ifnum, tty_no))
        master = self.take_dev_fd(f"/dev/ttyUSB{tty_no}")
        try:
            sim_port = serve(stick.sim, master, role, f"ttyUSB{tty_no}")
        except BaseException:
            os.close(master)
            raise
        port = FakePort(tty_no, ifnum, role, f"/sys{tty_path}", sim_port)
        stick.ports[ifnum] = port
        return port

    def adopt(self, stick: FakeStick) -> None:
        """A plug's last step: the stick counts as plugged (unplugged at close)."""
        stick.plugged = True
        self._devices.append(stick)

    # ---- sticks ----------------------------------------------------------------------------

    @serialized
    def add_stick(
        self, model: UsbModel, sim: StickSim, tty_numbers: Sequence[int], *, usb_port: str
    ) -> FakeStick:
        """Plug a stick: usb_device -> interfaces -> usb-serial -> tty, with add uevents."""
        stick = FakeStick(model=model, usb_port=usb_port, devnum=0, sim=sim)
        self._plug(stick, tty_numbers)
        return stick

    def _plug(self, stick: FakeStick, tty_numbers: Sequence[int]) -> None:
        model = stick.model
        if len(tty_numbers) != len(model.interfaces):
            raise ValueError(f"{model.name} needs {len(model.interfaces)} tty numbers")
        if stick.plugged:
            raise TestbedError(f"{stick.name} is already plugged")
        self.add_usb_device(stick)
        try:
            for (ifnum, role), tty_no in zip(model.interfaces, tty_numbers, strict=True):
                self.add_port(stick, ifnum, role, tty_no)
            if model.sound_interface is not None:
                self._add_sound_card(stick, model.sound_interface)
        except BaseException:
            stick.plugged = True
            self._unplug(stick)
            raise
        self.adopt(stick)

    def _add_sound_card(self, stick: FakeStick, ifnum: int) -> None:
        """A USB Audio Class interface and its ALSA card, as snd-usb-audio registers it: the
        lowest free card number, and the model's id made unique with "_1", "_2"... (ALSA)."""
        cards = [d.sound_card for d in self._devices if isinstance(d, FakeStick)]
        taken = {c for c in cards if c is not None}
        number = min(set(range(len(taken) + 1)) - {c.number for c in taken})
        ids = {c.id for c in taken}
        base = stick.model.sound_card_id or "Audio"
        names = itertools.chain([base], (f"{base}_{n}" for n in itertools.count(1)))
        card_id = next(name for name in names if name not in ids)
        if_path = f"{HUB_PATH}/{stick.name}/{stick.name}:1.{ifnum}"
        card_path = f"{if_path}/sound/card{number}"
        stick.sys_paths += [f"/sys{if_path}", f"/sys{card_path}"]
        self.add_from_string(sound_card_text(if_path, ifnum, card_path, card_id, number))
        stick.sound_card = FakeSoundCard(number, card_id, f"/sys{card_path}")

    @serialized
    def add_cdrom(self, *, usb_port: str, model: UsbModel = CDROM_MODE_USB) -> FakeUsbDevice:
        """A stick still in "CD-ROM mode": usb_device + one mass-storage interface, no tty."""
        dev = FakeUsbDevice(model=model, usb_port=usb_port, devnum=next(self._devnums))
        if_path = f"{HUB_PATH}/{dev.name}/{dev.name}:1.0"
        text = usb_device_text(model, dev.name, usb_port, dev.devnum) + mass_storage_text(if_path)
        dev.sys_paths = [dev.sys_path, f"/sys{if_path}"]
        self.add_from_string(text)
        self._devices.append(dev)
        return dev

    def _remove_tree(self, dev: FakeUsbDevice) -> None:
        # remove events children first (tty, usb-serial, interface per interface; the device
        # last), then remove_device children first, then our own leftovers (the node symlink)
        for path in reversed(dev.sys_paths):
            self.uevent(path, "remove")
        for path in reversed(dev.sys_paths):
            if os.path.isdir(self.root_dir + path):
                self.remove_device(path)
        nodes = [usbfs_node(dev.devnum)]
        if isinstance(dev, FakeStick):
            nodes += [f"ttyUSB{port.tty_number}" for port in dev.ports.values()]
        for name in nodes:
            node = os.path.join(self.root_dir, "dev", name)
            if os.path.lexists(node):
                os.unlink(node)
        dev.sys_paths = []

    def _unplug(self, stick: FakeStick) -> None:
        if not stick.plugged:
            return
        for port in stick.ports.values():  # the kernel hangs the ttys up first
            port.sim_port.unplug()
        self._remove_tree(stick)
        stick.plugged = False
        stick.sound_card = None

    @serialized
    def unplug(self, device: FakeUsbDevice) -> None:
        """Pull the stick: ports hang up (opener sees HUP/EIO), remove uevents, sysfs gone."""
        if isinstance(device, FakeStick):
            self._unplug(device)
        else:
            self._remove_tree(device)
        if device in self._devices:
            self._devices.remove(device)

    @serialized
    def rename_card(self, stick: FakeStick, card_id: str) -> FakeSoundCard:
        """Give the module's ALSA card another id in place, as writing its `id` attribute
        (or a udev rule) does; sends no uevent of its own (`uevent` does)."""
        card = stick.sound_card
        if card is None:
            raise TestbedError(f"{stick.name} has no sound card")
        with open(f"{self.root_dir}{card.sys_path}/id", "w", encoding="ascii") as f:
            f.write(card_id + "\n")
        stick.sound_card = FakeSoundCard(card.number, card_id, card.sys_path)
        return stick.sound_card

    @serialized
    def replug(self, stick: FakeStick, tty_numbers: Sequence[int]) -> FakeStick:
        """The same stick (same sim, same USB port) comes back, on `tty_numbers`."""
        if stick.plugged:
            self.unplug(stick)
        self._plug(stick, tty_numbers)
        return stick

    @property
    def devices(self) -> Iterator[FakeUsbDevice]:
        return iter(list(self._devices))

    def close(self) -> None:
        """Unplug everything and give the umockdev testbed back (it stays for the next)."""
        if self.umockdev.closed:
            return
        for dev in reversed(self._devices):
            self.unplug(dev)
        for path in reversed(self._base_paths):
            self.uevent(path, "remove")
            self.remove_device(path)
        self.umockdev.close()

    def __enter__(self) -> Testbed:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
