"""The `dongled status --json` document, schema 1, as types (docs/status-json.md says what
each field means), and where and how often the daemon writes it. The daemon builds it
(`snapshot`) and writes it (`writer`); `dongled status` reads it (`reader`). Within schema 1
fields are only ever added."""

from __future__ import annotations

from typing import TypedDict

SCHEMA = 1
FILENAME = "status.json"  # in the daemon's state_dir
# The daemon rewrites the document at least this often, changed or not; a reader that finds
# one older than STALE_AFTER does not show it as current (the daemon hangs or cannot write).
PUBLISH_EVERY = 10.0
STALE_AFTER = 3 * PUBLISH_EVERY


class SectionRow(TypedDict):
    section: str
    driver: str  # the channel driver whose file holds the section (chan_dongle, ...)
    imei: str | None  # None: no 15-digit imei= (unmanaged)
    data: str | None
    audio: str | None
    alsadev: str | None  # the ALSA card it names (USB audio), None when it names none
    usb_port: str | None  # the stick carrying this IMEI, None when absent
    iccid: str | None
    model: str | None
    voice: bool | None
    asterisk_state: str | None
    asterisk_imei: str | None
    verified: bool
    status: str  # ok | absent | unmanaged | pending | mismatch | ambiguous
    detail: str | None
    last_change: str


class StickRow(TypedDict):
    usb_port: str
    vid_pid: str
    state: str  # settling | probing | booting | identified | busy | failed
    imei: str | None
    imsi: str | None
    iccid: str | None
    model: str | None
    voice: bool | None
    data: str | None
    audio: str | None
    card: str | None  # id of the one ALSA card under its USB device
    section: str | None
    verified_by: str | None  # probe | asterisk
    error: str | None
    limits: list[str]
    ports: dict[str, str]  # bInterfaceNumber -> device node
    status: str  # bound | unbound | a state above
    last_change: str


class SwitchingRow(TypedDict):
    usb_port: str
    vid_pid: str
    seconds: float
    stuck: bool


class RecoveryRow(TypedDict):
    last_step: str | None
    steps_taken: int
    reason: str | None
    given_up: str | None


class StatusDoc(TypedDict):
    schema: int
    running: bool
    pid: int
    driver: str  # the `driver` setting: one channel driver, or two joined with "+"
    dongle_conf: str  # the first driver's file
    conf_files: dict[str, str]  # every driver's file, by driver
    ami_connected: bool
    conf_error: str | None
    conf_warnings: list[str]  # problems that do not stop writes (a section name two files use)
    summary: str
    sections: list[SectionRow]
    sticks: list[StickRow]
    switching: list[SwitchingRow]
    recovery: dict[str, RecoveryRow]
    counters: dict[str, int]
    ok: bool
    published_at: float  # Unix time of this snapshot: a reader can tell an old one
    publish_every: float  # the daemon rewrites it at least this often (seconds)
