"""A modem's port: whether another program holds it, opening it so that closing cannot hang,
closing it off the event loop, one AT command at a time on it, and reading it quiet.

Apart from the probe's conversations (conversation.py) because this is what any use of a
port needs, whatever is said on it: the kernel's side (TIOCEXCL, flock, TIOCSSERIAL's
closing_wait, a close that blocks on a hung stick) and bounded waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import struct
import threading

import serial

from dongled.core.errors import PortBusyError, ProbeError, ProbeTimeoutError, TooLongAnswer
from dongled.modem import at
from dongled.modem.portlock import holder, uucp_lock

log = logging.getLogger(__name__)

TIOCGEXCL = 0x80045440  # Linux >= 3.8: is TIOCEXCL set on this tty?
TIOCGSERIAL, TIOCSSERIAL = 0x541E, 0x541F
# struct serial_struct: closing_wait (unsigned short) sits at byte 40 on every Linux ABI
# (only fixed-size fields come before it); 65535 is ASYNC_CLOSING_WAIT_NONE.
CLOSING_WAIT_AT, CLOSING_WAIT_NONE = 40, 65535
SERIAL_STRUCT_SIZE = 128  # at least sizeof(struct serial_struct) (72 on 64-bit)


def check_not_owned(port: str) -> None:
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
        check_not_owned(port)
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


def open_serial(port: str) -> serial.Serial:
    try:
        # A stick pulled since the ownership check (which waited on the port's own replies)
        # is said to be gone without a second open() (see check_not_owned).
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
        check_not_owned(port)
        with uucp_lock(lock_dir, port):
            ser = open_serial(port)
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
