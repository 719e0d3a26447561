"""How the test chan_dongle (and a chan_quectel fork) claims a device's ttys: the lock file
"<pid> <fd>" and TIOCEXCL of chan_dongle and IM, or RE's TIOCEXCL + flock() with no lock file.

One `TtyClaims` per Asterisk process: its `holders` (tty -> the device that has it open) is
shared by every driver the process hosts, since a tty one driver still holds is as busy for
the others (the same pid in the lock file). Runs on the FakeAsterisk loop thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import termios
import tty
from collections.abc import Callable
from typing import TYPE_CHECKING

from .devguard import check_device_path
from .fake_asterisk_journal import Journal
from .testbed import DEVICE_LOCK

if TYPE_CHECKING:
    from .fake_asterisk_dongle import Device

TIOCGEXCL = 0x80045440  # _IOR('T', 0x40, int), not in termios


class RefusedError(Exception):
    """The driver gives up opening a tty (locked, in use): logged, no DonglePortFail."""


class TtyClaims:
    """Opening, locking and letting go of ttys, for the drivers of one Asterisk process.

    `lock_files` False is RE's way: no lock files, the open tty itself is claimed (TIOCEXCL
    and flock). `open_path` maps a configured path to what open() is given (the benchmark
    opens the pty behind it)."""

    def __init__(
        self,
        lock_dir: str,
        journal: Journal,
        *,
        lock_files: bool = True,
        holders: dict[str, Device] | None = None,
        open_path: Callable[[str], str] = str,
    ) -> None:
        self._lock_dir = lock_dir
        self._journal = journal
        self._lock_files = lock_files
        self.holders: dict[str, Device] = {} if holders is None else holders
        self._open_path = open_path

    def lock_path(self, real: str) -> str:
        return os.path.join(self._lock_dir, "LCK.." + os.path.basename(real))

    def check_lock(self, device: Device, path: str, real: str) -> bool:
        """Refuse a port locked by a live process (RefusedError); True when the holder is a
        device of ours that is still closing (the real chan_dongle opened such a port).
        Without lock files: False (the open tty itself is locked, see `exclusive`)."""
        if not self._lock_files:
            return False
        lock = self.lock_path(real)
        try:
            with open(lock, "rb") as handle:
                content = handle.read(64)
        except FileNotFoundError:
            holder = self.holders.get(real)
            if holder is not None and holder is not device:
                self._journal.hazard(
                    f"[{device.name}] opens {path} ({real}) which [{holder.name}] has open, no "
                    "lock file: both read one AT stream (replies shift, chan_dongle may crash)"
                )
            return False
        except OSError:
            return False
        fields = content.split()
        try:
            pid = int(fields[0]) if fields else 0
        except ValueError:
            pid = 0
        own = os.getpid()
        if pid == own:
            holder = self.holders.get(real)
            if holder is None or holder is device:
                return False  # our own leftover: taken over
            if holder.closing is not None:
                return True
            self._journal.log(f"[{device.name}] {path} already used by process {pid}")
            self._journal.hazard(
                f"[{device.name}] wants {path} ({real}) still held by [{holder.name}]: real "
                "chan_dongle loses an interval here, shifts AT replies and may crash"
            )
            raise RefusedError(path)
        if pid > 0 and _alive(pid):
            self._journal.log(f"[{device.name}] {path} already used by process {pid}")
            raise RefusedError(path)
        self._journal.log(f"[{device.name}] removing stale lock {lock} (pid {pid})")
        with contextlib.suppress(OSError):
            os.unlink(lock)
        return False

    def open_tty(self, device: Device, path: str) -> tuple[int, bool]:
        """Lock check, open, raw mode, TIOCEXCL, our lock "<pid> <fd>": chan_dongle's opentty.
        Also says whether another device was still closing this tty."""
        # Under the testbed's lock: umockdev's preload aborts when a lookup here races the
        # removal of the node by the test thread (see testbed.DEVICE_LOCK).
        with DEVICE_LOCK:
            real = os.path.realpath(path)
            closing = self.check_lock(device, path, real)
            # stat first: under umockdev's preload a failing open() of a /dev path leaks the
            # preload's ioctl connection and a slot of its 50-entry fd table (seen: the soak
            # aborted after ~40 cycles of chan_dongle retrying vanished ports). Same errno.
            check_device_path(path)  # a real tty outside the testbed: absent, as on a clean box
            os.stat(path)
            fd = os.open(self._open_path(path), os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            tty.setraw(fd)
            self.exclusive(device, path, fd)
        except termios.error as exc:
            # A stick pulled after the open (its pty's master gone: EIO). chan_dongle's
            # opentty fails the same way ("unable to get terminal attributes") and the device
            # stays down; termios.error is no OSError, and it escaped a whole reload (seen in
            # a 1000-cycle soak: every device after it kept its old ttys).
            os.close(fd)
            raise OSError(exc.args[0], f"tcgetattr: {exc.args[1]}") from None
        except BaseException:
            os.close(fd)
            raise
        self.take_lock(device, path, real, fd)
        device.reals.append(real)
        if closing:
            self._journal.hazard(
                f"[{device.name}] opens {path} while [{self.holders[real].name}] is still "
                "closing it: a stopped device's last command is still in flight"
            )
        self.holders[real] = device
        return fd, closing

    def exclusive(self, device: Device, path: str, fd: int) -> None:
        """Claim the open tty (chan_dongle: TIOCEXCL); raise RefusedError to give it up.

        RE's tty_open: refuse a tty in exclusive mode, then TIOCEXCL and flock(LOCK_EX|LOCK_NB).
        """
        if self._lock_files:
            fcntl.ioctl(fd, termios.TIOCEXCL)
            return
        (locked,) = struct.unpack("i", fcntl.ioctl(fd, TIOCGEXCL, b"\0" * 4))
        if locked:
            self._journal.log(f"Device {path} locked.")
            raise RefusedError(path)
        fcntl.ioctl(fd, termios.TIOCEXCL)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._journal.log(f"[TTY] Unable to flock {path}: {exc.strerror}")
            with contextlib.suppress(OSError):
                fcntl.ioctl(fd, termios.TIOCNXCL)
            raise RefusedError(path) from exc

    def take_lock(self, device: Device, path: str, real: str, fd: int) -> None:
        """chan_dongle's lock file "<pid> <fd>" (closes `fd` and refuses when it cannot);
        none without lock files."""
        if not self._lock_files:
            return
        lock = self.lock_path(real)
        content = f"{os.getpid()} {fd}".encode("ascii")
        try:
            lock_fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(lock_fd, content)
            finally:
                os.close(lock_fd)
        except OSError as exc:
            os.close(fd)
            self._journal.log(f"[{device.name}] unable to create lock {lock}: {exc.strerror}")
            raise RefusedError(path) from exc
        device.locks.append((lock, content))

    def undo_open(self, device: Device, fds: list[int]) -> None:
        for fd in fds:
            with contextlib.suppress(OSError):
                fcntl.ioctl(fd, termios.TIOCNXCL)  # see AtPort.close
            with contextlib.suppress(OSError):
                os.close(fd)
        self.unlock(device)

    def unlock(self, device: Device) -> None:
        for lock, content in device.locks:
            with contextlib.suppress(OSError):
                with open(lock, "rb") as handle:
                    mine = handle.read(64) == content  # not a later opener's lock
                if mine:
                    os.unlink(lock)
        for real in device.reals:
            if self.holders.get(real) is device:
                del self.holders[real]
        device.locks.clear()
        device.reals.clear()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
