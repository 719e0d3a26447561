"""The AT protocol with no I/O: bytes in, lines and final results out.

Huawei sticks interleave unsolicited lines (`^RSSI:`, `RING`, ...) anywhere, echo commands
while echo is on, and a failing stick can send garbage or never finish a line: the parser
drops what it cannot use and never grows without bound.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dongled.core.errors import TooLongAnswer

MAX_LINE = 512  # no sane AT answer line is longer; longer input is discarded as garbage
MAX_LINES = 64  # an answer with more lines than this is treated as a broken modem

_FINAL_OK = "OK"
_FINAL_ERRORS = ("ERROR", "+CME ERROR", "+CMS ERROR", "NO CARRIER", "COMMAND NOT SUPPORT")

# Unsolicited result codes seen on Huawei sticks and in 3GPP 27.007. A command's own
# answer prefix (e.g. `^CVOICE:` for `AT^CVOICE?`) is never treated as unsolicited.
_UNSOLICITED = (
    "^RSSI:",
    "^BOOT:",
    "^MODE:",
    "^DSFLOWRPT:",
    "^SRVST:",
    "^SIMST:",
    "^CEND:",
    "^ORIG:",
    "^CONF:",
    "^CONN:",
    "^STIN:",
    "^SMMEMFULL",
    "^RFSWITCH:",
    "^HCSQ:",
    "^SYSSTART",
    "^CSNR:",
    "^NWTIME:",
    "+CREG:",
    "+CGREG:",
    "+CLIP:",
    "+CRING:",
    "+CMTI:",
    "+CMT:",
    "+CDS:",
    "+CUSD:",
    "+CSSI:",
    "+CSSU:",
    "+CCWA:",
    "RING",
)


def is_final(line: str) -> bool:
    return line == _FINAL_OK or line.startswith(_FINAL_ERRORS)


def is_unsolicited(line: str, command: str) -> bool:
    if not line.startswith(_UNSOLICITED):
        return False
    prefix = line.split(":", 1)[0]
    # `AT+CREG?` answers `+CREG: ...` itself.
    return not command.upper().startswith("AT" + prefix)


_PRINTABLE = re.compile(r"^[\x20-\x7e]*$")


class LineSplitter:
    """Splits a byte stream into printable text lines; bounded memory whatever arrives."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._overflow = False

    def feed(self, data: bytes) -> list[str]:
        lines: list[str] = []
        for byte in data:
            if byte in (0x0D, 0x0A):
                if self._overflow:
                    self._overflow = False
                elif self._buf:
                    self._emit(bytes(self._buf), lines)
                self._buf.clear()
            elif len(self._buf) >= MAX_LINE:
                self._buf.clear()
                self._overflow = True
            elif not self._overflow:
                self._buf.append(byte)
        return lines

    def _emit(self, raw: bytes, lines: list[str]) -> None:
        text = raw.decode("ascii", "replace").strip()
        if not text:
            return
        if _PRINTABLE.match(text) is None:
            return
        lines.append(text)


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    command: str
    lines: tuple[str, ...]  # information lines, without echo and unsolicited lines
    final: str

    @property
    def ok(self) -> bool:
        return self.final == _FINAL_OK


class ReplyCollector:
    """Collects the answer to one command from lines, skipping echo and unsolicited lines."""

    def __init__(self, command: str) -> None:
        self.command = command
        self._lines: list[str] = []
        self.unsolicited: list[str] = []

    def add(self, line: str) -> Reply | None:
        if line.upper() == self.command.upper():
            return None  # echo (ATE1 is the power-up default)
        if is_final(line):
            return Reply(command=self.command, lines=tuple(self._lines), final=line)
        if is_unsolicited(line, self.command):
            self.unsolicited.append(line)
            return None
        self._lines.append(line)
        if len(self._lines) > MAX_LINES:
            raise TooLongAnswer(self.command, len(self._lines))
        return None
