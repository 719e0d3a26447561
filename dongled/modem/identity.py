"""What a stick says about itself, validated before anything trusts it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_IMEI = re.compile(r"[0-9]{15}")  # fullmatch: no trailing newline, no non-ASCII digits
_IMSI = re.compile(r"[0-9]{6,15}")  # fullmatch, as _IMEI
# E.118: "89" (telecom), then 16-18 digits; 19-digit ones come padded with an F.
_ICCID = re.compile(r"89[0-9]{16,18}")  # ASCII digits only (\d takes any script's)
_TEXT = re.compile(r"^[A-Za-z0-9 ._:/+()-]{1,64}$")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def valid_imei(value: str) -> bool:
    """15 digits, not all zeros. The Luhn check digit is not required: some operators
    rewrite their sticks' IMEIs without it, and dongled only ever matches the exact 15 digits
    a stick reports; `imei_problem` says when the check digit is wrong."""
    return bool(_IMEI.fullmatch(value)) and value.strip("0") != ""


def imei_problem(value: str) -> str | None:
    """What is wrong with an IMEI, in words; None when it is a well-formed one."""
    if not _IMEI.fullmatch(value):
        return "not 15 digits"
    if value.strip("0") == "":
        return "all zeros (a clone's placeholder)"
    if not luhn_ok(value):
        return "check digit wrong (the last digit does not match the first 14)"
    return None


def valid_imsi(value: str) -> bool:
    return bool(_IMSI.fullmatch(value))


def valid_iccid(value: str) -> bool:
    return bool(_ICCID.fullmatch(value))


def clean_text(value: str) -> str:
    """Model/firmware strings are shown, never written to the config; still keep them tame."""
    value = value.strip()
    return value if _TEXT.match(value) else ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity:
    imei: str
    imsi: str | None = None
    iccid: str | None = None  # the number printed on the SIM card: shown, never decided on
    manufacturer: str = ""
    model: str = ""
    firmware: str = ""
    voice: bool | None = None  # None: not asked or no answer
    # what the voice query answered when it said no voice (`ERROR`, `COMMAND NOT SUPPORT`),
    # for the warning; cleaned text, never compared
    voice_answer: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not valid_imei(self.imei):
            raise ValueError(f"not a valid IMEI: {self.imei!r}")
        if self.imsi is not None and not valid_imsi(self.imsi):
            raise ValueError(f"not a valid IMSI: {self.imsi!r}")
        if self.iccid is not None and not valid_iccid(self.iccid):
            raise ValueError(f"not a valid ICCID: {self.iccid!r}")


def limitations(ident: Identity, source: str) -> list[str]:
    """What a stick lacks for chan_dongle (a probed one) or what is odd about it, each with
    what to do about it."""
    out = []
    if not luhn_ok(ident.imei):
        out.append(
            "IMEI check digit wrong (rewritten IMEI?): dongled matches only these exact 15 "
            "digits; check imei= of its section"
        )
    if source != "probe":
        return out  # chan_dongle runs it: it has what it needs
    if ident.imsi is None:
        out.append(
            "no SIM (AT+CIMI gave no IMSI): insert or reseat the SIM; chan_dongle aborts "
            "its start-up on such a stick"
        )
    if ident.voice is False:
        out.append(
            f"no voice (AT^CVOICE? answered {ident.voice_answer or 'ERROR'}): calls cannot "
            "work on it; it needs a voice-enabled firmware"
        )
    return out


def imei_from_cgsn(lines: tuple[str, ...]) -> str | None:
    """`AT+CGSN` answers a bare 15-digit line (some firmwares prefix `+CGSN:`)."""
    for line in lines:
        value = line.removeprefix("+CGSN:").strip().strip('"')
        if valid_imei(value):
            return value
    return None


def imsi_from_cimi(lines: tuple[str, ...]) -> str | None:
    for line in lines:
        value = line.removeprefix("+CIMI:").strip()
        if valid_imsi(value):
            return value
    return None


def iccid_from_answer(lines: tuple[str, ...]) -> str | None:
    """Huawei `AT^ICCID?`: `^ICCID: 8970...`. Some firmwares give the SIM's raw bytes, each
    pair of digits swapped (`98...`); an F pads a 19-digit ICCID."""
    for line in lines:
        if not line.startswith("^ICCID:"):
            continue
        value = line.removeprefix("^ICCID:").strip().strip('"').upper()
        if value.startswith("98") and len(value) % 2 == 0:
            value = "".join(value[i + 1] + value[i] for i in range(0, len(value), 2))
        value = value.removesuffix("F")
        if valid_iccid(value):
            return value
    return None


def parse_ati(lines: tuple[str, ...]) -> dict[str, str]:
    """`ATI`: `Manufacturer: huawei`, `Model: E1550`, `Revision: ...`, `IMEI: ...`."""
    out: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip().lower()] = value.strip()
    return out
