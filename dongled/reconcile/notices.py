"""What a pass's plan found about the file and the sticks, said once while it lasts.

Separate from the pass because it is bookkeeping only: which finding (a section with no
stick to choose, ports from a template, an imei= that fails its check digit, a stick no
section names) was already said, so that a pass every few seconds does not repeat it.
"""

from __future__ import annotations

from collections.abc import Mapping

from dongled.conf.dongleconf import DeviceSection, inherited_message
from dongled.reconcile.plan import Plan, check_digit_message
from dongled.telemetry.eventlog import Event, emit


class Notices:
    def __init__(self, driver: str) -> None:
        self._driver = driver  # its name, for the journal
        self._ambiguous: dict[str, str] = {}
        self._inherited: set[str] = set()
        self._check_digit: set[str] = set()
        self._unbound: set[str] = set()

    def say(self, p: Plan, sections: Mapping[str, DeviceSection]) -> None:
        """Journal what `p` found that the last pass did not (`sections`: the file it read)."""
        for name, why in p.ambiguous.items():
            if self._ambiguous.get(name) != why:
                self._emit(Event.AMBIGUOUS, "device %s: %s; parked", name, why, device=name)
        self._ambiguous = dict(p.ambiguous)
        for name in p.inherited:
            if name not in self._inherited:
                self._emit(Event.CONF_ERROR, "%s", inherited_message(sections[name]), device=name)
        self._inherited = set(p.inherited)
        for name in p.check_digit:
            if name not in self._check_digit:
                sec = sections[name]
                self._emit(
                    Event.IMEI_CHECK_DIGIT,
                    "%s",
                    check_digit_message(sec),
                    device=name,
                    imei=sec.imei,
                )
        self._check_digit = set(p.check_digit)
        for imei in sorted(set(p.unbound) - self._unbound):
            self._emit(
                Event.UNBOUND,
                "stick IMEI %s is plugged in but no section has imei=%s",
                imei,
                imei,
                imei=imei,
            )
        self._unbound = set(p.unbound)

    def _emit(
        self,
        event: Event,
        message: str,
        *args: object,
        device: str | None = None,
        imei: str | None = None,
    ) -> None:
        emit(event, message, *args, device=device, imei=imei, driver=self._driver)
