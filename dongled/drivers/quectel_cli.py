"""`quectel show devices` of the RoEdAl fork, as `Output:` lines of an AMI `Command` answer.

That fork has no AMI actions: this listing is all dongled can read back. Its format:

    %-12.12s %-5d %-10.10s %-4d %-4d %-7s %-14.14s %-17.17s %-16.16s %-16.16s %-14.14s
    ID       Group State   RSSI Mode provider Model  Firmware IMEI     IMSI     Number

under a header of 9 columns ("Provider Name" cut to "Provide", no IMEI or IMSI: "Number" heads
the IMEIs). The provider is never cut: a name longer than 7 characters, or with spaces, pushes
everything after it to the right. So the header is skipped, the fields before the provider
are read by position, and the IMEI is found by shape (15 digits on a field boundary); the
model and firmware are read back from it. The ID is cut to 12 characters and the State to 10
("Not connec"): `device` may be a prefix of the section name, `state` is the full name when
the cut one is unambiguous.

`quectel show device settings <dev>` is safe, and names the ports the fork read for a device at
its last load (`  Data                    : /dev/ttyUSB2`, `  Audio ...` or, with USB audio,
`  Audio UAC ...`): a connected device runs on them. `parse_device_settings` reads them.

Stop and start answer `[<dev>] Stop scheduled` when taken (`acknowledged`).

Never `quectel show device state <dev>`: it crashes Asterisk on a device that has not
registered since it connected (docs/chan_quectel.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from dongled.modem.identity import valid_imei, valid_imsi

ID_WIDTH = 12
STATE_WIDTH = 10
_MODEL_WIDTH = 14
_FIRMWARE_WIDTH = 17
_ID_WIDTH_FIELD = 16  # IMEI and IMSI columns
_PROVIDER_MIN = 7

# pvt_str_state() of the fork, and what `%-10.10s` leaves of each.
STATES = (
    "Stopped",
    "Not connected",
    "Not initialized",
    "GSM not registered",
    "Ring",
    "Waiting",
    "Dialing",
    "Active",
    "Outgoing",
    "Incoming",
    "Both",
    "Held",
    "SMS",
    "Free",
)
_BY_CUT = {s[:STATE_WIDTH]: s for s in STATES}
_INT = re.compile(r"-?[0-9]+")
_IMEI_AT = re.compile(r"(?<![^ ])([0-9]{15})(?= |\Z)")


@dataclass(frozen=True, slots=True, kw_only=True)
class CliDevice:
    """One row; `device` and `state` may be cut (see the module docstring)."""

    device: str
    group: int
    state: str
    rssi: int
    mode: int
    provider: str
    model: str
    firmware: str
    imei: str  # "" until the device has answered AT+CGSN since it connected
    imsi: str
    number: str

    @property
    def device_cut(self) -> bool:
        return len(self.device) == ID_WIDTH

    def names(self, section: str) -> bool:
        """Whether this row can be the device of `section` (the ID column keeps 12 chars)."""
        return section[:ID_WIDTH] == self.device

    @property
    def connected(self) -> bool:
        return self.state not in ("Stopped", "Not connected")

    def section_of(self, sections: Iterable[str]) -> tuple[str, list[str]]:
        """The section this row stands for among `sections`, and the sections its cut ID
        fits when it fits more than one (then nobody can tell them apart, and the row keeps
        its cut ID)."""
        if not self.device_cut:
            return self.device, []
        names = [name for name in sections if self.names(name)]
        if len(names) == 1:
            return names[0], []
        return self.device, names if len(names) > 1 else []


@dataclass(frozen=True, slots=True, kw_only=True)
class Listing:
    devices: tuple[CliDevice, ...]
    unparsed: tuple[str, ...]  # lines that are neither the header nor a row
    header_seen: bool

    def find(self, section: str) -> list[CliDevice]:
        """The rows that can be `section`: more than one when two names share 12 chars."""
        return [d for d in self.devices if d.names(section)]


def _lines(output: Iterable[str]) -> list[str]:
    out: list[str] = []
    for chunk in output:
        for line in chunk.split("\n"):
            line = line.rstrip("\r")
            if line.startswith("Output:"):
                line = line[len("Output:") :].removeprefix(" ")
            out.append(line)
    return out


def _is_header(line: str) -> bool:
    words = line.split()
    return words[:3] == ["ID", "Group", "State"]


def _take_int(line: str, pos: int, width: int) -> tuple[int, int] | None:
    """A `%-<width>d` field at `pos`: (value, position after it and its separator)."""
    match = _INT.match(line, pos)
    if match is None:
        return None
    end = max(match.end(), pos + width)
    if line[match.end() : end].strip() or (end < len(line) and line[end] != " "):
        return None
    return int(match.group()), end + 1


def parse_row(line: str) -> CliDevice | None:
    """One row, or None when `line` does not have a row's shape."""
    if len(line) <= ID_WIDTH or line[ID_WIDTH] != " " or not line[:ID_WIDTH].strip():
        return None
    device = line[:ID_WIDTH].rstrip()
    if device != device.lstrip():
        return None
    group = _take_int(line, ID_WIDTH + 1, 5)
    if group is None:
        return None
    state_at = group[1]
    cut = line[state_at : state_at + STATE_WIDTH]
    after = line[state_at + STATE_WIDTH : state_at + STATE_WIDTH + 1]
    if not cut.strip() or cut.startswith(" ") or after != " ":
        return None
    rssi = _take_int(line, state_at + STATE_WIDTH + 1, 4)
    if rssi is None:
        return None
    mode = _take_int(line, rssi[1], 4)
    if mode is None:
        return None
    provider_at = mode[1]
    # The IMEI's column without a wide provider; with one, the IMEI is further right.
    earliest = provider_at + _PROVIDER_MIN + 1 + _MODEL_WIDTH + 1 + _FIRMWARE_WIDTH + 1
    imei_at, imei = earliest, ""
    for match in _IMEI_AT.finditer(line, earliest):
        if valid_imei(match.group(1)):
            imei_at, imei = match.start(), match.group(1)
            break
    # No IMEI (not read yet): the columns are taken as they are without a wide provider.
    firmware_at = imei_at - 1 - _FIRMWARE_WIDTH
    model_at = firmware_at - 1 - _MODEL_WIDTH
    imsi_at = imei_at + _ID_WIDTH_FIELD + 1
    number_at = imsi_at + _ID_WIDTH_FIELD + 1
    imsi = line[imsi_at : imsi_at + _ID_WIDTH_FIELD].strip() if imei else ""
    state = cut.rstrip()
    return CliDevice(
        device=device,
        group=group[0],
        state=_BY_CUT.get(state, state),
        rssi=rssi[0],
        mode=mode[0],
        provider=line[provider_at : model_at - 1].strip(),
        model=line[model_at:firmware_at].strip(),
        firmware=line[firmware_at : imei_at - 1].strip(),
        imei=imei,
        imsi=imsi if imsi.isascii() and valid_imsi(imsi) else "",
        number=line[number_at:].strip() if imei else "",
    )


