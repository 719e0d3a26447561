"""sd_notify, tolerant of a missing or broken NOTIFY_SOCKET (a daemon must not die of it)."""

from __future__ import annotations

import logging

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
