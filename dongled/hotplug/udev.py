"""udev on the event loop: the only module that imports pyudev.

The monitor is started before existing ttys are listed, so nothing falls in between; the
daemon de-duplicates. Only kernel sysfs attributes are used (ID_* properties exist only
where udevd ran).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pyudev

from dongled.hotplug.soundcards import SoundCard, cards_from_sysfs

log = logging.getLogger(__name__)

# A devnode dongled may write into dongle.conf: nothing else ever reaches the file.
# fullmatch, not `$` (which also matches before a final newline); no leading dot (`/dev/..`).
_SAFE_DEVNODE = re.compile(r"/dev/[A-Za-z0-9_:+-][A-Za-z0-9_.:+-]{0,63}")


@dataclass(frozen=True, slots=True, kw_only=True)
class TtyInfo:
    devnode: str  # /dev/ttyUSB3
    sys_path: str  # the tty's sysfs path
    usb_device: str  # sysfs path of the stick (its USB device): groups a stick's ports
    usb_port: str  # physical port, e.g. 1-1.2 (stable across re-enumeration)
    interface: int  # bInterfaceNumber
    vid: str
    pid: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UsbInfo:
    """A whole USB device (dongled watches these only for sticks still in storage mode)."""

    sys_path: str
    usb_port: str
    vid: str
    pid: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UsbEvent:
    action: str  # "add" | "remove"
    sys_path: str
    info: UsbInfo | None  # None for remove events


@dataclass(frozen=True, slots=True, kw_only=True)
class SoundEvent:
    """An ALSA card came, went or changed (USB audio modules: which card is whose)."""

    action: str  # "add" | "remove"
    sys_path: str
    card: SoundCard | None  # None for remove events and for devices that are no usable card


@dataclass(frozen=True, slots=True, kw_only=True)
class TtyEvent:
    action: str  # "add" | "remove"
    sys_path: str
    info: TtyInfo | None  # None for remove events and for ttys that are not USB serial


def tty_info_from(
    devnode: str | None,
    sys_path: str,
    interface_attrs: Mapping[str, str] | None,
    usb_device_path: str | None,
    usb_attrs: Mapping[str, str] | None,
) -> TtyInfo | None:
    """Pure translation of what udev reports into our record; None when it is not a USB
    serial port we could ever write into a config file."""
    if devnode is None or interface_attrs is None or usb_device_path is None or usb_attrs is None:
        return None
    if not _SAFE_DEVNODE.fullmatch(devnode):
        log.warning("ignoring tty with an unsafe device name: %r", devnode)
        return None
    try:
        interface = int(interface_attrs.get("bInterfaceNumber", ""), 16)
    except ValueError:
        return None
    vid = usb_attrs.get("idVendor", "").lower()
    pid = usb_attrs.get("idProduct", "").lower()
    if not (re.fullmatch(r"[0-9a-f]{4}", vid) and re.fullmatch(r"[0-9a-f]{4}", pid)):
        return None
    return TtyInfo(
        devnode=devnode,
        sys_path=sys_path,
        usb_device=usb_device_path,
        usb_port=usb_device_path.rstrip("/").rsplit("/", 1)[-1],
        interface=interface,
        vid=vid,
        pid=pid,
    )


def _attrs(device: Any, names: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = device.attributes.asstring(name)
        except (KeyError, UnicodeDecodeError, OSError):
            continue
    return out


def tty_info(device: Any) -> TtyInfo | None:
    iface = device.find_parent("usb", "usb_interface")
    usb = device.find_parent("usb", "usb_device")
    return tty_info_from(
        device.device_node,
        device.sys_path,
        _attrs(iface, ("bInterfaceNumber",)) if iface is not None else None,
        usb.sys_path if usb is not None else None,
        _attrs(usb, ("idVendor", "idProduct")) if usb is not None else None,
    )


def usb_info(device: Any) -> UsbInfo | None:
    attrs = _attrs(device, ("idVendor", "idProduct"))
    vid, pid = attrs.get("idVendor", "").lower(), attrs.get("idProduct", "").lower()
    if not (re.fullmatch(r"[0-9a-f]{4}", vid) and re.fullmatch(r"[0-9a-f]{4}", pid)):
        return None
    path = str(device.sys_path)
    return UsbInfo(sys_path=path, usb_port=path.rstrip("/").rsplit("/", 1)[-1], vid=vid, pid=pid)


def sound_card(device: Any) -> SoundCard | None:
    """A `sound` device as a card (its id checked as the kernel keeps ids); None for the
    control and PCM nodes (controlC0, pcmC0D0p) and anything unusable."""
    cards = cards_from_sysfs({str(device.sys_path): _attrs(device, ("id", "number"))})
    return cards[0] if cards else None


def read_card(card: SoundCard) -> SoundCard | None:
    """`card` as sysfs says it is now (its id can be renamed in place); None once it is gone."""
    attrs = {}
    for name in ("id", "number"):
        try:
            with open(f"{card.sys_path}/{name}", encoding="ascii") as f:
                attrs[name] = f.read()
        except (OSError, UnicodeDecodeError):
            return None
    cards = cards_from_sysfs({card.sys_path: attrs})
    return cards[0] if cards else None


def list_sound_cards(context: Any = None) -> list[SoundCard]:
    ctx = context if context is not None else pyudev.Context()
    found = (sound_card(d) for d in ctx.list_devices(subsystem="sound"))
    return [card for card in found if card is not None]


def list_usb_devices(context: Any = None) -> list[UsbInfo]:
    ctx = context if context is not None else pyudev.Context()
    found = (usb_info(d) for d in ctx.list_devices(subsystem="usb", DEVTYPE="usb_device"))
    return [info for info in found if info is not None]


def list_ttys(context: Any = None) -> list[TtyInfo]:
    """The USB serial ttys plugged in now (one sysfs walk, no monitor)."""
    ctx = context if context is not None else pyudev.Context()
    present: list[TtyInfo] = []
    for device in ctx.list_devices(subsystem="tty"):
        info = tty_info(device)
        if info is not None:
            present.append(info)
    return present


class UdevWatcher:
    """Feeds tty and USB-device add/remove events to callbacks from the event loop itself."""

    def __init__(
        self,
        on_event: Callable[[TtyEvent], None],
        on_usb: Callable[[UsbEvent], None] | None = None,
        on_sound: Callable[[SoundEvent], None] | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self._on_event = on_event
        self._on_lost = on_lost  # events were lost: the caller re-lists what is plugged in
        self._on_usb = on_usb
        self._on_sound = on_sound
        self._context = pyudev.Context()
        self._monitor: Any = None

    def start(self) -> list[TtyInfo]:
        """Start watching, then list what is already plugged in."""
        self._monitor = pyudev.Monitor.from_netlink(self._context)
        self._monitor.filter_by("tty")
        if self._on_usb is not None:
            self._monitor.filter_by("usb", "usb_device")
        if self._on_sound is not None:
            self._monitor.filter_by("sound")
        self._monitor.start()
        asyncio.get_running_loop().add_reader(self._monitor.fileno(), self._drain)
        return list_ttys(self._context)

    def ttys(self) -> list[TtyInfo]:
        return list_ttys(self._context)

    def usb_devices(self) -> list[UsbInfo]:
        return list_usb_devices(self._context)

    def sound_cards(self) -> list[SoundCard]:
        return list_sound_cards(self._context)

    def why_not_watching(self) -> str | None:
        """None while udev events reach the daemon (the watchdog's check)."""
        return None if self._monitor is not None else "the udev monitor is closed"

    def _drain(self) -> None:
        while True:
            try:
                device = self._monitor.poll(timeout=0)
            except OSError as exc:  # a netlink overrun must not kill the daemon
                log.warning("udev monitor: %s", exc)
                self._lost()
                return
            if device is None:
                return
            action = device.action or ""
            if action not in ("add", "remove", "change", "bind"):
                continue
            kind = "remove" if action == "remove" else "add"
            try:
                self._dispatch(device, kind)
            except Exception:
                # A bug in handling one event must not lose the events queued behind it,
                # nor end the watch (the reader stays; the next event is handled), nor lose
                # that stick for good: what is plugged in is listed again.
                log.exception("udev event %s %s not handled", kind, device.sys_path)
                self._lost()

    def _lost(self) -> None:
        if self._on_lost is not None:
            self._on_lost()

    def _dispatch(self, device: Any, kind: str) -> None:
        if device.subsystem == "usb":
            if self._on_usb is not None and device.device_type == "usb_device":
                info = usb_info(device) if kind == "add" else None
                self._on_usb(UsbEvent(action=kind, sys_path=device.sys_path, info=info))
            return
        if device.subsystem == "sound":
            if self._on_sound is not None:  # change: re-read (its id may be renamed)
                card = sound_card(device) if kind == "add" else None
                self._on_sound(SoundEvent(action=kind, sys_path=device.sys_path, card=card))
            return
        info_tty = tty_info(device) if kind == "add" else None
        self._on_event(TtyEvent(action=kind, sys_path=device.sys_path, info=info_tty))

    def stop(self) -> None:
        if self._monitor is not None:
            asyncio.get_running_loop().remove_reader(self._monitor.fileno())
            self._monitor = None
