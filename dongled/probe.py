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
import re
import struct
import threading
from dataclasses import dataclass

import serial

from dongled import at
from dongled.drivers import quectel as lte
from dongled.drivers.quectel import Family
from dongled.errors import PortBusyError, ProbeError, ProbeTimeoutError, TooLongAnswer
from dongled.identity import (
    Identity,
    iccid_from_answer,
    imei_from_cgsn,
    imei_problem,
    imsi_from_cimi,
    parse_ati,
    valid_imei,
)
from dongled.identity import clean_text as _clean
from dongled.portlock import holder, uucp_lock

log = logging.getLogger(__name__)

_ATI_IMEI_SHOWN = re.compile(r"[0-9A-Za-z*#. -]{1,32}")
TIOCGEXCL = 0x80045440  # Linux >= 3.8: is TIOCEXCL set on this tty?
TIOCGSERIAL, TIOCSSERIAL = 0x541E, 0x541F
# struct serial_struct: closing_wait (unsigned short) sits at byte 40 on every Linux ABI
# (only fixed-size fields come before it); 65535 is ASYNC_CLOSING_WAIT_NONE.
CLOSING_WAIT_AT, CLOSING_WAIT_NONE = 40, 65535
SERIAL_STRUCT_SIZE = 128  # at least sizeof(struct serial_struct) (72 on 64-bit)


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


def held_by_another(port: str) -> bool:
    """Whether another program holds `port` with TIOCEXCL or flock (a driver without lock
    files, such as chan_quectel's RoEdAl fork, marks the ttys it runs only so)."""
    try:
        _check_not_owned(port)
    except PortBusyError:
        return True
    except ProbeError:
        return False
    return False


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

    async def close(self) -> None:
        if not self._gone:
            asyncio.get_running_loop().remove_reader(self._fd)
        await close_off_loop(self._ser)


