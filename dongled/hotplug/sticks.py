"""What dongled knows about each plugged-in stick, grouped from its ttys."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from dongled.modem import models
from dongled.modem.identity import Identity

if TYPE_CHECKING:  # a type only: `dongled status` (which reads sticks) imports no pyudev
    from dongled.hotplug.udev import TtyInfo


class StickState(enum.Enum):
    SETTLING = "settling"  # ports still appearing
    PROBING = "probing"
    IDENTIFIED = "identified"
    BUSY = "busy"  # another live process owns its AT port
    BOOTING = "booting"  # new and silent so far: probed again with backoff, not yet hung
    FAILED = "failed"


@dataclass(slots=True, kw_only=True)
class Stick:
    usb_device: str
    usb_port: str
    vid: str
    pid: str
    ports: dict[int, str] = field(default_factory=dict)  # bInterfaceNumber -> devnode
    sys_paths: set[str] = field(default_factory=set)
    state: StickState = StickState.SETTLING
    identity: Identity | None = None
    data: str | None = None
    audio: str | None = None
    source: str = ""  # "probe" or "asterisk": who verified the identity
    error: str = ""
    failures: int = 0
    last_change: float = 0.0
    appeared: float = 0.0  # when its first port showed up
    answered: bool = False  # it has answered AT since it appeared: silence now means hung
    card: str | None = None  # id of the one ALSA card under its USB device (USB audio)

    @property
    def model(self) -> str:
        """What it says it is, else what its VID:PID says."""
        known = models.model_for(self.vid, self.pid)
        ident = self.identity.model if self.identity is not None else ""
        return ident or (known.name if known is not None else f"{self.vid}:{self.pid}")

    @property
    def in_flight(self) -> bool:
        return self.state in (StickState.SETTLING, StickState.PROBING)

    def add(self, info: TtyInfo) -> bool:
        """Record a port; True when it is new (a changed stick must be identified again)."""
        if self.ports.get(info.interface) == info.devnode and info.sys_path in self.sys_paths:
            return False
        self.ports[info.interface] = info.devnode
        self.sys_paths.add(info.sys_path)
        return True

    def forget_identity(self) -> None:
        self.identity = None
        self.data = self.audio = None
        self.source = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Located:
    """A stick whose IMEI was verified on these ports (by our probe, or by chan_dongle's
    IMEIState on the port it holds open)."""

    imei: str
    data: str
    audio: str
    imsi: str | None = None
    card: str | None = None  # id of the one ALSA card under its USB device (USB audio)


class _Identified(Protocol):
    @property
    def identity(self) -> Identity | None: ...
    @property
    def data(self) -> str | None: ...
    @property
    def audio(self) -> str | None: ...
    @property
    def card(self) -> str | None: ...


def located(sticks: Iterable[_Identified]) -> list[Located]:
    """Every identified stick with its ports (the one builder of Located: the daemon, scan
    and `dongled status` use it); clones sharing an IMEI are sorted out by `plan`."""
    return [
        Located(imei=s.identity.imei, imsi=s.identity.imsi, data=s.data, audio=s.audio, card=s.card)
        for s in sticks
        if s.identity is not None and s.data and s.audio
    ]
