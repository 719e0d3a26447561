"""The daemon's side of the status document: built from the rooms' state (read, never
changed), on the event loop, each time the status task writes it (`writer`). The rows decide
each line's status as the daemon does (`linestatus`, with `reconcile.choose`'s stick).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from dongled.conf.dongleconf import DeviceSection, sections_now
from dongled.config.settings import conf_path
from dongled.drivers.known import DRIVERS, drivers_for
from dongled.hotplug.sticks import Located, located
from dongled.modem.identity import limitations, valid_imei
from dongled.reconcile.plan import choose
from dongled.status.document import (
    PUBLISH_EVERY,
    SCHEMA,
    RecoveryRow,
    SectionRow,
    StatusDoc,
    StickRow,
    SwitchingRow,
)
from dongled.status.linestatus import line_status
from dongled.status.reader import exit_ok

if TYPE_CHECKING:
    from dongled.asterisk.device import DeviceEntry
    from dongled.config.settings import Settings
    from dongled.hotplug.fleet import FleetHealth
    from dongled.hotplug.sticks import Stick
    from dongled.reconcile.lanes import Lanes
    from dongled.recovery.ladder import Ladder


class Connection(Protocol):
    @property
    def connected(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Sources:
    """What the document is made of, each owned by one room."""

    settings: Settings
    ami: Connection
    lanes: Lanes  # the sections, Asterisk's devices, what is verified, the files' problems
    sticks: Mapping[str, Stick]  # the registry's plugged-in sticks, by USB device
    ladder: Ladder  # the recovery ladder, per USB port
    fleet: FleetHealth  # sticks still in storage mode
    counters: Mapping[str, int]


def summary(src: Sources) -> str:
    """One line for systemd's STATUS= and the table's foot."""
    last = src.lanes.last_change
    return f"{len(src.sticks)} sticks, {len(src.lanes.verified)} on their devices" + (
        f"; last: {last}" if last else ""
    )


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class RowChanges:
    """When each shown row (a section, a stick) last looked different: the table's LAST
    CHANGE. Rows no longer shown (a stick unplugged, a section removed) are forgotten: when
    one is back, its appearance is its last change."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[tuple[object, ...], str]] = {}  # key -> (looks, since)

    def since(self, key: str, signature: tuple[object, ...]) -> str:
        """When this row last looked different (the first sighting counts as a change)."""
        old = self._seen.get(key)
        if old is not None and old[0] == signature:
            return old[1]
        stamp = _now()
        self._seen[key] = (signature, stamp)
        return stamp

    def keep_only(self, shown: set[str]) -> None:
        for key in [k for k in self._seen if k not in shown]:
            del self._seen[key]


def sections_on_disk(conf_files: Mapping[str, str]) -> dict[str, dict[str, DeviceSection]]:
    """Each driver's sections as its file says now (blocking I/O: the status task reads them
    in a thread, and only before the first parse)."""
    # A file that cannot be read names none here: the daemon reports the conf error itself.
    return {driver: sections_now(path) or {} for driver, path in conf_files.items()}


def _voice(stick: Stick | None, entry: DeviceEntry | None) -> bool | None:
    if stick is not None and stick.identity is not None and stick.identity.voice is not None:
        return stick.identity.voice
    # chan_dongle reports Voice: No for a device it has not connected: that means unknown.
    if entry is not None and entry.connected and entry.voice in ("Yes", "No"):
        return entry.voice == "Yes"
    return None


def _model(stick: Stick | None, entry: DeviceEntry | None) -> str | None:
    if stick is not None and stick.identity is not None and stick.identity.model:
        return stick.identity.model
    return (entry.model or None) if entry is not None else None


def _stick_for(
    sec: DeviceSection, sticks: list[Stick], uac: bool = False
) -> tuple[Stick | None, Located | str | None]:
    """The plugged stick carrying the section's IMEI and `reconcile.choose`'s answer, chosen
    as the daemon chooses it (a string says why no stick is: clones, or no sound card for a
    section with USB audio)."""
    if not sec.imei:
        return None, None
    by_place = {place: s for s in sticks for place in located([s])}
    choice = choose(sec, sec.imei, list(by_place), uac=uac)
    return (by_place[choice] if isinstance(choice, Located) else None), choice


def _section_row(
    driver: str,
    sec: DeviceSection,
    stick: Stick | None,
    choice: Located | str | None,
    entry: DeviceEntry | None,
    ami_up: bool,
    given_up: str = "",
    uac: bool = False,
    file_problem: str = "",
    unidentified: int = 0,
) -> SectionRow:
    """One section's row; its status is decided by `linestatus`, as the daemon decides it.
    `uac`: the driver takes the section's voice from alsadev= (USB audio; its module's card or
    an external one)."""
    decided = line_status(
        sec,
        choice,
        entry,
        ami_up=ami_up,
        given_up=given_up,
        file_problem=file_problem,
        unidentified=unidentified,
    )
    imei = sec.imei if sec.imei and valid_imei(sec.imei) else None
    running, verified = decided.running, decided.verified
    status, detail = decided.status.schema1, decided.detail
    return {
        "section": sec.name,
        "driver": driver,
        "imei": imei,
        "data": sec.data,
        "audio": sec.audio,
        "alsadev": sec.alsadev if uac else None,
        "usb_port": stick.usb_port if stick is not None else None,
        "iccid": stick.identity.iccid if stick is not None and stick.identity else None,
        "model": _model(stick, entry),
        "voice": _voice(stick, entry),
        "asterisk_state": entry.state if entry is not None else None,
        "asterisk_imei": running,
        "verified": verified,
        "status": status,
        "detail": detail or None,
        "last_change": "",
    }


