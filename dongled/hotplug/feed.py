"""udev's view fed to the rooms that keep the sticks: ttys and sound cards to the registry,
USB devices to fleet health (sticks still in storage mode). At start, what is plugged in
already; then the live events; and when events were lost (a netlink overrun, a bug in
handling one), the ttys listed again a moment later. Separate from `udev` (pyudev on the
event loop) and from the daemon's wiring, which only starts and stops it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from dongled.hotplug.fleet import FleetHealth
from dongled.hotplug.registry import StickRegistry
from dongled.hotplug.udev import SoundEvent, TtyInfo, UdevWatcher, UsbEvent

log = logging.getLogger(__name__)

RESYNC_AFTER = 1.0  # udev events lost: the ttys are listed again this much later


class UdevFeed:
    def __init__(
        self,
        registry: StickRegistry,
        fleet: FleetHealth,
        spawn: Callable[[Awaitable[None], str], object],
        uac: bool,  # a driver with USB audio: sound cards matter (which card is whose)
    ) -> None:
        self._registry, self._fleet, self._spawn, self._uac = registry, fleet, spawn, uac
        sound = registry.on_sound_event if uac else None
        self.watcher = UdevWatcher(registry.on_tty_event, fleet.on_usb_event, sound, self._lost)
        self._resync: asyncio.TimerHandle | None = None

    def start(self) -> list[TtyInfo]:
        """Watch, and feed what is plugged in now: the USB devices and the sound cards at
        once; the ttys are returned, for the registry once the drivers' ports are known."""
        present = self.watcher.start()
        for usb in self.watcher.usb_devices():
            self._fleet.on_usb_event(UsbEvent(action="add", sys_path=usb.sys_path, info=usb))
        for card in self.watcher.sound_cards() if self._uac else ():
            self._registry.on_sound_event(
                SoundEvent(action="add", sys_path=card.sys_path, card=card)
            )
        return present

    def stop(self) -> None:
        if self._resync is not None:
            self._resync.cancel()
        self.watcher.stop()

    def _lost(self) -> None:
        """udev events were lost: list the ttys again a moment later (once per burst)."""
        if self._resync is None:
            self._resync = asyncio.get_running_loop().call_later(RESYNC_AFTER, self._relist)

    def _relist(self) -> None:
        self._resync = None
        self._spawn(self._relist_now(), "udev resync")

    async def _relist_now(self) -> None:
        try:
            present = await asyncio.to_thread(self.watcher.ttys)
            self._registry.resync(present)
        except Exception:
            log.exception("listing the ttys again failed; trying again")
            self._lost()
