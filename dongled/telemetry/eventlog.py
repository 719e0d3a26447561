"""Modem events as structured log records: journal fields when journald is there, a
readable line on stderr when it is not (`journalctl DONGLED_IMEI=...` shows one stick)."""

from __future__ import annotations

import enum
import logging
import os
import sys
import uuid

log = logging.getLogger("dongled.events")

JOURNAL_SOCKET = "/run/systemd/journal/socket"


class Event(enum.Enum):
    # value: (MESSAGE_ID namespace suffix, priority level)
    APPEARED = ("stick-appeared", logging.INFO)
    GONE = ("stick-gone", logging.WARNING)
    IDENTIFIED = ("stick-identified", logging.INFO)
    PROBE_FAILED = ("probe-failed", logging.WARNING)
    RELINKED = ("section-relinked", logging.WARNING)
    PARKED = ("section-parked", logging.WARNING)
    UNBOUND = ("stick-unbound", logging.WARNING)
    STOPPED = ("device-stopped", logging.INFO)
    STARTED = ("device-started", logging.INFO)
    RELOAD = ("reload-sent", logging.INFO)
    VERIFIED = ("device-verified", logging.INFO)
    NOT_VERIFIED = ("device-not-verified", logging.ERROR)
    MISMATCH = ("device-mismatch", logging.CRITICAL)
    AMBIGUOUS = ("stick-ambiguous", logging.ERROR)
    STICK_LIMITED = ("stick-limited", logging.WARNING)
    SWITCHING = ("stick-switching", logging.INFO)
    SWITCH_STUCK = ("stick-switch-stuck", logging.ERROR)
    HUB_DROP = ("hub-drop", logging.ERROR)
    USB_LIMIT = ("usb-controller-limit", logging.WARNING)
    LINE_DOWN = ("line-down", logging.ERROR)
    RECOVERY = ("recovery-step", logging.WARNING)
    RECOVERY_FAILED = ("recovery-step-failed", logging.ERROR)
    RECOVERED = ("recovered", logging.INFO)
    DRIVER_FAULT = ("driver-fault", logging.ERROR)  # the modem answers AT, the device is down
    GIVEN_UP = ("recovery-given-up", logging.CRITICAL)
    CONF_ERROR = ("conf-error", logging.ERROR)
    IMEI_CHECK_DIGIT = ("imei-check-digit", logging.WARNING)  # managed anyway, said once
    CONF_WRITTEN = ("conf-written", logging.INFO)
    AMI_UP = ("ami-up", logging.INFO)
    AMI_DOWN = ("ami-down", logging.ERROR)
    TASK_DIED = ("task-died", logging.CRITICAL)  # restarted, or the daemon exits for systemd
    TASK_STALLED = ("task-stalled", logging.CRITICAL)  # no progress: no watchdog ping

    @property
    def message_id(self) -> str:
        # One fixed id per event kind, stable across versions (uuid5 of its name).
        return uuid.uuid5(uuid.NAMESPACE_URL, "dongled:" + self.value[0]).hex

    @property
    def level(self) -> int:
        return self.value[1]


def emit(
    event: Event,
    message: str,
    *args: object,
    imei: str | None = None,
    device: str | None = None,
    data: str | None = None,
    audio: str | None = None,
    usb_port: str | None = None,
    driver: str | None = None,
    level: int | None = None,
) -> None:
    """Log `event` with its journal fields; `level` overrides the event's own (a repeat said
    quietly, see ratelimit)."""
    fields: dict[str, str] = {"MESSAGE_ID": event.message_id, "DONGLED_EVENT": event.value[0]}
    for key, value in (
        ("DONGLED_IMEI", imei),
        ("DONGLED_DEVICE", device),
        ("DONGLED_DATA", data),
        ("DONGLED_AUDIO", audio),
        ("DONGLED_USB_PATH", usb_port),
        ("DONGLED_DRIVER", driver),  # whose device (one box can run two drivers)
    ):
        if value is not None:
            fields[key] = value
    log.log(event.level if level is None else level, message, *args, extra=fields)


class _FieldsFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = [
            f"{k.removeprefix('DONGLED_').lower()}={v}"
            for k, v in record.__dict__.items()
            if k.startswith("DONGLED_") and k != "DONGLED_EVENT"
        ]
        return f"{line} [{' '.join(extras)}]" if extras else line


def setup(verbose: bool = False, driver: str = "") -> None:
    """Configure logging once, in the entry point. Under journald every record also carries
    DONGLED_DRIVER (the channel driver this daemon keeps)."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    handler: logging.Handler
    if os.environ.get("JOURNAL_STREAM") and os.path.exists(JOURNAL_SOCKET):
        from systemd.journal import JournalHandler

        extra = {"DONGLED_DRIVER": driver} if driver else {}
        handler = JournalHandler(SYSLOG_IDENTIFIER="dongled", **extra)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_FieldsFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.handlers[:] = [handler]
