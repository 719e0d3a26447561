"""The kernel-side recovery steps. No shell: sysfs writes, one ioctl, and uhubctl run
with an argument list built from validated sysfs names."""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import subprocess

from dongled.core.errors import RecoveryError

USBDEVFS_RESET = 0x5514  # _IO('U', 20)
_PORT = re.compile(r"(\d+)-(\d+(?:\.\d+)*)")  # e.g. 1-1.3: bus 1, hub 1, port 3
_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)


def _hint(exc: OSError) -> str:
    if exc.errno in _DENIED:
        return (
            " (dongled's udev rules give the asterisk user this right and its unit keeps"
            " /sys/devices writable: install both, see docs/recovery-ladder.md, 'Rights')"
        )
    return ""


def reauthorize(usb_sys_path: str, sysfs_write: str | None = None) -> None:
    """De-authorize then re-authorize the USB device: the kernel unbinds and re-binds it."""
    path = os.path.join(sysfs_write or usb_sys_path, "authorized")
    try:
        for value in (b"0", b"1"):
            fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
            try:
                os.write(fd, value)
            finally:
                os.close(fd)
    except OSError as exc:
        raise RecoveryError(
            f"re-authorize via {path} failed: {exc.strerror}{_hint(exc)}",
            step="reauthorize",
            target=path,
        ) from None


def usb_devnode(busnum: int, devnum: int) -> str:
    return f"/dev/bus/usb/{busnum:03d}/{devnum:03d}"


def usb_reset(busnum: int, devnum: int) -> None:
    """USBDEVFS_RESET: a port reset as if the stick were re-plugged."""
    node = usb_devnode(busnum, devnum)
    try:
        fd = os.open(node, os.O_WRONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise RecoveryError(
            f"USB reset: cannot open {node}: {exc.strerror}{_hint(exc)}",
            step="usb_reset",
            target=node,
        ) from None
    try:
        fcntl.ioctl(fd, USBDEVFS_RESET, 0)
    except OSError as exc:
        raise RecoveryError(
            f"USB reset of {node} failed: {exc.strerror}", step="usb_reset", target=node
        ) from None
    finally:
        os.close(fd)


def hub_and_port(usb_port: str) -> tuple[str, str] | None:
    """`1-1.3` -> ("1-1", "3"), what uhubctl's -l and -p take; None for a root-hub port."""
    m = _PORT.fullmatch(usb_port)
    if m is None or "." not in m.group(2):
        return None
    hub, _, port = usb_port.rpartition(".")
    return hub, port


def power_cycle(usb_port: str, timeout: float = 30.0) -> None:
    uhubctl = shutil.which("uhubctl")
    if uhubctl is None:
        raise RecoveryError(
            "power cycle: uhubctl is not installed", step="power_cycle", target=usb_port
        )
    where = hub_and_port(usb_port)
    if where is None:
        raise RecoveryError(
            f"power cycle: {usb_port!r} is not a port of an external hub",
            step="power_cycle",
            target=usb_port,
        )
    hub, port = where
    try:
        done = subprocess.run(  # noqa: S603 - fixed binary, validated arguments, no shell
            [uhubctl, "-l", hub, "-p", port, "-a", "cycle", "-d", "2"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RecoveryError(
            f"power cycle with uhubctl failed: {exc}", step="power_cycle", target=usb_port
        ) from None
    if done.returncode != 0:
        raise RecoveryError(
            f"uhubctl -l {hub} -p {port} failed ({done.returncode}): {done.stderr.strip()[:200]}",
            step="power_cycle",
            target=usb_port,
        )
