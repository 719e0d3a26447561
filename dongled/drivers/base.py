"""The driver seam: what one Asterisk channel driver looks like to dongled.

Everything the rest of dongled needs to know about a channel driver is here, one value per
driver (`chan_dongle.CHAN_DONGLE`, `chan_quectel.QUECTEL_IM`, `chan_quectel.QUECTEL_RE`): its
config file (its key in dongled's `[drivers]` settings table, and its default path), the
values that park a section whose stick is absent, how AMI lists, reloads, stops and starts its
devices (manager actions, or CLI lines over `Action: Command`, with the parsers of their
answers), whether it leaves lock files, when it opens a device, and its USB audio keys. The
rooms of the daemon take a Driver instead of naming chan_dongle; `asterisk.control` builds
each lane's control from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dongled.conf.dongleconf import DeviceSection
    from dongled.drivers.quectel_cli import Listing


@dataclass(frozen=True, slots=True, kw_only=True)
class AmiVerbs:
    """The manager actions of a driver whose devices AMI can list and control."""

    show: str  # the list action, answered by one `entry` event per device
    entry: str
    reload: str  # takes `When:`
    stop: str  # takes `Device:` and `When:`
    start: str  # takes `Device:`


@dataclass(frozen=True, slots=True, kw_only=True)
class CliVerbs:
    """The CLI lines, sent as AMI `Action: Command`, of a driver with no manager actions
    (chan_quectel's RoEdAl fork). `{when}` and `{device}` are filled in. Its printed answers
    are read by its own parsers, which it brings along (RE's are `drivers.quectel_cli`'s)."""

    show: str
    # `show`'s output lines as a listing of rows (`quectel_cli.Listing`: the shape a CLI
    # listing is read into, with which lines were neither header nor row).
    parse_listing: Callable[[Iterable[str]], Listing]
    # Whether a stop or start was taken, from the verb ("stop", "start"), the device and
    # what the command printed: a CLI answers Success either way, only its words tell.
    acknowledged: Callable[[str, str, list[str]], bool]
    reload: str  # with {when}: now, gracefully, when convenient
    stop: str  # with {device}
    start: str  # with {device}
    never: tuple[str, ...]  # commands that crash Asterisk: refused before they are sent
    # With {device}: the ports the driver read for a device at its last load ("": none such),
    # and their parser: (data, audio) from its output, None when it names none.
    settings: str = ""
    parse_settings: Callable[[Iterable[str]], tuple[str, str] | None] = lambda _lines: None
    # How long to wait, at most, for a stop or start to show in the listing before the next
    # command (0: not at all). RE's device manager takes its commands through an eventfd,
    # whose writes add up: two unread "scan" commands read as "exit" (it stops for good and
    # brings no device back), three as an unknown command. One at a time, each seen done.
    one_at_a_time: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Driver:
    name: str  # as settings and status name it
    module: str  # Asterisk's module file
    # The config file it reads at load and reload: its key in the `[drivers]` table of
    # dongled's settings (drivers reading the same file share it: the file's family, e.g.
    # `chan_quectel` for both forks), and the path taken when that key is not set.
    conf_key: str
    default_conf: str
    parked: tuple[str, str]  # data=, audio= of a section whose stick is absent: never openable
    ami: AmiVerbs | CliVerbs
    # The AMI event (read class `call`) announcing a device's state, `Status: Initialize` once
    # its IMEI is known; None: the driver announces nothing, its listing is polled.
    status_event: str | None = None
    # False: it marks the ttys it holds only with TIOCEXCL + flock, no LCK..<tty> file.
    lock_files: bool = True
    # None: it opens a device at once. Else it opens devices on a timer (a reload or start
    # wakes it, but a device that failed to open waits for the next tick): this reads the
    # timer's seconds from the text of its config file (RE: `[general] interval`).
    open_interval: Callable[[str], float] | None = None
    # USB audio (UAC): the key and values that make a section's voice an ALSA card
    # (`alsadev=`) instead of a serial port (`audio=`); None: the driver has no USB audio.
    uac_key: str | None = None
    uac_on: frozenset[str] = frozenset()  # the module's own card: dongled writes alsadev=
    # Voice on an ALSA card outside the module (RE's uac=ext): nothing in sysfs ties that card
    # to an IMEI, so dongled keeps data= right and leaves alsadev= (and audio=) as they are.
    uac_ext: frozenset[str] = frozenset()

    def uses_uac(self, sec: DeviceSection) -> bool:
        """Whether the driver takes `sec`'s voice from its module's own card, `alsadev=`
        (then audio= is not read)."""
        value = self._uac_value(sec)
        return value is not None and value in self.uac_on

    def uses_ext_uac(self, sec: DeviceSection) -> bool:
        """Whether `sec`'s voice is a card outside its module (data= is all dongled keeps)."""
        value = self._uac_value(sec)
        return value is not None and value in self.uac_ext

    def _uac_value(self, sec: DeviceSection) -> str | None:
        if self.uac_key is None:
            return None
        value = dict(sec.switches).get(self.uac_key)
        return None if value is None else value.lower()
