"""The hung-stick recovery ladder at work: when to climb it, the steps themselves, and the
follow-up that notices a stick which stays dead (no new event would ever come from it)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING, Protocol

from dongled.core.errors import AmiError, RecoveryError
from dongled.modem import usbreset
from dongled.modem.probe import answers_at
from dongled.reconcile.plan import Expect
from dongled.recovery.ladder import ORDER, Ladder, Step
from dongled.telemetry.eventlog import Event, emit

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from dongled.config.settings import RecoverySettings, Settings
    from dongled.hotplug.sticks import Stick
    from dongled.hotplug.udev import UsbInfo
    from dongled.reconcile.lanes import Lanes
    from dongled.telemetry.metrics import Metrics


class Connection(Protocol):
    @property
    def connected(self) -> bool: ...


log = logging.getLogger(__name__)


def _read_int(sys_path: str, attribute: str) -> int | None:
    try:
        with open(os.path.join(sys_path, attribute), encoding="ascii") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def ladder_for(rec: RecoverySettings) -> Ladder:
    """The ladder with the steps the settings enable."""
    enabled = {
        Step.RESTART: rec.restart,
        Step.REAUTHORIZE: rec.reauthorize,
        Step.USB_RESET: rec.usb_reset,
        Step.POWER_CYCLE: rec.power_cycle,
    }
    return Ladder(
        steps=tuple(step for step in ORDER if enabled[step]),
        backoff=rec.backoff,
        backoff_max=rec.backoff_max,
        max_rounds=rec.max_rounds,
    )


class Recovery:
    """Climbs `ladder` for failing sticks: restarts and verifies their devices through
    `lanes`, resets the sticks themselves, and `publish`es each step for status."""

    def __init__(
        self,
        settings: Settings,
        ladder: Ladder,
        lanes: Lanes,
        sticks: Mapping[str, Stick],  # the registry's plugged-in sticks
        ami: Connection,
        metrics: Metrics,
        spawn: Callable[[Awaitable[None], str], object],
        publish: Callable[[], None],
        request: Callable[[bool], None] = lambda _urgent: None,  # a reconcile pass
    ) -> None:
        self._settings, self.ladder, self._lanes, self._sticks = settings, ladder, lanes, sticks
        self._ami, self._metrics, self._spawn, self._publish = ami, metrics, spawn, publish
        self._request = request
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._given_up_journaled: set[str] = set()  # ports whose giving-up was journaled
        self._closed = False

    def close(self) -> None:
        self._closed = True
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    def failing(self, usb_port: str, reason: str, device: str | None, sys_path: str) -> None:
        self._spawn(self._guarded(usb_port, reason, device, sys_path), f"recover {usb_port}")

    async def _guarded(self, usb_port: str, reason: str, device: str | None, sys_path: str) -> None:
        """A bug in one climb must not end this stick's ladder for good (nothing else would
        ever look at it again): journaled, and looked at again after the ladder's backoff."""
        try:
            await self._recover(usb_port, reason, device, sys_path)
        except Exception as exc:
            log.exception("recovery of USB %s failed unexpectedly", usb_port)
            emit(
                Event.TASK_DIED,
                "recovery of USB %s failed: %s: %s; looking again in %g s",
                usb_port,
                type(exc).__name__,
                exc,
                self._settings.recovery.backoff,
                usb_port=usb_port,
                device=device,
            )
            self._follow_up(usb_port, reason, device, sys_path, self._settings.recovery.backoff)

    def stuck_in_storage(self, info: UsbInfo) -> None:
        """A stick still in storage mode after switch_limit (fleet health says so)."""
        reason = f"still in storage mode after {self._settings.switch_limit:g} s"
        self.failing(info.usb_port, reason, None, info.sys_path)

    def recovered(self, usb_port: str) -> None:
        timer = self._timers.pop(usb_port, None)
        if timer is not None:
            timer.cancel()
        if usb_port in self.ladder.ports:
            emit(Event.RECOVERED, "stick at USB %s works again", usb_port, usb_port=usb_port)
        self.ladder.succeeded(usb_port)
        self._given_up_journaled.discard(usb_port)

    def _healthy(self, usb_port: str) -> bool:
        for stick in self._sticks.values():
            if stick.usb_port == usb_port and stick.identity is not None:
                imei = stick.identity.imei
                return imei in self._lanes.verified.values() or all(
                    sec.imei != imei for sec in self._lanes.sections.values()
                )
        return False

    async def _modem_answers(self, usb_port: str) -> bool:
        """Whether the identified stick at `usb_port` answers AT on its data port now (a
        port its driver holds is not touched: False)."""
        for stick in self._sticks.values():
            if stick.usb_port == usb_port and stick.data:
                s = self._settings
                return await answers_at(stick.data, s.lock_dir, s.at_timeout)
        return False

    async def _recover(self, usb_port: str, reason: str, device: str | None, sys_path: str) -> None:
        r = self._settings.recovery
        if device is not None and self._ami.connected:
            entry = (await self._lanes.listing() or {}).get(device)
            if entry is not None and entry.calls not in ("", "0"):
                log.info("recovery of %s waits: %s calls on %s", usb_port, entry.calls, device)
                self._follow_up(usb_port, reason, device, sys_path, r.backoff)
                return
        now = time.monotonic()
        can_restart = device is not None and self._ami.connected
        step = self.ladder.next_step(usb_port, now, reason, has_device=can_restart)
        if step is None:
            why = self.ladder.given_up(usb_port)
            if why and usb_port not in self._given_up_journaled:
                self._given_up_journaled.add(usb_port)
                emit(
                    Event.GIVEN_UP,
                    "stick at USB %s: given up, %s",
                    usb_port,
                    why,
                    usb_port=usb_port,
                    device=device,
                )
                self._publish()
            elif not why:
                self._follow_up(
                    usb_port, reason, device, sys_path, self.ladder.wait_left(usb_port, now)
                )
            return
        if step is not Step.RESTART and device is not None and await self._modem_answers(usb_port):
            driver = self._lanes.lane_of(device).driver.name
            fault = f"{driver} did not bring {device} up ({reason})"
            emit(
                Event.DRIVER_FAULT,
                "stick at USB %s answers AT: %s; no USB step for a modem that works (see "
                "Asterisk's log for %s)",
                usb_port,
                fault,
                device,
                usb_port=usb_port,
                device=device,
            )
            self.ladder.modem_answers(usb_port, fault)
            self._publish()
            self._follow_up(
                usb_port, reason, device, sys_path, self.ladder.wait_left(usb_port, now)
            )
            return
        emit(
            Event.RECOVERY,
            "stick at USB %s: recovery step %s (%s)",
            usb_port,
            step.value,
            reason,
            usb_port=usb_port,
            device=device,
        )
        self._metrics.recoveries.labels(step=step.value).inc()
        try:
            await self._take_step(step, usb_port, device, sys_path)
        except (RecoveryError, AmiError) as exc:
            emit(
                Event.RECOVERY_FAILED,
                "stick at USB %s: step %s failed: %s",
                usb_port,
                step.value,
                exc,
                usb_port=usb_port,
                device=device,
            )
            if step is Step.RESTART:
                # Its stop may have gone through: no event would ever start the device again.
                # A pass does, once its ttys are let go (it retries with backoff until then).
                self._request(False)
        self._publish()
        self._follow_up(
            usb_port, reason, device, sys_path, self.ladder.wait_left(usb_port, time.monotonic())
        )

    async def _take_step(
        self, step: Step, usb_port: str, device: str | None, sys_path: str
    ) -> None:
        if step is Step.RESTART and device is not None:
            await self._lanes.restart_device(device)
            sec = self._lanes.sections.get(device)
            if sec is not None and sec.imei:
                want = Expect(imei=sec.imei, imsi=sec.imsi or None)
                self._spawn(self._lanes.verify({device: want}), "verify")
        elif step is Step.REAUTHORIZE:
            # In a thread: the kernel unbinds every driver of the stick inside this write.
            await asyncio.to_thread(usbreset.reauthorize, sys_path)
        elif step is Step.USB_RESET:
            busnum, devnum = _read_int(sys_path, "busnum"), _read_int(sys_path, "devnum")
            if busnum is None or devnum is None:
                raise RecoveryError(f"USB reset: no busnum/devnum under {sys_path}")
            # In a thread: the ioctl returns after re-enumeration, seconds for a hung stick,
            # and the other sticks' events must not wait for it.
            await asyncio.to_thread(usbreset.usb_reset, busnum, devnum)
        elif step is Step.POWER_CYCLE:
            await asyncio.to_thread(usbreset.power_cycle, usb_port)

    def _follow_up(
        self, usb_port: str, reason: str, device: str | None, sys_path: str, delay: float
    ) -> None:
        """Look again once the step had time to work: no new event may ever come from a
        stick that stays dead, so the ladder cannot wait for one."""
        old = self._timers.pop(usb_port, None)
        if old is not None:
            old.cancel()

        def check() -> None:
            self._timers.pop(usb_port, None)
            if self._closed:
                return
            if self._healthy(usb_port):
                self.recovered(usb_port)
            else:
                self.failing(usb_port, reason, device, sys_path)

        self._timers[usb_port] = asyncio.get_running_loop().call_later(delay, check)