def _stick_row(s: Stick, section: str | None) -> StickRow:
    ident = s.identity
    return {
        "usb_port": s.usb_port,
        "vid_pid": f"{s.vid}:{s.pid}",
        "state": s.state.value,
        "imei": ident.imei if ident else None,
        "imsi": ident.imsi if ident else None,
        "iccid": ident.iccid if ident else None,
        "model": (ident.model or None) if ident else None,
        "voice": ident.voice if ident else None,
        "data": s.data,
        "audio": s.audio,
        "card": s.card,
        "section": section,
        "verified_by": s.source or None,
        "error": s.error or None,
        "limits": limitations(ident, s.source) if ident else [],
        "ports": {str(k): v for k, v in sorted(s.ports.items())},
        "status": "",
        "last_change": "",
    }


def snapshot(
    src: Sources,
    changes: RowChanges,
    on_disk: Mapping[str, Mapping[str, DeviceSection]] | None = None,
) -> StatusDoc:
    """The status document (schema 1); reads the rooms' state, never changes it. Before the
    first parse its sections are the files' (`on_disk`, from `sections_on_disk`; None: read
    here, so not on the event loop)."""
    lanes = src.lanes
    listed = lanes.asterisk
    asterisk: dict[str, DeviceEntry] = dict(listed or {})
    ami_up = bool(src.ami.connected) and listed is not None
    # the daemon's last good parse (kept while the file is broken); the file before a pass
    sections = dict(lanes.sections)
    drivers = {name: lanes.lane_of(name).driver.name for name in sections}
    if not sections:
        if on_disk is None:
            on_disk = sections_on_disk(lanes.conf_files)
        for driver, read in reversed(list(on_disk.items())):
            sections.update(read)
            drivers.update(dict.fromkeys(read, driver))
    plugged = list(src.sticks.values())
    unidentified = sum(1 for s in plugged if s.identity is None)

    named: dict[str, str] = {}  # usb_device of the stick carrying a section -> section
    rows = []
    for name in sorted(sections):
        sec = sections[name]
        drv = DRIVERS[drivers[name]]
        uac = drv.uses_uac(sec)
        stick, choice = _stick_for(sec, plugged, uac)
        given_up = src.ladder.given_up(stick.usb_port) if stick is not None else ""
        alsa = uac or drv.uses_ext_uac(sec)  # an external card is shown, not chosen by
        row = _section_row(
            drivers[name],
            sec,
            stick,
            choice,
            asterisk.get(name),
            ami_up,
            given_up,
            alsa,
            lanes.conf_error,
            unidentified,
        )
        if stick is not None:
            named[stick.usb_device] = name
        elif isinstance(choice, str):
            for s in plugged:  # clones: each is named, none is chosen
                if s.identity is not None and s.identity.imei == sec.imei:
                    named.setdefault(s.usb_device, name)
        sig = (row["data"], row["audio"], row["alsadev"], row["usb_port"], row["status"])
        row["last_change"] = changes.since("section:" + name, sig)
        rows.append(row)
    sticks = []
    for s in sorted(src.sticks.values(), key=lambda s: s.usb_port):
        imei = s.identity.imei if s.identity is not None else None
        stick_row = _stick_row(s, named.get(s.usb_device))
        if stick_row["section"] is None:
            stick_row["status"] = "unbound" if imei else s.state.value
        else:
            stick_row["status"] = "bound"
        sig = (
            stick_row["state"],
            stick_row["imei"],
            stick_row["data"],
            stick_row["card"],
            stick_row["status"],
        )
        stick_row["last_change"] = changes.since("stick:" + s.usb_device, sig)
        sticks.append(stick_row)
    changes.keep_only(
        {"section:" + r["section"] for r in rows}
        | {"stick:" + s.usb_device for s in src.sticks.values()},
    )
    doc: StatusDoc = {
        "schema": SCHEMA,
        "running": True,
        "pid": os.getpid(),
        "driver": src.settings.driver,
        "dongle_conf": next(
            iter(lanes.conf_files.values()),
            conf_path(src.settings, drivers_for(src.settings.driver)[0]),
        ),
        "conf_files": dict(lanes.conf_files),
        "ami_connected": bool(src.ami.connected),
        "conf_error": lanes.conf_error or None,
        "conf_warnings": list(lanes.conf_warnings),
        "summary": summary(src),
        "sections": rows,
        "sticks": sticks,
        "switching": _switching(src.fleet),
        "recovery": _recovery(src.ladder),
        "counters": dict(src.counters),
        "ok": False,
        "published_at": round(time.time(), 3),
        "publish_every": PUBLISH_EVERY,
    }
    doc["ok"] = exit_ok(doc)
    return doc


def _recovery(ladder: Ladder) -> dict[str, RecoveryRow]:
    """The hung-stick ladder per physical USB port (only ports that needed it)."""
    return {
        port: {
            "last_step": st.last_step.value if st.last_step is not None else None,
            "steps_taken": len(st.history),
            "reason": st.last_reason or None,
            "given_up": st.given_up or None,
        }
        for port, st in sorted(ladder.ports.items())
    }


def _switching(fleet: FleetHealth) -> list[SwitchingRow]:
    """Sticks still in storage (CD-ROM) mode; `stuck` past the daemon's switch_limit."""
    now = time.monotonic()
    return [
        {
            "usb_port": info.usb_port,
            "vid_pid": f"{info.vid}:{info.pid}",
            "seconds": round(now - since, 1),
            "stuck": now - since >= fleet.switch_limit,
        }
        for info, since in sorted(fleet.switching.values(), key=lambda v: v[0].usb_port)
    ]
