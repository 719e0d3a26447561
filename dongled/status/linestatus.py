"""The status of one device section (one line of `dongled status`), decided once, purely.

Both the daemon (journal, summary, metrics) and `dongled status` ask this, with the stick
that `reconcile.choose` picks, so what is shown is what the daemon decides. No I/O, and no
import of panoramisk: `dongled status` must stay light.

Intended call, for a section `sec`, Asterisk's `entry` for it (None when AMI is down or it
has no device) and the plugged, identified sticks as `located`:

    choice = reconcile.choose(sec, sec.imei or "", located)
    line = linestatus.line_status(sec, choice, entry, ami_up=..., given_up=ladder_reason)

where `ladder_reason` is the recovery ladder's given-up reason for the chosen stick's USB
port ("" when none, or when no stick is chosen).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dongled.conf.parked import PARKED_DATA
from dongled.hotplug.sticks import Located
from dongled.modem.identity import imei_problem, luhn_ok, valid_imei

if TYPE_CHECKING:
    from dongled.asterisk.device import DeviceEntry
    from dongled.conf.dongleconf import DeviceSection


class LineStatus(enum.Enum):
    """Values are the words of `dongled status` (and of schema 1's `status` field)."""

    OK = "ok"  # Asterisk runs the section's IMEI on the data port the file names
    ABSENT = "absent"  # its stick is not plugged in; the section is parked
    UNMANAGED = "unmanaged"  # no 15-digit imei=: dongled leaves the section alone
    PENDING = "pending"  # its stick is there, not (yet) verified
    MISMATCH = "mismatch"  # Asterisk runs a foreign IMEI (or a clone's SIM) on the device
    AMBIGUOUS = "ambiguous"  # clones share its IMEI and imsi= does not tell them apart
    GIVEN_UP = "given-up"  # its stick is there, unverified, and the recovery ladder gave up

    @property
    def schema1(self) -> str:
        """The word for status.json schema 1, whose section statuses predate GIVEN_UP: such
        a line stays `pending` there (same exit code), its detail saying it was given up."""
        return LineStatus.PENDING.value if self is LineStatus.GIVEN_UP else self.value

    @property
    def fine(self) -> bool:
        """Whether this line lets `dongled status` exit 0 (a monitoring check: a managed line
        that is not verified on its own stick, absent included, is a problem)."""
        return self in (LineStatus.OK, LineStatus.UNMANAGED)


@dataclass(frozen=True, slots=True, kw_only=True)
class Line:
    status: LineStatus
    detail: str  # a sentence for the admin; "" for OK
    verified: bool
    stick: Located | None  # the chosen stick, None when absent or ambiguous
    running: str | None  # the IMEI Asterisk runs on the device, None when none or unknown


def _foreign(sec: DeviceSection, imei: str | None, entry: DeviceEntry | None) -> bool:
    if entry is None or not entry.imei_state:
        return False
    return entry.imei_state != imei or bool(sec.imsi and entry.imsi_state != sec.imsi)


def line_status(
    sec: DeviceSection,
    choice: Located | str | None,
    entry: DeviceEntry | None,
    *,
    ami_up: bool,
    given_up: str = "",
    file_problem: str = "",
    unidentified: int = 0,
) -> Line:
    """The line for `sec`; `choice` is what `reconcile.choose` returned for it. `file_problem`
    is why the daemon could not write (or read) the section's file, "" when it could: an absent
    stick's section that still names a port is then said not to be parked, and why.
    `unidentified`: how many plugged sticks have no known IMEI yet (busy, booting, failed):
    with any, an absent section's stick may well be plugged in, and the line says so."""
    imei = sec.imei if sec.imei and valid_imei(sec.imei) else None
    stick = choice if isinstance(choice, Located) else None
    running = entry.imei_state if entry is not None and entry.imei_state else None
    foreign = _foreign(sec, imei, entry)
    verified = bool(
        imei is not None
        and stick is not None
        and entry is not None
        and entry.connected
        and not foreign
        and entry.data_state == sec.data
    )

    def line(status: LineStatus, detail: str) -> Line:
        return Line(status=status, detail=detail, verified=verified, stick=stick, running=running)

    if imei is None:
        why = f"imei={sec.imei}: {imei_problem(sec.imei)}" if sec.imei else "no imei="
        return line(LineStatus.UNMANAGED, f"{why} in the section: dongled leaves it alone")
    if foreign:
        return line(LineStatus.MISMATCH, f"Asterisk runs IMEI {running} on this device, not {imei}")
    if verified:
        return line(
            LineStatus.OK, "" if luhn_ok(imei) else "imei= check digit wrong (matched exactly)"
        )
    if isinstance(choice, str):
        return line(LineStatus.AMBIGUOUS, choice)
    if stick is None:
        # A stick dongled could not identify (held by another program, still booting) may be
        # this section's: "not plugged in" would send the admin looking for a stick in place.
        gone = (
            "its stick is not plugged in"
            if not unidentified
            else f"no plugged stick is known to carry it ({unidentified} not identified: see "
            f"{'its row' if unidentified == 1 else 'their rows'})"
        )
        if sec.data == PARKED_DATA:
            return line(LineStatus.ABSENT, f"{gone}; the section is parked")
        named = sec.data or "no data="
        if file_problem:
            return line(
                LineStatus.ABSENT,
                f"{gone}, but the section is NOT parked: it still names {named}; the file was "
                f"not written: {file_problem}",
            )
        return line(
            LineStatus.ABSENT, f"{gone}; the section is not parked yet (it still names {named})"
        )
    if given_up:
        return line(LineStatus.GIVEN_UP, f"recovery of its stick was given up: {given_up}")
    if not ami_up:
        return line(LineStatus.PENDING, "not verified: no connection to Asterisk")
    return line(LineStatus.PENDING, "not yet verified running its own IMEI")
