"""Fleet health: sticks stuck in storage (CD-ROM) mode, hub-wide drops, USB bus load."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from dongled.hotplug.udev import UsbEvent, UsbInfo
from dongled.modem import models
from dongled.telemetry.eventlog import Event, emit

# xHCI controllers run out of endpoints at about a dozen 3G sticks on one root bus.
STICKS_PER_BUS_WARN = 10


def hub_of(usb_port: str) -> str:
    """`1-1.3` hangs off hub `1-1`; `1-2` off root bus 1."""
    return usb_port.rsplit(".", 1)[0] if "." in usb_port else "usb" + usb_port.split("-", 1)[0]


class FleetHealth:
    def __init__(
        self,
        switch_limit: float,
        on_stuck: Callable[[UsbInfo], None],
        on_change: Callable[[], None],
    ) -> None:
        self.switch_limit = switch_limit
        self.switching: dict[str, tuple[UsbInfo, float]] = {}  # storage-mode sticks, since
        self._on_stuck = on_stuck
        self._on_change = on_change
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._drops: list[str] = []  # usb ports dropped since the last summary
        self._busy_buses: set[str] = set()

    def on_usb_event(self, event: UsbEvent) -> None:
        """Sticks still presenting their driver CD: shown as switching, flagged if stuck."""
        if event.action == "remove":
            if self.switching.pop(event.sys_path, None) is not None:
                timer = self._timers.pop(event.sys_path, None)
                if timer is not None:
                    timer.cancel()
                self._on_change()
            return
        info = event.info
        if info is None or (info.vid, info.pid) not in models.STORAGE_MODE:
            return
        if event.sys_path in self.switching:
            return
        self.switching[event.sys_path] = (info, time.monotonic())
        emit(
            Event.SWITCHING,
            "stick at USB %s is in storage (CD-ROM) mode %s:%s; waiting for usb_modeswitch",
            info.usb_port,
            info.vid,
            info.pid,
            usb_port=info.usb_port,
        )
        loop = asyncio.get_running_loop()
        self._timers[event.sys_path] = loop.call_later(
            self.switch_limit, self._stuck, event.sys_path
        )
        self._on_change()

    def _stuck(self, sys_path: str) -> None:
        self._timers.pop(sys_path, None)
        entry = self.switching.get(sys_path)
        if entry is None:
            return
        info = entry[0]
        emit(
            Event.SWITCH_STUCK,
            "stick at USB %s is still in storage mode after %g s: is usb_modeswitch installed "
            "and does its rule cover %s:%s?",
            info.usb_port,
            self.switch_limit,
            info.vid,
            info.pid,
            usb_port=info.usb_port,
        )
        self._on_stuck(info)
        self._on_change()

    def dropped(self, usb_port: str) -> None:
        self._drops.append(usb_port)

    def summarize_drops(self) -> None:
        """Several sticks of one hub dropping together is one event: the hub (power)."""
        drops, self._drops = self._drops, []
        by_hub: dict[str, list[str]] = {}
        for port in drops:
            by_hub.setdefault(hub_of(port), []).append(port)
        for hub, ports in by_hub.items():
            if len(ports) >= 2:
                emit(
                    Event.HUB_DROP,
                    "%d sticks on hub %s dropped together (likely a power dip on that hub): %s",
                    len(ports),
                    hub,
                    ", ".join(ports),
                    usb_port=hub,
                )

    def stick_added(self, usb_port: str, all_ports: Iterable[str]) -> None:
        bus = usb_port.split("-", 1)[0]
        count = sum(1 for p in all_ports if p.split("-", 1)[0] == bus)
        if count >= STICKS_PER_BUS_WARN and bus not in self._busy_buses:
            self._busy_buses.add(bus)
            emit(
                Event.USB_LIMIT,
                "%d sticks on USB bus %s: near what one USB controller can serve; spread "
                "sticks over more controllers if some fail to enumerate",
                count,
                bus,
                usb_port=bus,
            )

    def close(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
