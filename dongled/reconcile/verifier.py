"""Verifying: waiting until each device Asterisk was told about runs its own IMEI.

Separate from the pass because a verification outlives it (it runs as a task of its own, for
up to the verify window) and keeps its own books: which devices are verified, and which
verification of each device is the current one. A newer pass's (or the ladder's restart's)
supersedes an older one, which then neither settles nor reports that device: overlapping
pollers raced, and each said "did not come up".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Protocol

from dongled.asterisk.device import DeviceControl, DeviceEntry
from dongled.asterisk.devicepoll import device_polls
from dongled.core.errors import AmiError
from dongled.drivers.base import Driver
from dongled.hotplug.prober import completed
from dongled.hotplug.sticks import Stick
from dongled.reconcile.plan import Expect, Plan
from dongled.reconcile.seen import Seen
from dongled.telemetry.eventlog import Event, emit
from dongled.telemetry.metrics import Metrics

log = logging.getLogger(__name__)


class Sticks(Protocol):
    """What a verification asks of the identified sticks."""

    def stick_with(self, imei: str) -> Stick | None: ...
    def back(self, imei: str) -> float | None: ...  # s since it left, once it is back


def to_verify(p: Plan, waiting: Mapping[str, Expect]) -> dict[str, Expect]:
    """What a pass verifies: a device it told Asterisk nothing new about, and that a
    verification already waits for (`waiting`), is not waited for twice (passes follow
    each other closely)."""
    told = set(p.port_changes) | set(p.start)
    return {
        name: want
        for name, want in p.expect.items()
        if p.reload or name in told or waiting.get(name) != want
    }


def stale(
    verified: Mapping[str, str], p: Plan, asterisk: Mapping[str, DeviceEntry] | None
) -> list[str]:
    """The verified devices a pass no longer counts as verified: re-pointed or stopped by
    it, or (when Asterisk could be listed) gone, down or on another IMEI."""
    out = []
    for name, imei in verified.items():
        entry = (asterisk or {}).get(name)
        down = entry is None or not entry.connected or entry.imei_state != imei
        if name in p.port_changes or name in p.stop or (asterisk is not None and down):
            out.append(name)
    return out


class Verifier:
    def __init__(
        self,
        seen: Seen,
        ami: DeviceControl,
        driver: Driver,
        sticks: Sticks,
        *,
        conf_path: str,
        timeout: float,
        metrics: Metrics,
        publish: Callable[[], None],
        request: Callable[[bool], None],
        recovered: Callable[[str], None],
        failing: Callable[[str, str, str | None, str], None],
    ) -> None:
        self._seen = seen  # its listing: renewed by each poll
        self._ami = ami
        self._driver = driver
        self._sticks = sticks
        self._conf_path = conf_path
        self._timeout = timeout
        self._metrics = metrics
        self._publish = publish
        self._request = request  # an urgent pass: a device came up on the wrong stick
        self._recovered = recovered  # usb_port: its stick works again
        self._failing = failing  # usb_port, reason, device, sys_path
        self.verified: dict[str, str] = {}  # section -> IMEI Asterisk was seen running
        self._verifying: dict[str, object] = {}  # device -> its current verification
        self._waiting_for: dict[str, Expect] = {}  # what the current verifications wait for

    def needed(self, p: Plan) -> dict[str, Expect]:
        """What pass `p` verifies (see `to_verify`)."""
        return to_verify(p, self._waiting_for)

    def forget(self, name: str) -> None:
        """`name` is verified no more (it was found on another stick)."""
        self.verified.pop(name, None)

    def forget_stale(self, p: Plan) -> None:
        """Before pass `p` acts: drop what it no longer counts as verified (see `stale`)."""
        for name in stale(self.verified, p, self._seen.asterisk):
            del self.verified[name]

    def window(self) -> float:
        """How long a device may take to report its IMEI: a driver that opens devices on a
        timer (RE: its [general] interval) may leave one that failed to open for a whole
        interval, so it gets that on top (read from its config at each pass: an admin may
        change it; `Driver.open_interval` reads it)."""
        interval = self._driver.open_interval
        if interval is None:
            return self._timeout
        try:
            with open(self._conf_path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError:
            text = ""
        return self._timeout + interval(text)

    async def _window(self) -> float:
        # The file read in a thread: a slow disk must not hold the event loop.
        if self._driver.open_interval is None:
            return self._timeout
        return await asyncio.to_thread(self.window)

    async def verify(self, expect: dict[str, Expect]) -> None:
        """Wait until each device in `expect` runs its IMEI; journal each outcome once. This
        verification becomes the current one of its devices: an older one drops them."""
        me, mine = object(), dict(expect)
        for name, want in mine.items():
            self._verifying[name] = me
            self._waiting_for[name] = want

        def drop_superseded() -> None:
            for name in list(expect):
                if self._verifying.get(name) is not me:
                    del expect[name]

        try:
            window = await self._window()
            drop_superseded()
            async for poll in device_polls(self._ami, expect, window):
                drop_superseded()
                entries = poll.entries
                seen = self._seen
                seen.asterisk = entries if poll.whole else {**(seen.asterisk or {}), **entries}
                if self._settled(expect, entries):
                    self._publish()
        except AmiError:
            return  # reconnect brings a full pass, which verifies again
        finally:
            drop_superseded()
            for name in mine:
                if self._verifying.get(name) is me:
                    del self._verifying[name]
                    self._waiting_for.pop(name, None)
        for name, want in expect.items():
            self._emit(
                Event.NOT_VERIFIED,
                "device %s did not come up with IMEI %s within %g s",
                name,
                want.imei,
                window,
                device=name,
                imei=want.imei,
            )
            stick = self._sticks.stick_with(want.imei)
            if stick is not None:
                reason = f"device {name} did not come up within {window:g} s"
                self._failing(stick.usb_port, reason, name, stick.usb_device)
        self._publish()

    def _settled(self, expect: dict[str, Expect], entries: dict[str, DeviceEntry]) -> bool:
        """Take out of `expect` each device that reports an IMEI: verified, or wrong and
        handed to the next pass. True if any was taken out."""
        changed = False
        for name, want in list(expect.items()):
            entry = entries.get(name)
            if entry is None or not entry.imei_state:
                continue
            del expect[name]
            changed = True
            if want.matches(entry.imei_state, entry.imsi_state) and entry.connected:
                self._running_own(name, want, entry)
            else:
                self._request(True)  # the next pass stops and parks it
        return changed

    def _running_own(self, name: str, want: Expect, entry: DeviceEntry) -> None:
        # Said once per return of the device: a pass that finds it still running on its own
        # stick (a reload for another device re-verifies it) says nothing.
        known = self.verified.get(name) == want.imei
        self.verified[name] = want.imei
        stick = self._sticks.stick_with(want.imei)
        if stick is not None:
            if stick.identity is not None:  # what the lean probe left out
                self._complete(stick, entry)
            self._recovered(stick.usb_port)
        gone = self._sticks.back(want.imei)
        if gone is not None:
            self._metrics.recovery_seconds.observe(gone)
        if known:
            return
        self._emit(
            Event.VERIFIED,
            "device %s runs IMEI %s on %s",
            name,
            want.imei,
            entry.data_state,
            device=name,
            imei=want.imei,
            data=entry.data_state,
            audio=entry.audio_state,
        )

    def _complete(self, stick: Stick, entry: DeviceEntry) -> None:
        """Fill in what the daemon's probe leaves out (model, voice) from the listing of the
        device that runs the stick; a voice Asterisk reports missing is said once, as the
        probe of a SIM-less stick says it."""
        before = stick.identity
        assert before is not None
        after = stick.identity = completed(before, entry)
        if before.voice is None and after.voice is False:
            self._emit(
                Event.STICK_LIMITED,
                "stick IMEI %s: no voice (%s reports Voice: No): calls cannot work on it; it "
                "needs a voice-enabled firmware",
                after.imei,
                self._driver.name,
                imei=after.imei,
            )

    def _emit(
        self,
        event: Event,
        message: str,
        *args: object,
        device: str | None = None,
        imei: str | None = None,
        data: str | None = None,
        audio: str | None = None,
    ) -> None:
        """A journal event of this driver's (`DONGLED_DRIVER` says whose device it is)."""
        emit(
            event,
            message,
            *args,
            device=device,
            imei=imei,
            data=data,
            audio=audio,
            driver=self._driver.name,
        )
