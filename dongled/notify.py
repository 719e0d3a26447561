"""sd_notify, tolerant of a missing or broken NOTIFY_SOCKET (a daemon must not die of it)."""

from __future__ import annotations

import logging
import os

from systemd import daemon as _sd  # type: ignore[attr-defined]

log = logging.getLogger(__name__)


def _send(text: str) -> None:
    try:
        _sd.notify(text)
    except OSError as exc:  # NOTIFY_SOCKET names a socket that is gone
        log.debug("sd_notify failed: %s", exc)


def ready(status: str) -> None:
    _send(f"READY=1\nSTATUS={status}")


def status(text: str) -> None:
    _send(f"STATUS={text}")


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
