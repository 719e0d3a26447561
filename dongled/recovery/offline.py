"""Lines that dropped off the network with their stick still plugged in.

Operators' most common daily complaint after renumbering: a device sits in `GSM not
registered` or `Not connected` while its stick is present, and only a restart of the device
brings it back. A managed device in such a state for longer than `offline_after` is handed to
the recovery ladder (its first step, a device restart, waits for calls to end). The decisions
here are pure: the daemon feeds in each device listing and acts on what comes out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dongled.asterisk.device import DeviceEntry
from dongled.asterisk.network import Registration

_DOWN_STATES = ("Not connected", "GSM not registered")


def down(entry: DeviceEntry) -> str | None:
    """Why a listed device is not serving calls, or None. A stopped device is dongled's (or an
    admin's) doing, not a line that dropped off. The drivers show `GSM not registered` for a
    denied registration too: the reason says so (the network refuses the SIM; a restart
    rarely helps, the operator or the SIM must)."""
    if entry.stopped or entry.desired_state == "stop":
        return None
    said = entry.registration_text or entry.registration.value
    denied = entry.registration is Registration.DENIED
    if entry.state in _DOWN_STATES:
        return f"{entry.state} ({said})" if denied else entry.state
    if denied or entry.registration is Registration.NOT_REGISTERED:
        return said  # e.g. `Not initialized`, which does not say
    return None


@dataclass(slots=True)
class OfflineWatch:
    """When each managed device went down; which ones have been down too long."""

    after: float  # seconds; 0 turns the watch off
    since: dict[str, tuple[float, str]] = field(default_factory=dict)  # device -> (t, why)
    handed: set[str] = field(default_factory=set)  # given to the ladder for this outage

    def update(
        self, now: float, entries: Mapping[str, DeviceEntry], present: Mapping[str, str]
    ) -> list[tuple[str, str]]:
        """`present`: managed device -> the USB port of its stick, which is plugged in.
        Returns (device, reason) for each device down longer than `after`, once per outage."""
        if self.after <= 0:
            return []
        due: list[tuple[str, str]] = []
        for name in list(self.since):
            entry = entries.get(name)
            if name not in present or entry is None or down(entry) is None:
                del self.since[name]  # back (or gone, or no longer ours): a new outage later
                self.handed.discard(name)
        for name in sorted(present):
            entry = entries.get(name)
            why = down(entry) if entry is not None else None
            if why is None:
                continue
            start, _ = self.since.setdefault(name, (now, why))
            if now - start >= self.after and name not in self.handed:
                self.handed.add(name)
                due.append((name, f"device {name} has been '{why}' for {now - start:.0f} s"))
        return due