async def close_off_loop(ser: serial.Serial) -> None:
    """Close a port in a thread: on a hung usb_wwan stick close() waits for the output to
    drain, the kernel's closing_wait (30 s unless set to none, see `no_closing_wait`), as
    long as systemd's watchdog; the event loop must not wait with it."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def finish() -> None:
        if not done.done():
            done.set_result(None)

    def close() -> None:
        with contextlib.suppress(OSError, serial.SerialException):
            ser.close()
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile (shutdown)
            loop.call_soon_threadsafe(finish)

    # A thread of its own, not the shared I/O pool: a hung stick's close holds only itself,
    # never the file writes queued behind it; the thread ends once the kernel lets go.
    threading.Thread(target=close, name="dongled-close", daemon=True).start()
    await asyncio.shield(done)


def no_closing_wait(fd: int) -> bool:
    """Set closing_wait to none on a serial port (TIOCSSERIAL, as ModemManager does), so its
    close() never waits for a hung stick to drain. A pty or odd tty (ENOTTY, EINVAL) or a
    refusal (EPERM) leaves it as it is: False."""
    try:
        buf = bytearray(fcntl.ioctl(fd, TIOCGSERIAL, bytes(SERIAL_STRUCT_SIZE)))
        struct.pack_into("H", buf, CLOSING_WAIT_AT, CLOSING_WAIT_NONE)
        fcntl.ioctl(fd, TIOCSSERIAL, bytes(buf))
    except OSError as exc:
        log.debug("closing_wait left as it is (fd %d): %s", fd, exc.strerror)
        return False
    return True


def _open_serial(port: str) -> serial.Serial:
    try:
        # A stick pulled since the ownership check (which waited on the port's own replies)
        # is said to be gone without a second open() (see _check_not_owned).
        os.stat(port)
    except OSError:
        raise ProbeError(port, "no such port (unplugged?)") from None
    try:
        # exclusive=True takes flock() for the probe's duration, like other well-behaved tools.
        ser = serial.Serial(port, baudrate=115200, timeout=0, exclusive=True)
    except (OSError, serial.SerialException) as exc:
        raise ProbeError(port, f"cannot open: {exc}") from None
    no_closing_wait(ser.fileno())
    return ser


async def identify_port(
    port: str,
    lock_dir: str,
    timeouts: ProbeTimeouts,
    family: Family | None = None,
    *,
    lean: bool = False,
) -> Identity:
    """Identify the stick whose AT port is `port`; ProbeError says why not. `lean`: only what
    binding needs (the daemon's probe of a returning stick, see `_lean_conversation`)."""
    owner = holder(lock_dir, port)
    if owner is not None and owner != os.getpid():
        raise PortBusyError(port, f"locked by pid {owner}; not touched")
    _check_not_owned(port)
    with uucp_lock(lock_dir, port):
        chan = AtChannel(port, _open_serial(port))
        try:
            if lean:
                return await _lean_conversation(chan, timeouts, family)
            if family is not None:
                return await _lte_conversation(chan, timeouts, family)
            return await _conversation(chan, timeouts)
        finally:
            await chan.close()


async def _lean_conversation(
    chan: AtChannel, timeouts: ProbeTimeouts, family: Family | None
) -> Identity:
    """The fewest commands that prove which stick this is, in its own dialect: the IMEI and
    the IMSI (sections of clones are told apart by it), and then one more: the ICCID when
    there is a SIM, else the voice query. Every command here delays the line's return (the
    port is Asterisk's as soon as the file is written), so the rest waits: the model and
    voice of a stick Asterisk runs come from its listing once the device is verified. A
    SIM-less stick never comes up in Asterisk, so its voice is asked here."""
    t = timeouts.command
    echo = await chan.command("ATE0", timeouts.first)  # also proves this is an AT port
    if not echo.ok:
        raise ProbeError(chan.port, f"ATE0 answered {echo.final}")
    cgsn = await chan.command("AT+CGSN", t)
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


async def _lte_conversation(chan: AtChannel, timeouts: ProbeTimeouts, family: Family) -> Identity:
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


async def _conversation(chan: AtChannel, timeouts: ProbeTimeouts) -> Identity:
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


async def answers_at(port: str, lock_dir: str, limit: float) -> bool:
    """Whether the modem on `port` answers a bare `AT` with OK within `limit` seconds (the
    gentlest command there is). False when it does not, or when another program holds the
    port (nothing is sent then)."""
    if holder(lock_dir, port) not in (None, os.getpid()):
        return False
    try:
        _check_not_owned(port)
        with uucp_lock(lock_dir, port):
            chan = AtChannel(port, _open_serial(port))
            try:
                return (await chan.command("AT", limit)).ok
            finally:
                await chan.close()
    except ProbeError:
        return False


async def line_quiet(port: str, lock_dir: str, quiet: float, limit: float) -> bool:
    """Hold `port` under our UUCP lock and read it, sending nothing, until no byte has come
    for `quiet` seconds: True. False if another program holds it or it keeps talking past
    `limit` seconds. A port that no longer exists is quiet."""
    if _gone(port):
        return True
    owner = holder(lock_dir, port)
    if owner is not None and owner != os.getpid():
        return False
    try:
        _check_not_owned(port)
        with uucp_lock(lock_dir, port):
            ser = _open_serial(port)
            try:
                return await _drain(ser.fileno(), quiet, limit)
            finally:
                await close_off_loop(ser)
    except PortBusyError:
        return False
    except ProbeError:
        return _gone(port)  # vanished meanwhile: nothing can be in flight


def _gone(port: str) -> bool:
    return not os.path.exists(port)


async def _drain(fd: int, quiet: float, limit: float) -> bool:
    loop = asyncio.get_running_loop()
    got = asyncio.Event()
    drained = 0

    def readable() -> None:
        nonlocal drained
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # hung up: the stick went away, nothing more will come
            loop.remove_reader(fd)
        drained += len(data)
        got.set()

    loop.add_reader(fd, readable)
    try:
        start = last = loop.time()
        while (now := loop.time()) - last < quiet:
            if now - start > limit:
                return False
            got.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(quiet - (now - last)):
                    await got.wait()
                    last = loop.time()
        if drained:
            log.info("drained %d stale byte(s) from a just-stopped port", drained)
        return True
    finally:
        loop.remove_reader(fd)
