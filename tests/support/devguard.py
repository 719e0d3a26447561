"""Tests never open a real modem: every device node a test process opens must be in its testbed.

Under umockdev's preload a /dev path that is not in the testbed falls through to the machine's
real /dev: on a PBX with sticks plugged in, a test's fake chan_dongle would open the real
`/dev/ttyUSB5` and send it AT commands. This module closes that hole for every Python process
of the suite:

- `install()` adds an audit hook (PEP 578) that sees every `open()` and `os.open()` of the
  process, pyserial's included. A device path (anything under /dev but the harmless pseudo
  devices below) is let through only if it exists in the current umockdev testbed
  (``$UMOCKDEV_DIR`` + path), or if it is a pty whose master the test runner itself holds
  (an `os.openpty()` of a test, or the far end of a testbed node). Anything else
  raises `DeviceEscapeError` and is recorded, so the test fails even where the code under test
  swallows the error.
- `check_device_path()` is the explicit form for code that models a device simply being
  absent (the fake chan_dongle): a real node outside the testbed looks exactly as it would on a
  machine without sticks, ENOENT.
- The pytest process installs it in `tests/conftest.py` and refuses to start if it cannot show
  that the hook refuses a real device path, both in itself and in a daemon subprocess (which
  gets it from ``instrument_site/sitecustomize.py``, first on the rig's PYTHONPATH).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final, cast

__all__ = [
    "SITE_DIR",
    "DeviceEscapeError",
    "check_device_path",
    "escapes",
    "expecting_escape",
    "install",
    "is_allowed",
    "selftest_path",
]

SITE_DIR: Final = str(Path(__file__).resolve().parent / "instrument_site")
"""Put first on a subprocess's PYTHONPATH: its sitecustomize installs this guard."""

# Pseudo devices every program may open; none of them reaches hardware.
_HARMLESS: Final = frozenset(
    {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/ptmx"}
)
# /dev/null/...: dongled's parked paths (opening them fails with ENOTDIR, as it should).
_HARMLESS_PREFIXES: Final = ("/dev/null/", "/dev/shm/", "/dev/fd/", "/dev/std", "/dev/mqueue/")

_SELFTEST: Final = "/dev/ttyUSB-dongled-devguard-selftest"
RUNNER_ENV: Final = "DONGLED_TEST_RUNNER_PID"
"""Set by tests/conftest.py: ptys whose master the test runner holds are the tests' own."""


class DeviceEscapeError(PermissionError):
    """A test process tried to open a device node that is not in its own testbed."""


_escapes: list[str] = []
_installed = False


def escapes() -> list[str]:
    """Refused opens so far in this process (the self-test's excluded)."""
    return list(_escapes)


@functools.cache
def _getenv() -> Callable[[bytes], bytes | None]:
    getenv = ctypes.CDLL(None).getenv
    getenv.restype = ctypes.c_char_p
    getenv.argtypes = [ctypes.c_char_p]
    return cast(Callable[[bytes], bytes | None], getenv)


@contextlib.contextmanager
def expecting_escape() -> Iterator[None]:
    """For the guard's own tests: refusals inside the block are not counted as escapes."""
    before = len(_escapes)
    try:
        yield
    finally:
        del _escapes[before:]


def _libc_getenv(name: str) -> str | None:
    # umockdev's preload sets UMOCKDEV_DIR with setenv(3): os.environ does not see it.
    raw = _getenv()(name.encode())
    value = raw.decode() if raw else os.environ.get(name)
    return value or None


@functools.cache
def _preloaded() -> bool:
    """Whether umockdev's preload runs in this process (it cannot come or go later)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            return "libumockdev-preload" in maps.read()
    except OSError:
        return False


def _testbed_dir() -> str | None:
    """The testbed this process's /dev and /sys are redirected to, or None."""
    root = _libc_getenv("UMOCKDEV_DIR")
    return root if root and _preloaded() else None


def _is_device_path(path: str) -> bool:
    if not path.startswith("/dev/"):
        return False
    return path not in _HARMLESS and not path.startswith(_HARMLESS_PREFIXES)


def _normal(path: str) -> str:
    # normpath keeps a leading "//" (POSIX allows it a meaning): "//dev/ttyUSB0" is /dev/ttyUSB0
    return "/" + os.path.normpath(os.path.abspath(path)).lstrip("/")


def is_allowed(path: str) -> bool:
    """Whether opening `path` cannot reach a device outside this process's testbed."""
    path = _normal(path)
    if not _is_device_path(path):
        return True
    root = _testbed_dir()
    if path.startswith("/dev/pts/"):
        return _our_pty(path, root)
    if root is None:
        return False
    # root + path lies outside /dev and /sys: the preload does not redirect it
    return os.path.lexists(root + path)


def _our_pty(path: str, root: str | None) -> bool:
    """A pty is the test's if the test runner (or this process) holds its master, or it is
    the far end of one of the testbed's tty nodes."""
    index = path.removeprefix("/dev/pts/")
    if not index.isdigit():
        return False
    for pid in {"self", os.environ.get(RUNNER_ENV, "self")}:
        if _holds_master(pid, index):
            return True
    if root is None:
        return False
    dev = os.path.join(root, "dev")
    try:
        names = os.listdir(dev)
    except OSError:
        return False
    return any(os.readlink(os.path.join(dev, n)) == path for n in names if _islink(dev, n))


def _holds_master(pid: str, index: str) -> bool:
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"{fd_dir}/{fd}") not in ("/dev/ptmx", "/dev/pts/ptmx"):
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}", encoding="ascii") as info:
                if f"tty-index:\t{index}\n" in info.read():
                    return True
        except OSError:
            continue
    return False


def _islink(directory: str, name: str) -> bool:
    return os.path.islink(os.path.join(directory, name))


def check_device_path(path: str) -> None:
    """Raise ENOENT for a device path outside the testbed: to a test it does not exist."""
    if not is_allowed(path):
        raise FileNotFoundError(errno.ENOENT, "not in this test's testbed (devguard)", path)


def _path_of(arg: object) -> str | None:
    # an int is an fd: opened before, through a path that was checked
    if isinstance(arg, str | bytes | os.PathLike):
        return os.fsdecode(os.fspath(arg))
    return None


def _hook(event: str, args: tuple[object, ...]) -> None:
    if event != "open" or not args:
        return
    path = _path_of(args[0])
    if path is None or ("dev" not in path and path.startswith("/")):
        return  # the fast way out for nearly every open: no device path
    path = _normal(path)
    if not _is_device_path(path) or is_allowed(path):
        return
    if path != _SELFTEST:
        _escapes.append(path)
        print(f"devguard: refused to open {path}: not in this test's testbed", file=sys.stderr)
    raise DeviceEscapeError(errno.EACCES, "device not in this test's testbed (devguard)", path)


def install() -> None:
    """Install the audit hook in this process (once; audit hooks cannot be removed)."""
    global _installed
    if _installed:
        return
    sys.addaudithook(_hook)
    _installed = True


def selftest_path() -> str:
    """A device path that no testbed has: opening it must raise DeviceEscapeError."""
    return _SELFTEST
