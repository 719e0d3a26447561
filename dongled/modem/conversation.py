"""What the probe says to a stick, in its own dialect: the full conversation of a Huawei stick
(ATI, ^ICCID, ^CVOICE) and of an LTE module (+CGMI/+CGMM/+CGMR, the family's ICCID and PCM
queries), and the lean one of the daemon's probe of a returning stick.

Apart from the port (port.py) and the entry points (probe.py) because these are the
decisions of a probe: which read-only command comes next and what its answer means.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dongled.core.errors import ProbeError
from dongled.modem import at, lte
from dongled.modem.identity import (
    Identity,
    iccid_from_answer,
    imei_from_cgsn,
    imei_problem,
    imsi_from_cimi,
    parse_ati,
    valid_imei,
)
from dongled.modem.identity import clean_text as _clean
from dongled.modem.lte import Family
from dongled.modem.port import AtChannel

_ATI_IMEI_SHOWN = re.compile(r"[0-9A-Za-z*#. -]{1,32}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeTimeouts:
    first: float = 1.0  # the first command: a silent (voice/diag) port is given up on quickly
    command: float = 2.0


async def lean(chan: AtChannel, timeouts: ProbeTimeouts, family: Family | None) -> Identity:
    """The fewest commands that prove which stick this is, in its own dialect, and none that
    changes anything (not even ATE0): the IMEI and the IMSI (sections of clones are told
    apart by it), and then one more: the ICCID when there is a SIM, else the voice query.
    Every command here delays the line's return (the port is Asterisk's as soon as the file
    is written), so the rest waits: the model and voice of a stick Asterisk runs come from
    its listing once the device is verified. A SIM-less stick never comes up in Asterisk,
    so its voice is asked here."""
    t = timeouts.command
    # No ATE0: the reply collector skips an echo, so the probe changes nothing at all and
    # the line comes back one answer sooner. The first command proves an AT port.
    cgsn = await chan.command("AT+CGSN", timeouts.first)
    imei = imei_from_cgsn(cgsn.lines) if cgsn.ok else None
    if imei is None and family is not None:
        gsn = await chan.command(lte.IMEI_FALLBACK, t)
        imei = imei_from_cgsn(gsn.lines) if gsn.ok else None
    ati_said = ""
    if imei is None:  # ATI's `IMEI:` line, where the firmware prints one (SIMCom too)
        ati = await chan.command(lte.ATI_FALLBACK if family is not None else "ATI", t)
        imei, ati_said = _imei_from_ati(parse_ati(ati.lines) if ati.ok else {})
    if imei is None:
        raise ProbeError(chan.port, f"no valid IMEI (AT+CGSN: {cgsn.final}; {ati_said})")
    cimi = await chan.command("AT+CIMI", t)
    imsi = imsi_from_cimi(cimi.lines) if cimi.ok else None
    iccid, voice = None, None
    if imsi is not None:
        if family is not None:
            answer = await chan.command(lte.PROBE_COMMANDS[family][-1], t)
            iccid = lte.iccid_from_lte_answer(answer.lines) if answer.ok else None
        else:
            answer = await chan.command("AT^ICCID?", t)  # Huawei; others answer ERROR
            iccid = iccid_from_answer(answer.lines) if answer.ok else None
    elif family is not None:
        pcm = await chan.command(lte.VOICE_QUERY[family], t)
        voice = True if pcm.ok and any(line.startswith("+") for line in pcm.lines) else None
    else:
        cvoice = await chan.command("AT^CVOICE?", t)
        voice = cvoice.ok and any(line.startswith("^CVOICE:") for line in cvoice.lines)
    return Identity(imei=imei, imsi=imsi, iccid=iccid, voice=voice)


async def lte_module(chan: AtChannel, timeouts: ProbeTimeouts, family: Family) -> Identity:
    """An LTE module (Quectel, SIMCom): the same identity, asked in its own dialect. No Huawei
    `^` command: its voice is read from the family's read-only PCM query instead."""
    t = timeouts.command
    echo = await chan.command("ATE0", timeouts.first)
    if not echo.ok:
        raise ProbeError(chan.port, f"ATE0 answered {echo.final}")
    maker = await chan.command("AT+CGMI", t)
    model = await chan.command("AT+CGMM", t)
    firmware = await chan.command("AT+CGMR", t)
    cgsn = await chan.command("AT+CGSN", t)
    imei = imei_from_cgsn(cgsn.lines) if cgsn.ok else None
    if imei is None:
        gsn = await chan.command(lte.IMEI_FALLBACK, t)
        imei = imei_from_cgsn(gsn.lines) if gsn.ok else None
    ati_said = ""
    if imei is None:  # as for the Huawei sticks: ATI's `IMEI:` line, where it prints one
        ati = await chan.command(lte.ATI_FALLBACK, t)
        imei, ati_said = _imei_from_ati(parse_ati(ati.lines) if ati.ok else {})
    if imei is None:
        raise ProbeError(chan.port, f"no valid IMEI (AT+CGSN: {cgsn.final}; {ati_said})")
    cimi = await chan.command("AT+CIMI", t)
    imsi = imsi_from_cimi(cimi.lines) if cimi.ok else None
    iccid = None
    if imsi is not None:
        answer = await chan.command(lte.PROBE_COMMANDS[family][-1], t)
        iccid = lte.iccid_from_lte_answer(answer.lines) if answer.ok else None
    pcm = await chan.command(lte.VOICE_QUERY[family], t)
    voice = True if pcm.ok and any(line.startswith("+") for line in pcm.lines) else None
    return Identity(
        imei=imei,
        imsi=imsi,
        iccid=iccid,
        manufacturer=_first_info(maker),
        model=_first_info(model),
        firmware=_clean(lte.firmware_from_cgmr(lte.info_lines(firmware.lines, firmware.command)))
        if firmware.ok
        else "",
        voice=voice,
        voice_answer=_voice_answer(pcm, voice is True),
    )