def parse_show_devices(output: Iterable[str]) -> Listing:
    """Parse the `Output:` values (or raw text) of `quectel show devices`."""
    devices: list[CliDevice] = []
    unparsed: list[str] = []
    header = False
    for line in _lines(output):
        if not line.strip():
            continue
        if _is_header(line):
            header = True
            continue
        row = parse_row(line)
        if row is None:
            unparsed.append(line)
        else:
            devices.append(row)
    return Listing(devices=tuple(devices), unparsed=tuple(unparsed), header_seen=header)


_SETTING = re.compile(r"^\s*(Data|Audio|Audio UAC)\s*:\s*(.*?)\s*$")


def parse_device_settings(output: Iterable[str]) -> tuple[str, str] | None:
    """The (data, audio) ttys `quectel show device settings <dev>` names; audio "" when the
    device's voice is a USB sound card (`Audio UAC`); None for `Device <dev> not found` or
    output without a Data line."""
    found: dict[str, str] = {}
    for line in _lines(output):
        match = _SETTING.match(line)
        if match is not None:
            found[match.group(1)] = match.group(2)
    if "Data" not in found:
        return None
    return found["Data"], "" if "Audio UAC" in found else found.get("Audio", "")


def acknowledged(verb: str, device: str, lines: list[str]) -> bool:
    """Whether a stop, start or restart was taken: both forks print `[<device>] Stop scheduled`
    (Start, Restart), or an error text in the same place (`[<device>] Device not found`)."""
    want = f"[{device}] {verb.capitalize()} scheduled"
    return any(line.strip() == want for line in lines)
