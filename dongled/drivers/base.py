"""The driver seam: what one Asterisk channel driver looks like to dongled.

Everything the rest of dongled needs to know about a channel driver is here, one value per
driver (`chan_dongle.CHAN_DONGLE` today; the chan_quectel forks are described in `quectel`
and join through the same shape): its config file, the values that park a section whose
stick is absent, and the AMI actions that list, reload, stop and start its devices. The
rooms of the daemon take a Driver instead of naming chan_dongle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dongled.dongleconf import DeviceSection


@dataclass(frozen=True, slots=True, kw_only=True)
class AmiVerbs:
    """The manager actions of a driver whose devices AMI can list and control."""

    show: str  # the list action, answered by one `entry` event per device
    entry: str
    reload: str  # takes `When:`
    stop: str  # takes `Device:` and `When:`
    start: str  # takes `Device:`


@dataclass(frozen=True, slots=True, kw_only=True)
class Driver:
    name: str  # as settings and status name it
    module: str  # Asterisk's module file
    conf_path: str  # the default config file it reads at load and reload
    parked: tuple[str, str]  # data=, audio= of a section whose stick is absent: never openable
    ami: AmiVerbs  # (a driver with no manager actions of its own, such as chan_quectel's
    # RoEdAl fork, goes through its CLI over AMI `Command` instead: not wired yet)
    # USB audio (UAC): the key and values that make a section's voice an ALSA card
    # (`alsadev=`) instead of a serial port (`audio=`); None: the driver has no USB audio.
    uac_key: str | None = None
    uac_on: frozenset[str] = frozenset()

    def is_parked(self, port: str) -> bool:
        return port in self.parked

    def uses_uac(self, sec: DeviceSection) -> bool:
        """Whether the driver takes `sec`'s voice from `alsadev=` (then audio= is not read)."""
        if self.uac_key is None:
            return False
        value = dict(sec.switches).get(self.uac_key)
        return value is not None and value.lower() in self.uac_on
