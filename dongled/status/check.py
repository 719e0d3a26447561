"""`dongled status --check`: the status document as one monitoring-plugin verdict.

Nagios, Icinga and their kin show a check's first output line as its text and take its exit
code as the state. `verdict` decides both from the status document (schema 1), purely:

- CRITICAL (2): a managed line cannot take calls on its own SIM, or dongled cannot keep it
  so: a line absent (its stick gone, the section parked), running a foreign IMEI
  (`mismatch`), `ambiguous` (clones), its stick given up by the recovery ladder, or
  Asterisk's AMI down (no line can be verified, nor a foreign binding stopped).
- WARNING (1): everything else that makes `dongled status` exit 1 while every line still
  runs or may soon: a line `pending` (being verified), a plugged stick unidentified, failed,
  busy or named by no section, a stick stuck in storage mode, a config file that does not
  parse or could not be written, a config warning (a section name both files use).
- OK (0): what makes `dongled status` exit 0.
- UNKNOWN (3), from `unknown`: the daemon does not run, or its status cannot be read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
WORDS = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}

_CRITICAL_LINES = ("absent", "mismatch", "ambiguous")


@dataclass(frozen=True, slots=True)
class Verdict:
    code: int  # the plugin exit code
    text: str  # the first line, after "WORD: "

    @property
    def line(self) -> str:
        return f"{WORDS[self.code]}: {self.text}"


def unknown(why: str) -> Verdict:
    return Verdict(UNKNOWN, why)


def _lines(n: int) -> str:
    return f"{n} line" if n == 1 else f"{n} lines"


def verdict(doc: Mapping[str, Any]) -> Verdict:
    """The check's state and first line for a status document."""
    sections = [r for r in doc.get("sections", []) if r.get("status") != "unmanaged"]
    verified = sum(1 for r in sections if r.get("status") == "ok")
    given_up_ports = {
        port for port, rec in (doc.get("recovery") or {}).items() if rec.get("given_up")
    }
    ami_up = bool(doc.get("ami_connected"))
    critical: list[str] = []
    warning: list[str] = []
    said_ports: set[str] = set()  # given-up ports already named through their line
    for r in sections:
        name, status = r.get("section"), r.get("status")
        if status in _CRITICAL_LINES:
            critical.append(f"{name} {status}")
        elif status == "ok":
            continue
        elif r.get("usb_port") in given_up_ports:
            critical.append(f"{name} given up")
            said_ports.add(r["usb_port"])
        elif ami_up:  # with AMI down, "AMI down" says why every such line is unverified
            warning.append(f"{name} {status}")
    if not ami_up:
        critical.append("AMI down")
    if doc.get("conf_error"):
        warning.append("config problem")  # does not parse, or a write failed
    if doc.get("conf_warnings"):
        warning.append("config warning")  # e.g. a section name two files use
    for s in doc.get("sticks", []):
        if s.get("status") != "bound" and s.get("usb_port") not in given_up_ports:
            warning.append(f"stick at USB {s.get('usb_port')} {s.get('status')}")
    for port in sorted(given_up_ports - said_ports):
        critical.append(f"stick at USB {port} given up")
    for w in doc.get("switching", []):
        if w.get("stuck"):
            warning.append(f"stick at USB {w.get('usb_port')} stuck in storage mode")
    if critical:
        return Verdict(CRITICAL, ", ".join(critical + warning))
    if warning:
        return Verdict(WARNING, ", ".join(warning))
    if not sections:
        return Verdict(OK, "no managed lines (no section has imei=)")
    return Verdict(OK, f"{verified} of {_lines(len(sections))} on their own stick")
