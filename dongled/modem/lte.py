"""The LTE modules chan_quectel drives (Quectel EC2x, SIMCom SIM7600): their USB layouts and
the AT dialect of their probe.

A table can only propose a layout: `AT+QCFG="usbnet"` and PID switches change a module's
interfaces, so the data port is confirmed by an answer, as for the Huawei sticks in
`dongled.modem.models`.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from dongled.modem.identity import valid_iccid


class Family(enum.StrEnum):
    """Which AT dialect: chan_quectel picks its set-up by the `AT+CGMI` answer too."""

    QUECTEL = "quectel"
    SIMCOM = "simcom"


@dataclass(frozen=True, slots=True, kw_only=True)
class PortLayout:
    data: int  # bInterfaceNumber of the AT port chan_quectel gets as data=
    audio: int | None  # the serial voice port (audio=); None: voice only over USB audio
    second_at: int | None = None  # another AT port: answers AT, must not be chosen


@dataclass(frozen=True, slots=True, kw_only=True)
class Module:
    name: str
    family: Family
    layout: PortLayout
    confirmed: bool  # False: the layout is assumed from a sibling model, not documented


_QUECTEL_LAYOUT = PortLayout(data=2, audio=1, second_at=3)  # if0 DIAG, if1 NMEA/voice
_SIMCOM_LAYOUT = PortLayout(data=2, audio=4, second_at=3)  # if0 DIAG, if1 GPS

KNOWN: dict[tuple[str, str], Module] = {
    ("2c7c", "0125"): Module(
        name="Quectel EC25", family=Family.QUECTEL, layout=_QUECTEL_LAYOUT, confirmed=True
    ),
    ("2c7c", "0121"): Module(
        name="Quectel EC21", family=Family.QUECTEL, layout=_QUECTEL_LAYOUT, confirmed=True
    ),
    ("05c6", "9215"): Module(
        name="Quectel EC20", family=Family.QUECTEL, layout=_QUECTEL_LAYOUT, confirmed=False
    ),
    ("1e0e", "9001"): Module(
        name="SIMCom SIM7600", family=Family.SIMCOM, layout=_SIMCOM_LAYOUT, confirmed=True
    ),
}


def module_for(vid: str, pid: str) -> Module | None:
    return KNOWN.get((vid.lower(), pid.lower()))


def complete(module: Module, interfaces: frozenset[int]) -> bool:
    """All the tty interfaces the layout names are there (probing half a module misleads)."""
    lay = module.layout
    needed = {lay.data, *(i for i in (lay.audio, lay.second_at) if i is not None)}
    return needed <= interfaces


# --- probing ----------------------------------------------------------------------------------

# Identity only, in the order a probe sends them. ATE0 changes nothing but echo (both forks
# send it too). No ATZ (RoEdAl's fork sends it at every connect: dongled never does), no
# AT+CFUN, no AT+QCFG=/AT+QPCMV=/AT+CPCMREG= writes: nothing that changes the module.
PROBE_COMMANDS: dict[Family, tuple[str, ...]] = {
    Family.QUECTEL: ("ATE0", "AT+CGMI", "AT+CGMM", "AT+CGMR", "AT+CGSN", "AT+CIMI", "AT+QCCID"),
    Family.SIMCOM: ("ATE0", "AT+CGMI", "AT+CGMM", "AT+CGMR", "AT+CGSN", "AT+CIMI", "AT+CICCID"),
}
IMEI_FALLBACK = "AT+GSN"  # when AT+CGSN answers ERROR
ATI_FALLBACK = "ATI"  # when AT+GSN does too: SIMCom's ATI has an `IMEI:` line (Quectel's not)
# Voice capability, read-only queries: Quectel answers +QPCMV: <on>,<port> (port 2 = USB
# audio), SIMCom +CPCMREG: <n>; each answers ERROR to the other's.
VOICE_QUERY: dict[Family, str] = {Family.QUECTEL: "AT+QPCMV?", Family.SIMCOM: "AT+CPCMREG?"}


# A result code's shape: `+QIND: ...`, `^RSSI:...`, `+CPIN: READY`; and the bare boot
# messages LTE modules print when they start (Quectel `RDY`, `PB DONE`; SIMCom `SMS DONE`).
_RESULT_CODE = re.compile(r"^[+^][A-Z][A-Z0-9]*:")
_BOOT_WORDS = frozenset(
    {"RDY", "PB DONE", "SMS DONE", "CALL READY", "SMS READY", "POWERED DOWN", "NORMAL POWER DOWN"}
)


def info_lines(lines: tuple[str, ...], command: str) -> tuple[str, ...]:
    """An answer's own lines: unsolicited ones skipped by their shape (any `+XXX:`/`^XXX:`
    line but the command's own, which loses its prefix; the boot messages), so that a module
    that has just started cannot put `RDY` or `+QIND: PB DONE` where its maker, model or
    firmware belongs."""
    own = command.upper().removeprefix("AT").split("=")[0].rstrip("?") + ":"
    out = []
    for line in lines:
        if own[0] in "+^" and line.upper().startswith(own):
            out.append(line[len(own) :].strip())
        elif not (_RESULT_CODE.match(line) or line.strip().upper() in _BOOT_WORDS):
            out.append(line)
    return tuple(out)


def firmware_from_cgmr(lines: tuple[str, ...]) -> str:
    """`AT+CGMR`: bare on Quectel, `+CGMR: ...` on SIMCom."""
    for line in lines:
        value = line.removeprefix("+CGMR:").strip()
        if value:
            return value
    return ""


def iccid_from_lte_answer(lines: tuple[str, ...]) -> str | None:
    """`+QCCID: 8970...` (Quectel), `+ICCID: 8970...` (SIMCom AT+CICCID) or a bare number
    (SIMCom AT+CCID); a 19-digit ICCID may come padded with an F."""
    for line in lines:
        _, sep, after = line.rpartition(":")
        value = (after if sep else line).strip().strip('"').upper().removesuffix("F")
        if valid_iccid(value):
            return value
    return None
