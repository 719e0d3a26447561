"""sd_notify that can never stall the event loop.

systemd-python's `daemon.notify()` (libsystemd's sd_notify) sends on a blocking socket: when
the receiver does not read (PID 1 busy, or a test's socket), its queue fills and the whole
daemon blocks inside that call (seen in the soak: the loop stopped handling udev events).
The protocol is one datagram to the AF_UNIX socket in NOTIFY_SOCKET, so it is sent here with
MSG_DONTWAIT: a message that cannot be queued is dropped, and STATUS= is only sent when it
changes. A missing or broken NOTIFY_SOCKET never takes the daemon down.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)

_last_status: list[str] = []


def _address() -> str | None:
    path = os.environ.get("NOTIFY_SOCKET", "")
    if not path or path[0] not in "/@":
        return None
    return "\0" + path[1:] if path[0] == "@" else path  # '@': the abstract namespace


def _send(text: str) -> bool:
    address = _address()
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(text.encode(), socket.MSG_DONTWAIT, address)
    except OSError as exc:  # gone, refused, or its queue is full: never block or die for it
        log.debug("sd_notify %r not sent: %s", text.split("=", 1)[0], exc)
        return False
    return True


def ready(status: str) -> None:
    _last_status[:] = [status]
    _send(f"READY=1\nSTATUS={status}")


def status(text: str) -> None:
    if _last_status == [text]:
        return
    if _send(f"STATUS={text}"):
        _last_status[:] = [text]


def stopping() -> None:
    _send("STOPPING=1")


def watchdog_interval() -> float | None:
    """Half of WatchdogSec= (systemd's advice), or None when no watchdog is asked for."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) <= 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


def watchdog() -> None:
    _send("WATCHDOG=1")
