"""UUCP lock files (`/var/lock/LCK..ttyUSBn`), as chan_dongle and minicom use them.

chan_dongle writes `"<pid> <fd>"`, other programs `"%10d\\n"`; both start with the pid. A
lock whose pid is alive means "do not send a single byte to this port".
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from dongled.core.errors import PortBusyError, ProbeError


def lock_path(lock_dir: str, port: str) -> str:
    # chan_dongle names the lock after the real tty, so a symlinked path locks the same file.
    return os.path.join(lock_dir, "LCK.." + os.path.basename(os.path.realpath(port)))


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` exists (pids 0 and below never: kill() would mean a group)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def holder(lock_dir: str, port: str) -> int | None:
    """The live pid holding the port's lock, or None (no lock, stale lock, unreadable pid)."""
    try:
        with open(lock_path(lock_dir, port), "rb") as fh:
            head = fh.read(64)
    except FileNotFoundError:
        return None
    except OSError:
        return -1  # a lock we cannot read is treated as held: never guess
    fields = head.split()
    if not fields or not fields[0].isdigit():
        return -1
    pid = int(fields[0])
    if pid <= 0:
        return -1
    return pid if pid_alive(pid) else None


@contextlib.contextmanager
def uucp_lock(lock_dir: str, port: str) -> Iterator[None]:
    """Hold the port's lock for the duration; refuse if a live process holds it."""
    path = lock_path(lock_dir, port)
    owner = holder(lock_dir, port)
    if owner == os.getpid():  # our own fence: it stays after the probe
        yield
        return
    if owner is not None:
        who = "an unreadable lock" if owner < 0 else f"pid {owner}"
        raise PortBusyError(port, f"locked by {who} ({path}); not touched")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # stale: its pid is gone
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except FileExistsError:
        raise PortBusyError(port, f"locked by another process just now ({path})") from None
    except OSError as exc:
        raise ProbeError(port, f"cannot create lock {path}: {exc.strerror}") from None
    try:
        os.write(fd, b"%10d\n" % os.getpid())
    finally:
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def fence(lock_dir: str, port: str) -> bool:
    """Hold a vanished stick's old port with our own lock, so chan_dongle's retry pass does
    not grab whatever stick the kernel puts there next. False while a live process other than
    us still holds it (chan_dongle drops its lock ~0.1 s after it notices the loss)."""
    path = lock_path(lock_dir, port)
    owner = holder(lock_dir, port)
    if owner == os.getpid():
        return True
    if owner is not None:
        return False
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except OSError:
        return False
    try:
        os.write(fd, b"%10d\n" % os.getpid())
    finally:
        os.close(fd)
    return True


def unfence(lock_dir: str, port: str) -> None:
    """Remove our fence; a lock someone else took meanwhile is left alone."""
    if holder(lock_dir, port) == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock_path(lock_dir, port))
