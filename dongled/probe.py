"""A short, harmless AT conversation that tells which stick sits behind a port.

Only read-only commands are sent (ATE0 only changes echo, as chan_dongle's own init does);
never ATZ, CFUN or anything else that changes the modem's state. A port another live
process owns (UUCP lock, TIOCEXCL, flock) is left alone before a single byte is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import struct
from dataclasses import dataclass

import serial

from dongled import at
from dongled.errors import PortBusyError, ProbeError, ProbeTimeoutError, TooLongAnswer
from dongled.identity import (
    Identity,
    iccid_from_answer,
    imei_from_cgsn,
    imsi_from_cimi,
    parse_ati,
    valid_imei,
)
from dongled.identity import clean_text as _clean
from dongled.portlock import holder, uucp_lock

log = logging.getLogger(__name__)

TIOCGEXCL = 0x80045440  # Linux >= 3.8: is TIOCEXCL set on this tty?


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeTimeouts:
    first: float = 1.0  # ATE0: a silent (voice/diag) port is given up on quickly
    command: float = 2.0


def _check_not_owned(port: str) -> None:
    """Refuse a port another program holds with TIOCEXCL or flock; sends nothing."""
    try:
        # A port that vanished since its udev event is reported as such, without an open()
        # (under umockdev's preload a failed open() of a /dev node also leaks a socket).
        os.stat(port)
    except OSError:
        raise ProbeError(port, "no such port (unplugged?)") from None
    try:
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            raise PortBusyError(port, "opened exclusively (TIOCEXCL) by another program") from None
        raise ProbeError(port, f"cannot open: {exc.strerror}") from None
    try:
        with contextlib.suppress(OSError):  # ENOTTY on odd ttys: nothing to learn
            (excl,) = struct.unpack("i", fcntl.ioctl(fd, TIOCGEXCL, b"\0\0\0\0"))
            if excl:
                raise PortBusyError(port, "opened exclusively (TIOCEXCL) by another program")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PortBusyError(port, "flock()ed by another program") from None
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class AtChannel:
    """One open port: one command in flight, every wait bounded, EIO means the stick is gone."""

    def __init__(self, port: str, ser: serial.Serial) -> None:
        self.port = port
        self._ser = ser
        self._fd: int = ser.fileno()
        self._splitter = at.LineSplitter()
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._gone = False
        asyncio.get_running_loop().add_reader(self._fd, self._on_readable)

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # EIO or hang-up: the stick went away under us
            self._gone = True
            asyncio.get_running_loop().remove_reader(self._fd)
            self._lines.put_nowait(None)
            return
        for line in self._splitter.feed(data):
            self._lines.put_nowait(line)

    async def command(self, cmd: str, limit: float) -> at.Reply:
        # Anything still queued is late chatter from before this command: drop it.
        while not self._lines.empty():
            self._lines.get_nowait()
        if self._gone:
            raise ProbeError(self.port, "port vanished")
        try:
            os.write(self._fd, cmd.encode("ascii") + b"\r")
        except OSError as exc:
            raise ProbeError(self.port, f"write failed: {exc.strerror}") from None
        collector = at.ReplyCollector(cmd)
        try:
            async with asyncio.timeout(limit):
                while True:
                    line = await self._lines.get()
                    if line is None:
                        raise ProbeError(self.port, f"port vanished during {cmd}")
                    reply = collector.add(line)
                    if reply is not None:
                        return reply
        except TimeoutError:
            raise ProbeTimeoutError(self.port, f"no answer to {cmd} within {limit:g} s") from None
        except TooLongAnswer:
            raise ProbeError(self.port, f"endless answer to {cmd}") from None

    def close(self) -> None:
        if not self._gone:
            asyncio.get_running_loop().remove_reader(self._fd)
        with contextlib.suppress(OSError, serial.SerialException):
            self._ser.close()


def _open_serial(port: str) -> serial.Serial:
    try:
        # exclusive=True takes flock() for the probe's duration, like other well-behaved tools.
        return serial.Serial(port, baudrate=115200, timeout=0, exclusive=True)
    except (OSError, serial.SerialException) as exc:
        raise ProbeError(port, f"cannot open: {exc}") from None


async def identify_port(port: str, lock_dir: str, timeouts: ProbeTimeouts) -> Identity:
    """Identify the stick whose AT port is `port`; ProbeError says why not."""
    owner = holder(lock_dir, port)
    if owner is not None and owner != os.getpid():
        raise PortBusyError(port, f"locked by pid {owner}; not touched")
    _check_not_owned(port)
    with uucp_lock(lock_dir, port):
        chan = AtChannel(port, _open_serial(port))
        try:
            return await _conversation(chan, timeouts)
        finally:
            chan.close()


async def _conversation(chan: AtChannel, timeouts: ProbeTimeouts) -> Identity:
    t = timeouts.command
    echo = await chan.command("ATE0", timeouts.first)  # also proves this is an AT port
    if not echo.ok:
        raise ProbeError(chan.port, f"ATE0 answered {echo.final}")
    ati = await chan.command("ATI", t)
    info = parse_ati(ati.lines) if ati.ok else {}
    cgsn = await chan.command("AT+CGSN", t)
    imei = imei_from_cgsn(cgsn.lines) if cgsn.ok else None
    if imei is None:
        fallback = info.get("imei", "")
        imei = fallback if valid_imei(fallback) else None
    if imei is None:
        raise ProbeError(chan.port, f"no valid IMEI (AT+CGSN: {cgsn.final}; ATI has none)")
    cimi = await chan.command("AT+CIMI", t)
    imsi = imsi_from_cimi(cimi.lines) if cimi.ok else None
    iccid = None
    if imsi is not None:  # no SIM, no ICCID: one command less on such a stick
        answer = await chan.command("AT^ICCID?", t)  # Huawei; others answer ERROR
        iccid = iccid_from_answer(answer.lines) if answer.ok else None
    cvoice = await chan.command("AT^CVOICE?", t)
    voice = cvoice.ok and any(line.startswith("^CVOICE:") for line in cvoice.lines)
    return Identity(
        imei=imei,
        imsi=imsi,
        iccid=iccid,
        manufacturer=_clean(info.get("manufacturer", "")),
        model=_clean(info.get("model", "")),
        firmware=_clean(info.get("revision", "")),
        voice=voice,
    )