def _first_info(reply: at.Reply) -> str:
    """The first line of an answer that is its own (no boot message, no result code)."""
    return _clean(next(iter(lte.info_lines(reply.lines, reply.command)), "")) if reply.ok else ""


def _imei_from_ati(info: dict[str, str]) -> tuple[str | None, str]:
    """The IMEI of ATI's `IMEI:` line, or None and what ATI said instead (for the error: a
    masked line is not "none")."""
    if "imei" not in info:
        return None, "ATI has no IMEI: line"
    value = info["imei"]
    if valid_imei(value):
        return value, ""
    # A masked IMEI has stars; anything else odd is not repeated into the journal.
    shown = value if _ATI_IMEI_SHOWN.fullmatch(value) else "unprintable"
    return None, f"ATI's IMEI: line is {shown!r}, {imei_problem(value) or 'not usable'}"


def _voice_answer(reply: at.Reply, voice: bool) -> str:
    """What the voice query answered, for a warning about a stick without voice."""
    if voice:
        return ""
    if not reply.ok:
        return _clean(reply.final) or "an error"
    return f"OK with no {reply.command.removeprefix('AT').rstrip('?')}: line"


async def huawei(chan: AtChannel, timeouts: ProbeTimeouts) -> Identity:
    t = timeouts.command
    echo = await chan.command("ATE0", timeouts.first)  # also proves this is an AT port
    if not echo.ok:
        raise ProbeError(chan.port, f"ATE0 answered {echo.final}")
    ati = await chan.command("ATI", t)
    info = parse_ati(ati.lines) if ati.ok else {}
    cgsn = await chan.command("AT+CGSN", t)
    imei = imei_from_cgsn(cgsn.lines) if cgsn.ok else None
    ati_said = ""
    if imei is None:
        imei, ati_said = _imei_from_ati(info)
    if imei is None:
        raise ProbeError(chan.port, f"no valid IMEI (AT+CGSN: {cgsn.final}; {ati_said})")
    cimi = await chan.command("AT+CIMI", t)
    imsi = imsi_from_cimi(cimi.lines) if cimi.ok else None
    iccid = None
    if imsi is not None:  # no SIM, no ICCID: one command less on such a stick
        answer = await chan.command("AT^ICCID?", t)  # Huawei; others answer ERROR
        iccid = iccid_from_answer(answer.lines) if answer.ok else None
    cvoice = await chan.command("AT^CVOICE?", t)
    voice = cvoice.ok and any(line.startswith("^CVOICE:") for line in cvoice.lines)
    return Identity(
        voice_answer=_voice_answer(cvoice, voice),
        imei=imei,
        imsi=imsi,
        iccid=iccid,
        manufacturer=_clean(info.get("manufacturer", "")),
        model=_clean(info.get("model", "")),
        firmware=_clean(info.get("revision", "")),
        voice=voice,
    )
