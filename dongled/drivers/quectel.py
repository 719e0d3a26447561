"""chan_quectel: the LTE modules, what a probe may ask them, and how each fork is driven.

Facts come from docs/chan_quectel.md. A table can only propose a layout: `AT+QCFG="usbnet"`
and PID switches change a module's interfaces, so the data port is confirmed by an answer,
as for the Huawei sticks in `dongled.models`.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from dongled.identity import valid_iccid
from dongled.parked import PARKED_ALSADEV as PARKED_ALSADEV  # with the other parked values
from dongled.parked import PARKED_AUDIO, PARKED_DATA


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
ICCID_FALLBACK: dict[Family, str | None] = {Family.QUECTEL: None, Family.SIMCOM: "AT+CCID"}
# Voice capability, read-only queries: Quectel answers +QPCMV: <on>,<port> (port 2 = USB
# audio), SIMCom +CPCMREG: <n>; each answers ERROR to the other's.
VOICE_QUERY: dict[Family, str] = {Family.QUECTEL: "AT+QPCMV?", Family.SIMCOM: "AT+CPCMREG?"}

_STATE_CHANGING = ("ATZ", "AT&F", "AT+CFUN", "AT+QPOWD", "AT+CPOF", "AT+CRESET", "AT^")


def read_only(command: str) -> bool:
    """Whether `command` only reads: a query (`?`), an action without arguments that is not
    a reset, or `ATE0`/`ATE1` (echo). Anything with `=` sets something."""
    cmd = command.strip().upper()
    if cmd in ("ATE0", "ATE1", "AT"):
        return True
    if cmd.startswith(_STATE_CHANGING) or "=" in cmd:
        return False
    return cmd.startswith("AT")


def family_from_manufacturer(answer: str) -> Family | None:
    """`AT+CGMI`: "Quectel" or "SIMCOM INCORPORATED" (matched like chan_quectel, by prefix
    and ignoring case); anything else: not a module chan_quectel sets up for voice."""
    value = answer.strip().lower()
    if value.startswith("quectel"):
        return Family.QUECTEL
    if value.startswith("simcom"):
        return Family.SIMCOM
    return None


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


# --- the forks ----------------------------------------------------------------------------------


class Fork(enum.StrEnum):
    IM = "im"  # IchthysMaranatha/asterisk-chan-quectel: chan_dongle renamed
    RE = "re"  # RoEdAl/asterisk-chan-quectel: a rewrite


@dataclass(frozen=True, slots=True, kw_only=True)
class ForkFacts:
    """What dongled must do differently per fork (a proposal for the driver seam)."""

    fork: Fork
    config_file: str
    module: str  # for `Action: Reload` / `module reload`
    data_key: str
    audio_key: str
    uac_keys: tuple[tuple[str, str], ...]  # keys besides alsadev= that switch USB audio on
    imei_key: str | None  # None: the fork ignores imei= (dongled may still write it)
    ami_actions: bool  # False: only the CLI over `Action: Command`
    lock_files: bool  # /var/lock/LCK..<tty>; False: TIOCEXCL + flock on the tty only
    connects_at_load: bool  # False: the first connect comes one [general] interval later
    disconnects_on_init_error: bool
    never_send: tuple[str, ...]  # CLI commands that crash or corrupt Asterisk


IM = ForkFacts(
    fork=Fork.IM,
    config_file="quectel.conf",
    module="chan_quectel.so",
    data_key="data",
    audio_key="audio",
    uac_keys=(("quec_uac", "1"),),
    imei_key="imei",
    ami_actions=True,
    lock_files=True,
    connects_at_load=True,
    disconnects_on_init_error=True,
    never_send=(),
)
RE = ForkFacts(
    fork=Fork.RE,
    config_file="quectel.conf",
    module="chan_quectel.so",
    data_key="data",
    audio_key="audio",
    uac_keys=(("uac", "on"),),
    imei_key=None,
    ami_actions=False,
    lock_files=False,
    connects_at_load=False,
    disconnects_on_init_error=False,
    never_send=("quectel show device state", "simcom show device state"),
)


def connect_wait(facts: ForkFacts, interval: float, conversation: float) -> float:
    """How long after a pass a device may take to show its IMEI before it counts as missing:
    RE opens on its `[general] interval` timer (a lost or unopenable device waits for the next
    tick); IM, like chan_dongle, opens at once. `conversation`: the AT set-up's own time."""
    return conversation + (0.0 if facts.connects_at_load else interval)


DEFAULT_INTERVAL = 15.0  # what RE's sample quectel.conf sets and its users keep


def interval_from(text: str, default: float = DEFAULT_INTERVAL) -> float:
    """`interval=` of the `[general]` section of a quectel.conf text, in seconds (`;` starts
    a comment); `default` when it is absent or not a positive number. Includes are not
    followed: a [general] interval set in an included file reads as the default."""
    section, found = "", default
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if line.startswith("["):
            section = line[1:].split("]", 1)[0].strip().lower()
            continue
        key, sep, value = line.partition("=")
        if section == "general" and sep and key.strip().lower() == "interval":
            try:
                seconds = float(value.strip().lstrip(">").strip())
            except ValueError:
                continue
            if seconds > 0:
                found = seconds
    return found


def cli_command(facts: ForkFacts, verb: str, device: str = "") -> str:
    """The CLI line for `verb` (show, reload, stop, start, restart), the same in both forks.

    Stop and restart take effect now; `when convenient` would wait for calls to end."""
    if verb == "show":
        return "quectel show devices"
    if verb == "reload":
        return "quectel reload now"
    if verb in ("stop", "restart"):
        return f"quectel {verb} now {device}"
    if verb == "start":
        return f"quectel start {device}"
    raise ValueError(f"no CLI verb {verb!r}")


def cli_acknowledged(verb: str, device: str, lines: list[str]) -> bool:
    """Both forks print `[<device>] Stop scheduled` (Restart, Start) or an error text in the
    same place (`[<device>] Device not found`)."""
    want = f"[{device}] {verb.capitalize()} scheduled"
    return any(line.strip() == want for line in lines)


# --- parked sections ----------------------------------------------------------------------------


def parked_values(facts: ForkFacts, *, uac: bool) -> dict[str, str]:
    """The keys of a section whose module is absent: nothing a fork can open. With USB audio
    the ALSA name is parked too, so that no fork default (RE: `hw:Android`) applies."""
    if uac:
        return _port_values(facts, PARKED_DATA, None, PARKED_ALSADEV)
    return _port_values(facts, PARKED_DATA, PARKED_AUDIO, None)


def device_values(
    facts: ForkFacts, *, data: str, audio: str | None, alsadev: str | None, imei: str
) -> dict[str, str]:
    """The keys dongled writes for a located module: its data port, then either its serial
    voice port or its ALSA card, and imei= (RE ignores it: kept for people and for dongled)."""
    if (audio is None) == (alsadev is None):
        raise ValueError("a module has either a serial voice port or an ALSA card")
    return {**_port_values(facts, data, audio, alsadev), facts.imei_key or "imei": imei}


def _port_values(
    facts: ForkFacts, data: str, audio: str | None, alsadev: str | None
) -> dict[str, str]:
    values = {facts.data_key: data}
    if alsadev is not None:
        values.update(dict(facts.uac_keys))
        values["alsadev"] = alsadev
    elif audio is not None:
        values[facts.audio_key] = audio
    return values
