"""The reader's side of the status document: what `dongled status` makes of it (its exit
code, the table, every problem in words). Separate from the daemon's side (`snapshot`,
`writer`) so that `dongled status` imports none of the daemon's rooms: it needs no root and
no AMI, and starts fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dongled.status.linestatus import LineStatus

# Section statuses: every one but these two makes `dongled status` exit 1. A managed line
# that is not verified on its own stick (absent/parked, pending, mismatch, ambiguous) is a
# line that cannot take calls: a monitoring check must say so.
SECTION_FINE = tuple(s.value for s in LineStatus if s.fine)


def exit_ok(doc: Mapping[str, Any]) -> bool:
    """Exit 0 of `dongled status` (a monitoring check): Asterisk connected, no conf problem,
    every managed section verified on its own stick, every plugged stick identified and named
    by a section, no stick given up or stuck in storage mode, no config warning (a section
    name two files use: status and recovery see only one of them)."""
    if not doc.get("ami_connected") or doc.get("conf_error") or doc.get("conf_warnings"):
        return False
    if any(r.get("status") not in SECTION_FINE for r in doc.get("sections", [])):
        return False
    if any(w.get("stuck") for w in doc.get("switching", [])):
        return False
    if any(r.get("given_up") for r in doc.get("recovery", {}).values()):
        return False
    return all(s.get("status") == "bound" for s in doc.get("sticks", []))


TABLE_HEAD = (
    "DEVICE",
    "IMEI",
    "DATA",
    "AUDIO",
    "USB",
    "MODEL",
    "VOICE",
    "ASTERISK",
    "VERIFIED",
    "LAST CHANGE",
    "STATUS",
)


def _cell(value: object) -> str:
    if value is None or value == "":
        return "-"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)


def _short_time(stamp: object) -> str:
    # 2025-11-25T20:40:01+0000 -> 2025-11-25 20:40:01
    return str(stamp)[:19].replace("T", " ") if stamp else "-"


def _row(r: dict[str, Any], device: str, asterisk: str, verified: str) -> tuple[str, ...]:
    """One table row, in TABLE_HEAD's order, from a section or stick row of the document."""
    return (
        device,
        _cell(r.get("imei")),
        _cell(r.get("data")),
        _cell(r.get("alsadev") or r.get("audio")),  # the voice: its ALSA card with USB audio
        _cell(r.get("usb_port")),
        _cell(r.get("model")),
        _cell(r.get("voice")),
        asterisk,
        verified,
        _short_time(r.get("last_change")),
        _cell(r.get("status")),
    )


def render_table(doc: dict[str, Any]) -> list[str]:
    """The IMEI-to-port table: one row per device section, then the plugged sticks that no
    section names (unidentified or unbound), then the summary and every problem in words."""
    rows: list[tuple[str, ...]] = [TABLE_HEAD]
    for r in doc.get("sections", []):
        rows.append(
            _row(
                r,
                _cell(r.get("section")),
                _cell(r.get("asterisk_state")),
                _cell(bool(r.get("verified"))),
            )
        )
    for s in doc.get("sticks", []):
        if s.get("section") is None:  # a stick no section names: no device, not verified
            rows.append(_row(s, "-", "-", "no"))
    for w in doc.get("switching", []):
        status = "stuck" if w.get("stuck") else "switching"
        rows.append(
            (
                "-",
                "-",
                "-",
                "-",
                _cell(w.get("usb_port")),
                _cell(w.get("vid_pid")),
                "-",
                "-",
                "no",
                "-",
                status,
            )
        )
    if "+" in str(doc.get("driver", "")):  # two drivers on this box: say whose each device is
        whose = ["DRIVER"] + [_cell(r.get("driver")) for r in doc.get("sections", [])]
        whose += ["-"] * (len(rows) - len(whose))
        rows = [(r[0], w, *r[1:]) for r, w in zip(rows, whose, strict=True)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    out.append("")
    ami = "connected" if doc.get("ami_connected") else "NOT connected"
    driver = doc.get("driver", "chan_dongle")
    out.append(f"{doc.get('summary', '')}; {driver} over Asterisk AMI {ami}")
    return out + problems(doc)


def problems(doc: dict[str, Any]) -> list[str]:
    """Every problem of the document in words, one line each (what the table ends with)."""
    out: list[str] = []
    if not doc.get("ami_connected"):
        out.append("Asterisk AMI not connected: no line can be verified (see the daemon's log)")
    if doc.get("conf_error"):
        out.append(f"config problem: {doc['conf_error']}")
    for warning in doc.get("conf_warnings") or []:
        out.append(f"config problem: {warning}")
    for r in doc.get("sections", []):
        if r.get("status") not in SECTION_FINE:
            out.append(f"[{r.get('section')}] {r.get('status')}: {r.get('detail') or ''}")
    for port, rec in doc.get("recovery", {}).items():
        if rec.get("given_up"):
            out.append(f"stick at USB {port}: recovery given up: {rec['given_up']}")
        elif rec.get("last_step"):
            out.append(f"stick at USB {port}: recovering, last step {rec['last_step']}")
    for s in doc.get("sticks", []):
        for what in s.get("limits") or []:
            out.append(f"stick at USB {s.get('usb_port')} (IMEI {s.get('imei')}): {what}")
    for w in doc.get("switching", []):
        if w.get("stuck"):
            out.append(
                f"stick at USB {w.get('usb_port')} is still in storage mode after "
                f"{w.get('seconds')} s: check usb_modeswitch and its rule for {w.get('vid_pid')}"
            )
    for s in doc.get("sticks", []):
        if s.get("section") is None:
            why = s.get("error") or (
                f"IMEI {s.get('imei')} is named by no section (add it with imei=)"
                if s.get("imei")
                else "not identified yet"
            )
            out.append(f"stick at USB {s.get('usb_port')} {s.get('status')}: {why}")
    return out
