"""The plugged-in sticks: udev events in, identified sticks out.

Ports are grouped into sticks by their USB device; a known model is probed as soon as all its
interfaces are there, an unknown one after `settle_time`. A stick that has not answered since
its ttys appeared is booting, not hung, until `boot_grace`. Removal of any port of a stick
counts as the stick gone: its old ports are fenced and a pass is asked for at once.
When and how each stick is probed is identifier.py's.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from dongled.asterisk.device import DeviceEntry
from dongled.config.settings import Settings
from dongled.hotplug.fleet import FleetHealth
from dongled.hotplug.identifier import Identifier, IdentifierHooks
from dongled.hotplug.prober import Listing, asterisk_holds, identity_from
from dongled.hotplug.soundcards import SoundCard, card_of
from dongled.hotplug.sticks import Located, Stick, StickState, located
from dongled.hotplug.udev import SoundEvent, TtyEvent, TtyInfo, read_card
from dongled.modem import models
from dongled.modem.fences import Fences
from dongled.telemetry.eventlog import Event, emit
from dongled.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

ARRIVAL_QUIET = 0.1  # the ports of sticks on one hub appear within ms of each other
GONE_KEEP = 86400.0  # a stick gone longer is not timed when it comes back ...
GONE_MAX = 1024  # ... nor kept beyond this many vanished sticks
ARRIVALS_KEPT = 64  # enough to tell a storm from a stick on its own


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryHooks:
    """What the registry asks of the rest of the daemon."""

    request: Callable[[bool], None]  # a pass is wanted (urgent: a stick vanished)
    wake: Callable[[], None]  # something changed that a waiting pass may care about
    failing: Callable[[str, str, str | None, str], None]  # usb_port, reason, device, sys_path
    spawn: Callable[[Awaitable[None], str], object]
    listing: Listing  # a fresh DongleShowDevices, for a port another process holds
    # A stick's state changed (appeared, probing, booting, failed, identified, gone): the
    # daemon publishes its status then, so `dongled status` never waits for the next pass.
    changed: Callable[[], None] = lambda: None


class StickRegistry:
    def __init__(
        self,
        settings: Settings,
        hooks: RegistryHooks,
        *,
        fences: Fences,
        fleet: FleetHealth,
        metrics: Metrics,
        counters: dict[str, int],
        lock_files: bool = True,
    ) -> None:
        self.settings = settings
        self._lock_files = lock_files  # False: the driver marks its ttys by TIOCEXCL/flock
        self._hooks = hooks
        self._fences = fences
        self._fleet = fleet
        self._metrics = metrics
        self.sticks: dict[str, Stick] = {}  # usb_device sysfs path -> stick
        self._by_syspath: dict[str, str] = {}  # tty sys_path -> usb_device
        self.cards: dict[str, SoundCard] = {}  # ALSA card sys_path -> card (USB audio)
        self._gone_at: dict[str, float] = {}  # IMEI -> when its stick vanished
        self.last_removal = 0.0
        self.last_arrival = 0.0
        self._arrivals: deque[float] = deque(maxlen=ARRIVALS_KEPT)  # new sticks, when
        self._identifier = Identifier(
            settings,
            IdentifierHooks(
                request=hooks.request,
                wake=hooks.wake,
                changed=hooks.changed,
                failing=hooks.failing,
                spawn=hooks.spawn,
                listing=hooks.listing,
                current=lambda stick: self.sticks.get(stick.usb_device) is stick,
            ),
            metrics=metrics,
            counters=counters,
            lock_files=lock_files,
        )

    def close(self) -> None:
        self._identifier.close()

    # ---- what the others read --------------------------------------------------------

    def located(self) -> list[Located]:
        self.refresh_cards()
        return located(self.sticks.values())

    def stick_with(self, imei: str) -> Stick | None:
        for stick in self.sticks.values():
            if stick.identity is not None and stick.identity.imei == imei:
                return stick
        return None

    def awaited(self, trailing: bool = False) -> float:
        """How long a pass should still wait (0: not at all): while sticks are settling or
        being probed (inf: the coalescer is woken when that changes); and, for a pass that
        follows another closely (`trailing`: sticks are coming back in a storm), until
        ARRIVAL_QUIET s after the last port appeared (the seconds left: nothing wakes the
        coalescer when a quiet ends). A stick that vanished and is not back yet is not
        waited for: parking makes it safe to bring each line back on its own, as soon as its
        own stick is identified."""
        if any(s.in_flight for s in self.sticks.values()):
            return math.inf
        left = self.last_arrival + ARRIVAL_QUIET - time.monotonic() if trailing else 0.0
        return max(0.0, left)

    def arrived_between(self, start: float, end: float) -> bool:
        """Whether a new stick appeared between `start` and `end` (monotonic seconds)."""
        return any(start <= t <= end for t in self._arrivals)

    def _note_gone(self, imei: str, now: float) -> None:
        """Remember when a stick vanished (for the time it takes to come back), forgetting
        the ones gone for good: a stick replaced, not returned, must not be kept forever."""
        self._gone_at.pop(imei, None)  # re-inserted last: the dict stays oldest-first
        self._gone_at[imei] = now
        while self._gone_at:
            oldest, at = next(iter(self._gone_at.items()))
            if now - at <= GONE_KEEP and len(self._gone_at) <= GONE_MAX:
                break
            del self._gone_at[oldest]

    def back(self, imei: str) -> float | None:
        """The stick with `imei` runs on its device again: seconds since it vanished, if it did."""
        gone = self._gone_at.pop(imei, None)
        return None if gone is None else time.monotonic() - gone

    # ---- ALSA cards (modules with USB audio) -----------------------------------------

    def on_sound_event(self, event: SoundEvent) -> None:
        if event.action == "remove":
            if self.cards.pop(event.sys_path, None) is not None:
                self._cards_moved(urgent=True)  # a section may name a card now gone
        elif event.card is not None and self.cards.get(event.sys_path) != event.card:
            self.cards[event.sys_path] = event.card
            self._cards_moved(urgent=False)

    def refresh_cards(self) -> None:
        """Re-read each card from sysfs, so that a pass plans with the ids as they are now
        (an id can be renamed in place, and a rename may come without a uevent)."""
        for path, card in list(self.cards.items()):
            now = read_card(card)
            if now is None:
                del self.cards[path]
            else:
                self.cards[path] = now
        self._assign_cards()

    def _assign_cards(self) -> bool:
        """Give each stick the one card under its USB device; True if an identified stick's
        card changed (its section's alsadev= must follow)."""
        changed = False
        for stick in self.sticks.values():
            card = card_of(stick.usb_device, self.cards.values())
            new = card.id if card is not None else None
            changed |= stick.card != new and stick.identity is not None
            stick.card = new
        return changed

    def _cards_moved(self, *, urgent: bool) -> None:
        if self._assign_cards():
            self._hooks.request(urgent)
        self._hooks.wake()

    # ---- udev ------------------------------------------------------------------------

    def on_tty_event(self, event: TtyEvent) -> None:
        if event.action == "remove":
            usb = self._by_syspath.get(event.sys_path)
            if usb is not None:
                self.remove_stick(usb)
        elif event.info is not None:
            self.add_port(event.info)

    def resync(self, present: list[TtyInfo]) -> None:
        """Make the sticks what udev lists now (after udev events were lost: a netlink
        overrun, or a bug handling one): ports gone are removed, new ones added."""
        listed = {info.sys_path for info in present}
        for sys_path, usb_device in list(self._by_syspath.items()):
            if sys_path not in listed:
                self.remove_stick(usb_device)
        for info in present:
            self.add_port(info)

    def add_port(self, info: TtyInfo) -> None:
        stick = self.sticks.get(info.usb_device)
        if stick is None:
            stick = Stick(
                usb_device=info.usb_device,
                usb_port=info.usb_port,
                vid=info.vid,
                pid=info.pid,
                appeared=time.monotonic(),
            )
            self._arrivals.append(stick.appeared)
            self.sticks[info.usb_device] = stick
            self._assign_cards()
            self._fleet.stick_added(info.usb_port, [st.usb_port for st in self.sticks.values()])
            emit(
                Event.APPEARED,
                "stick appeared at USB %s (%s:%s)",
                info.usb_port,
                info.vid,
                info.pid,
                usb_port=info.usb_port,
            )
        if not stick.add(info):
            return
        self._by_syspath[info.sys_path] = info.usb_device
        if stick.identity is not None and not models.used(stick.vid, stick.pid, info.interface):
            # A port no layout uses (an LTE module's second AT port, after the stick was
            # identified and perhaps bound): the identity stands, nothing to probe again.
            return
        stick.forget_identity()
        stick.state = StickState.SETTLING
        stick.last_change = self.last_arrival = time.monotonic()
        self._changed()
        interfaces = frozenset(stick.ports)
        delay = (
            0.0 if models.complete(stick.vid, stick.pid, interfaces) else self.settings.settle_time
        )
        self._identifier.schedule(stick, delay)

    def remove_stick(self, usb_device: str) -> None:
        stick = self.sticks.pop(usb_device, None)
        if stick is None:
            return
        for path in stick.sys_paths:
            self._by_syspath.pop(path, None)
        self._identifier.cancel(usb_device)
        stick.state = StickState.FAILED  # a running probe sees it is no longer current
        for port in stick.ports.values():
            self._fences.fence(port)
        self.last_removal = time.monotonic()
        imei = stick.identity.imei if stick.identity is not None else None
        self._fleet.dropped(stick.usb_port)
        emit(
            Event.GONE,
            "stick at USB %s is gone",
            stick.usb_port,
            imei=imei,
            data=stick.data,
            audio=stick.audio,
            usb_port=stick.usb_port,
        )
        if imei is not None:
            self._note_gone(imei, time.monotonic())
            self._metrics.reenumerations.inc()
            self._hooks.request(True)
        self._changed()

    def _changed(self) -> None:
        self._hooks.wake()
        self._hooks.changed()

    # ---- what Asterisk says of a stick ------------------------------------------------

    def learn_from_asterisk(self, entries: Mapping[str, DeviceEntry]) -> None:
        """chan_dongle's IMEIState on the port it holds is the freshest word on that stick."""
        for entry in entries.values():
            if not asterisk_holds(entry, self.settings.lock_dir, self._lock_files):
                continue
            for stick in self.sticks.values():
                if entry.data_state not in stick.ports.values():
                    continue
                if stick.identity is None or stick.identity.imei != entry.imei_state:
                    audio = _voice_tty(stick, entry.data_state, entry.audio_state)
                    self._identifier.identified(
                        stick, identity_from(entry), entry.data_state, audio, "asterisk"
                    )


def _voice_tty(stick: Stick, data: str, listed: str) -> str:
    """The voice tty of a stick Asterisk runs on `data`: the listed one, or, for a device whose
    voice is its USB sound card (whose listing names the ALSA device, or nothing), the tty its
    model's layout pairs with `data`, as a probe would have found it."""
    if listed in stick.ports.values():
        return listed
    for lay in models.candidates(stick.vid, stick.pid, frozenset(stick.ports)):
        if stick.ports.get(lay.data) == data:
            return stick.ports[lay.audio]
    return listed
