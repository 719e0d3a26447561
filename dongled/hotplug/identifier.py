"""Identifying one stick: when to probe it (as soon as its ports are there, again with backoff
after a failure, patiently while it boots), the probe itself, and what its answer makes of
the stick.

Apart from the registry (registry.py), which keeps the sticks as udev reports them, because
this is the conversation with one stick over time; it reaches the rest of the daemon only
through the callables it is given.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from dongled.config.settings import Settings
from dongled.core.backoff import delay
from dongled.hotplug.prober import Found, Listing, NotFound, identify
from dongled.hotplug.sticks import Stick, StickState
from dongled.modem import models
from dongled.modem.conversation import ProbeTimeouts
from dongled.modem.identity import Identity, limitations
from dongled.telemetry.eventlog import Event, emit
from dongled.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

RETRY_BASE, RETRY_MAX = 2.0, 60.0
BOOT_RETRY = 1.0  # first re-probe of a new stick that is still silent (it may be booting)


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentifierHooks:
    """What identifying a stick asks of the rest of the daemon."""

    request: Callable[[bool], None]  # a pass is wanted (urgent or not)
    wake: Callable[[], None]  # something changed that a waiting pass may care about
    changed: Callable[[], None]  # a stick's state changed: publish the status
    failing: Callable[[str, str, str | None, str], None]  # usb_port, reason, device, sys_path
    spawn: Callable[[Awaitable[None], str], object]
    listing: Listing  # a fresh device listing, for a port another process holds
    current: Callable[[Stick], bool]  # still plugged in (not replaced by a new stick)


class Identifier:
    """Probes sticks on timers and records what each one is."""

    def __init__(
        self,
        settings: Settings,
        hooks: IdentifierHooks,
        *,
        metrics: Metrics,
        counters: dict[str, int],
        lock_files: bool,
    ) -> None:
        self.settings = settings
        self._hooks = hooks
        self._metrics = metrics
        self._counters = counters
        self._lock_files = lock_files  # False: the driver marks its ttys by TIOCEXCL/flock
        self._timers: dict[str, asyncio.TimerHandle] = {}  # usb_device -> next probe
        self._timeouts = ProbeTimeouts(
            first=min(1.0, settings.at_timeout), command=settings.at_timeout
        )

    def close(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    def cancel(self, usb_device: str) -> None:
        """No more probes of the stick at `usb_device` (it is gone)."""
        timer = self._timers.pop(usb_device, None)
        if timer is not None:
            timer.cancel()

    def schedule(self, stick: Stick, wait: float) -> None:
        """Probe `stick` in `wait` seconds (instead of any probe scheduled before)."""
        key = stick.usb_device
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.pop(key, None)
            if self._hooks.current(stick):
                self._hooks.spawn(self._probe(stick), f"probe {stick.usb_port}")

        self._timers[key] = loop.call_later(wait, fire)

    async def _probe(self, stick: Stick) -> None:
        # A booting stick's re-probe holds no pass: it stays BOOTING (with its reason).
        if stick.state not in (StickState.BOOTING, StickState.PROBING):
            stick.state = StickState.PROBING
            self._hooks.changed()
        layouts = models.candidates(stick.vid, stick.pid, frozenset(stick.ports))
        if not layouts and time.monotonic() - stick.appeared < self.settings.batch_max_wait:
            # Ports still arriving (a known model needs its data and audio ports): wait,
            # never probe half a stick, and do not count it as a failure.
            stick.state = StickState.SETTLING
            self.schedule(stick, self.settings.settle_time)
            return
        try:
            result: Found | NotFound = await identify(
                dict(stick.ports),
                layouts,
                lock_dir=self.settings.lock_dir,
                timeouts=self._timeouts,
                probe_timeout=self.settings.probe_timeout,
                listing=self._hooks.listing,
                counted=self._count_probe,
                family=models.family(stick.vid, stick.pid),
                lock_files=self._lock_files,
                lean=True,  # the line waits for every command: only what binding needs
            )
        except Exception as exc:
            # A bug (ours, pyserial's) must not leave the stick "probing" for good, holding
            # every pass back and never identified: a failed probe, tried again with backoff.
            log.exception("probe of the stick at USB %s failed unexpectedly", stick.usb_port)
            result = NotFound(error=f"probe failed unexpectedly: {type(exc).__name__}: {exc}")
        if not self._hooks.current(stick):
            return  # unplugged while we talked to it
        if isinstance(result, Found):
            self.identified(stick, result.identity, result.data, result.audio, result.source)
            return
        stick.failures += 1
        age = time.monotonic() - stick.appeared
        if result.hung and not stick.answered and age < self.settings.boot_grace:
            self._booting(stick, result.error, age)
            return
        stick.state = StickState.BUSY if result.busy else StickState.FAILED
        stick.error = result.error
        self._metrics.probe_failures.inc()
        emit(
            Event.PROBE_FAILED,
            "cannot identify stick at USB %s: %s",
            stick.usb_port,
            result.error,
            usb_port=stick.usb_port,
        )
        self.schedule(stick, delay(stick.failures, first=RETRY_BASE, cap=RETRY_MAX))
        if result.hung:
            self._hooks.failing(stick.usb_port, result.error, None, stick.usb_device)
        self._changed()

    def _count_probe(self) -> None:
        self._counters["probes"] += 1

    def _booting(self, stick: Stick, error: str, age: float) -> None:
        """A stick whose ttys appeared recently and that has not answered yet is booting, not
        hung: real sticks are silent for seconds after enumeration (longer after a mode
        switch), and resetting one restarts its boot. Probed again with backoff until
        `boot_grace`; it holds no other stick back (BOOTING is not in flight)."""
        left = self.settings.boot_grace - age
        wait = delay(stick.failures, first=BOOT_RETRY, cap=left)
        stick.state = StickState.BOOTING
        stick.error = f"not answering yet, {age:.1f} s after it appeared ({error})"
        log.info(
            "stick at USB %s not answering yet %.1f s after it appeared (booting?): %s; "
            "probing again in %.1f s",
            stick.usb_port,
            age,
            error,
            wait,
        )
        self.schedule(stick, wait)
        self._changed()

    def identified(self, stick: Stick, ident: Identity, data: str, audio: str, source: str) -> None:
        stick.identity, stick.data, stick.audio, stick.source = ident, data, audio, source
        stick.state = StickState.IDENTIFIED
        stick.answered = True
        stick.error = ""
        stick.failures = 0
        emit(
            Event.IDENTIFIED,
            "stick at USB %s is IMEI %s (%s %s, by %s) on %s / %s",
            stick.usb_port,
            ident.imei,
            ident.manufacturer or "?",
            ident.model or "?",
            source,
            data,
            audio,
            imei=ident.imei,
            data=data,
            audio=audio,
            usb_port=stick.usb_port,
        )
        for what in limitations(ident, source):
            emit(
                Event.STICK_LIMITED,
                "stick IMEI %s: %s",
                ident.imei,
                what,
                imei=ident.imei,
                usb_port=stick.usb_port,
            )
        self._hooks.request(False)
        self._changed()

    def _changed(self) -> None:
        self._hooks.wake()
        self._hooks.changed()
