"""The hung-stick recovery ladder: the decisions, with no I/O.

A stick whose ports exist but which does not answer (or whose device never comes up) is
recovered step by step, gentlest first: restart the device in its driver (stop, wait for the
release, start) -> re-authorize the USB device -> USB port reset -> power cycle of its hub
port. A USB step is taken only for a modem that does not answer AT: one that answers is not
hung, its driver is failing, and resetting it would only reboot a working modem. Each step
is rate-limited with a backoff per physical USB port, and a stick that keeps failing is given
up on, with the reason, instead of being reset forever.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from dongled.core.backoff import delay


class Step(enum.Enum):
    RESTART = "restart"  # stop, wait for the release, start: the driver reopens the ttys
    REAUTHORIZE = "reauthorize"  # sysfs authorized 0 -> 1: the kernel re-binds the stick
    USB_RESET = "usb_reset"  # USBDEVFS_RESET on /dev/bus/usb/BBB/DDD
    POWER_CYCLE = "power_cycle"  # uhubctl: the hub port's power off and on


ORDER = (Step.RESTART, Step.REAUTHORIZE, Step.USB_RESET, Step.POWER_CYCLE)


@dataclass(slots=True, kw_only=True)
class PortState:
    next_index: int = 0
    rounds: int = 0
    not_before: float = 0.0
    last_step: Step | None = None
    last_reason: str = ""
    given_up: str = ""
    history: list[tuple[float, Step, str]] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class Ladder:
    steps: tuple[Step, ...] = ORDER  # the enabled ones, in order
    backoff: float = 30.0  # first wait between two steps on one port
    backoff_max: float = 600.0
    max_rounds: int = 2  # whole ladders tried before giving up
    ports: dict[str, PortState] = field(default_factory=dict)

    def next_step(self, usb_port: str, now: float, reason: str, *, has_device: bool) -> Step | None:
        """The step to take now for a failing stick, or None (waiting, or given up).
        The first step (stop, wait, start a device) needs a device section; without one the
        ladder starts further up."""
        st = self.ports.setdefault(usb_port, PortState())
        st.last_reason = reason
        if st.given_up or now < st.not_before or not self.steps:
            return None
        while True:
            if st.next_index >= len(self.steps):
                st.rounds += 1
                st.next_index = 0
                if st.rounds >= self.max_rounds:
                    st.given_up = (
                        f"still failing after {st.rounds} rounds of recovery "
                        f"({', '.join(s.value for s in self.steps)}): {reason}"
                    )
                    return None
            step = self.steps[st.next_index]
            st.next_index += 1
            if step is Step.RESTART and not has_device:
                continue
            break
        tries = st.rounds * len(self.steps) + st.next_index
        st.not_before = now + delay(tries, first=self.backoff, cap=self.backoff_max)
        st.last_step = step
        st.history.append((now, step, reason))
        return step

    def modem_answers(self, usb_port: str, driver_fault: str) -> None:
        """The stick answered AT where a USB step was next: the modem is not hung, its driver
        failed to bring the device up, and a USB step would only reboot a working modem.
        Back to the restart (a round spent); given up after max_rounds, saying so."""
        st = self.ports.get(usb_port)
        if st is None:
            return
        st.next_index = 0
        st.rounds += 1
        if st.rounds >= self.max_rounds:
            st.given_up = f"{driver_fault}, after {st.rounds} restarts (its modem answers AT)"

    def succeeded(self, usb_port: str) -> None:
        """The stick works again: its ladder starts from the bottom next time."""
        self.ports.pop(usb_port, None)

    def given_up(self, usb_port: str) -> str:
        st = self.ports.get(usb_port)
        return st.given_up if st is not None else ""

    def wait_left(self, usb_port: str, now: float) -> float:
        st = self.ports.get(usb_port)
        return max(0.0, st.not_before - now) if st is not None else 0.0
