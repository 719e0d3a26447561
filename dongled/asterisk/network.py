"""What a channel driver says of a line's network: its registration and its signal.

Pure readings of the drivers' own words. chan_dongle and chan_quectel (IM) print, in each
`DongleDeviceEntry` / `QuectelDeviceEntry`:

- `GSMRegistrationStatus:` the name of the last `+CREG:` status, from a fixed table
  (`REGISTRATION_TEXTS`); "Unknown" for status 4 and for -1, the value it is reset to at every
  disconnect and before the first `+CREG:` answer;
- `RSSI: <n>, <text>`: the last `+CSQ:` / `^RSSI:` value n and its dBm in words: "<= -113 dBm"
  for n <= 0, "2n-113 dBm" for 1..30, ">= -51 dBm" for 31, "unknown or unmeasurable" above
  (99: the modem could not measure). n is reset to 0 at every disconnect.

chan_quectel (RE) has only its CLI listing: the raw n in an RSSI column, and a State, from which
the registration is derived (`registration_from_state`).
"""

from __future__ import annotations

import enum
import re


class Registration(enum.Enum):
    """Whether a line can place and take calls on a network, as far as its driver says."""

    REGISTERED = "registered"  # home network or roaming
    NOT_REGISTERED = "not registered"  # searching, or not even searching (no SIM, no network)
    DENIED = "denied"  # the network refused the SIM
    UNKNOWN = "unknown"  # not connected, not asked yet, or the modem does not know


# GSM_regstate2str() of chan_dongle and of chan_quectel IM: +CREG status 0..5, else "Unknown".
REGISTRATION_TEXTS: dict[str, Registration] = {
    "Not registered, not searching": Registration.NOT_REGISTERED,
    "Registered, home network": Registration.REGISTERED,
    "Not registered, but searching": Registration.NOT_REGISTERED,
    "Registration denied": Registration.DENIED,
    "Unknown": Registration.UNKNOWN,
    "Registered, roaming": Registration.REGISTERED,
}


def registration_of(text: str) -> Registration:
    """`GSMRegistrationStatus` of an AMI device entry; anything not in the drivers' table
    (a newer driver's wording, an empty field) is UNKNOWN, never a guess."""
    return REGISTRATION_TEXTS.get(text.strip(), Registration.UNKNOWN)


# RE's pvt_str_state() shows "GSM not registered" only once the device is connected and
# initialized; its own gsm_is_registered() counts +CREG:/+CEREG: status 1, 4, 5, 6, 7 and 8
# (4 "unknown", 6/7 "SMS only", 8 "emergency only" included) as registered. Before that
# ("Stopped", "Not connected", "Not initialized") the listing does not say.
_RE_REGISTERED = (
    *("Ring", "Waiting", "Dialing", "Active", "Outgoing", "Incoming", "Both", "Held"),
    *("SMS", "Free"),
)


def registration_from_state(state: str) -> Registration:
    """A CLI-only driver's (RE's) registration, derived from the State column of its listing:
    the listing has no registration column. "GSM not registered" cannot tell searching from
    denied; every call or idle state means RE took the line for registered."""
    if state == "GSM not registered":
        return Registration.NOT_REGISTERED
    if state in _RE_REGISTERED:
        return Registration.REGISTERED
    return Registration.UNKNOWN  # Stopped, Not connected, Not initialized: it does not say


# n <= 0 is printed "<= -113 dBm" and 31 ">= -51 dBm": the gauge takes the bound.
_CSQ_FLOOR, _CSQ_CEILING = 0, 31


def csq_dbm(n: int) -> int | None:
    """A `+CSQ:` signal value (what the drivers keep and show as RSSI) in dBm: the drivers'
    own conversion; None above 31 (99: not known or not measurable)."""
    if n > _CSQ_CEILING:
        return None
    return 2 * max(n, _CSQ_FLOOR) - 113


_RSSI_FIELD = re.compile(r"\s*(-?\d+)\s*,")


def rssi_dbm(text: str) -> int | None:
    """`RSSI` of an AMI device entry ("20, -73 dBm", "0, <= -113 dBm", "99, unknown or
    unmeasurable") in dBm, from its number (the words after the comma are derived from it);
    None when there is no number or it means unknown."""
    match = _RSSI_FIELD.match(text)
    return csq_dbm(int(match.group(1))) if match else None
