"""The daemon's live state as a JSON snapshot in its runtime directory, for `dongled status`.

The snapshot is the documented `dongled status --json` schema (README.md); this module
writes it (from the daemon's rooms, read-only) and turns it into the table and the exit
code. It holds no secret and is written atomically, so a reader never sees half of it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from dongled.errors import ConfError
from dongled.identity import limitations, valid_imei
from dongled.linestatus import LineStatus, line_status
from dongled.reconcile import Located, choose, located
from dongled.statusdoc import RecoveryRow, SectionRow, StatusDoc, StickRow, SwitchingRow

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from dongled.ami import DeviceEntry
    from dongled.dongleconf import DeviceSection
    from dongled.fleet import FleetHealth
    from dongled.ladder import Ladder
    from dongled.settings import Settings
    from dongled.sticks import Stick

    class _Connection(Protocol):
        @property
        def connected(self) -> bool: ...

    class _Recovery(Protocol):
        @property
        def ladder(self) -> Ladder: ...

    class StatusSource(Protocol):
        """What the snapshot reads (the daemon's wiring passes itself; nothing is changed)."""

        @property
        def s(self) -> Settings: ...
        @property
        def ami(self) -> _Connection: ...
        @property
        def recovery(self) -> _Recovery: ...
        @property
        def fleet(self) -> FleetHealth: ...
        @property
        def counters(self) -> Mapping[str, int]: ...
        @property
        def sticks(self) -> Mapping[str, Stick]: ...
        @property
        def sections(self) -> Mapping[str, DeviceSection]: ...
        @property
        def asterisk(self) -> Mapping[str, DeviceEntry] | None: ...
        @property
        def conf_error(self) -> str: ...
        @property
        def conf_files(self) -> Mapping[str, str]: ...  # driver -> its file
        @property
        def conf_warnings(self) -> list[str]: ...  # e.g. a section name both files use
        def driver_of(self, section: str) -> str: ...
        def summary(self) -> str: ...


SCHEMA = 1
FILENAME = "status.json"
# The daemon rewrites the snapshot at least this often, changed or not; a reader that finds
# one older than STALE_AFTER does not show it as current (the daemon hangs or cannot write).
PUBLISH_EVERY = 10.0
STALE_AFTER = 3 * PUBLISH_EVERY
# directory -> (the last document written without its time, when)
_last: dict[str, tuple[bytes, float]] = {}
_write_failed: dict[str, str] = {}  # directory -> the error last logged
# (state_dir, row key) -> (what the row looked like, when that last changed)
_seen: dict[tuple[str, str], tuple[tuple[object, ...], str]] = {}

# Section statuses: every one but these two makes `dongled status` exit 1. A managed line
# that is not verified on its own stick (absent/parked, pending, mismatch, ambiguous) is a
# line that cannot take calls: a monitoring check must say so.
SECTION_FINE = tuple(s.value for s in LineStatus if s.fine)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _changed(state_dir: str, key: str, signature: tuple[object, ...]) -> str:
    """When this row last looked different (the first sighting counts as a change)."""
    old = _seen.get((state_dir, key))
    if old is not None and old[0] == signature:
        return old[1]
    stamp = _now()
    _seen[(state_dir, key)] = (signature, stamp)
    return stamp


def _forget_unseen(state_dir: str, shown: set[str]) -> None:
    """Rows no longer shown (a stick unplugged, a section removed) are forgotten: when one
    is back, its appearance is its last change. Keeps `_seen` to what is shown."""
    for key in [k for k in _seen if k[0] == state_dir and k[1] not in shown]:
        del _seen[key]


def sections_on_disk(conf_files: Mapping[str, str]) -> dict[str, dict[str, DeviceSection]]:
    """Each driver's sections as its file says now (blocking I/O: the daemon reads them in a
    thread, and only before its first parse)."""
    return {driver: _sections(path) for driver, path in conf_files.items()}


def _sections(path: str) -> dict[str, DeviceSection]:
    from dongled.dongleconf import DongleConf  # the daemon's side only: status stays light

    try:
        return DongleConf.load(path).devices()
    except (ConfError, OSError, ValueError):
        return {}  # the daemon reports the conf error itself


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
) -> SectionRow:
    """One section's row; its status is decided by `linestatus`, as the daemon decides it.
    `uac`: the driver takes the section's voice from alsadev= (USB audio; its module's card or
    an external one)."""
    decided = line_status(
        sec, choice, entry, ami_up=ami_up, given_up=given_up, file_problem=file_problem
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
    d: StatusSource, on_disk: Mapping[str, Mapping[str, DeviceSection]] | None = None
) -> StatusDoc:
    """The status document (schema 1); reads the daemon's state, never changes it. Before
    the daemon's first parse its sections are the files' (`on_disk`, from
    `sections_on_disk`; None: read here, so not on the event loop)."""
    state_dir = d.s.state_dir
    asterisk: dict[str, DeviceEntry] = dict(d.asterisk or {})
    ami_up = bool(d.ami.connected) and d.asterisk is not None
    # the daemon's last good parse (kept while the file is broken); the file before a pass
    sections = dict(d.sections)
    drivers = {name: d.driver_of(name) for name in sections}
    if not sections:
        if on_disk is None:
            on_disk = sections_on_disk(d.conf_files)
        for driver, read in reversed(list(on_disk.items())):
            sections.update(read)
            drivers.update(dict.fromkeys(read, driver))
    plugged = list(d.sticks.values())
    from dongled.drivers.known import DRIVERS  # here: the daemon has it loaded, status not

    named: dict[str, str] = {}  # usb_device of the stick carrying a section -> section
    rows = []
    for name in sorted(sections):
        sec = sections[name]
        drv = DRIVERS[drivers[name]]
        uac = drv.uses_uac(sec)
        stick, choice = _stick_for(sec, plugged, uac)
        given_up = d.recovery.ladder.given_up(stick.usb_port) if stick is not None else ""
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
            d.conf_error,
        )
        if stick is not None:
            named[stick.usb_device] = name
        elif isinstance(choice, str):
            for s in plugged:  # clones: each is named, none is chosen
                if s.identity is not None and s.identity.imei == sec.imei:
                    named.setdefault(s.usb_device, name)
        sig = (row["data"], row["audio"], row["alsadev"], row["usb_port"], row["status"])
        row["last_change"] = _changed(state_dir, "section:" + name, sig)
        rows.append(row)
    sticks = []
    for s in sorted(d.sticks.values(), key=lambda s: s.usb_port):
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
        stick_row["last_change"] = _changed(state_dir, "stick:" + s.usb_device, sig)
        sticks.append(stick_row)
    _forget_unseen(
        state_dir,
        {"section:" + r["section"] for r in rows}
        | {"stick:" + s.usb_device for s in d.sticks.values()},
    )
    doc: StatusDoc = {
        "schema": SCHEMA,
        "running": True,
        "pid": os.getpid(),
        "driver": d.s.driver,
        "dongle_conf": next(iter(d.conf_files.values()), d.s.dongle_conf),
        "conf_files": dict(d.conf_files),
        "ami_connected": bool(d.ami.connected),
        "conf_error": d.conf_error or None,
        "conf_warnings": list(d.conf_warnings),
        "summary": d.summary(),
        "sections": rows,
        "sticks": sticks,
        "switching": _switching(d),
        "recovery": _recovery(d),
        "counters": dict(d.counters),
        "ok": False,
        "published_at": round(time.time(), 3),
        "publish_every": PUBLISH_EVERY,
    }
    doc["ok"] = exit_ok(doc)
    return doc


def _recovery(d: StatusSource) -> dict[str, RecoveryRow]:
    """The hung-stick ladder per physical USB port (only ports that needed it)."""
    return {
        port: {
            "last_step": st.last_step.value if st.last_step is not None else None,
            "steps_taken": len(st.history),
            "reason": st.last_reason or None,
            "given_up": st.given_up or None,
        }
        for port, st in sorted(d.recovery.ladder.ports.items())
    }


def _switching(d: StatusSource) -> list[SwitchingRow]:
    """Sticks still in storage (CD-ROM) mode; `stuck` past the daemon's switch_limit."""
    now = time.monotonic()
    return [
        {
            "usb_port": info.usb_port,
            "vid_pid": f"{info.vid}:{info.pid}",
            "seconds": round(now - since, 1),
            "stuck": now - since >= d.fleet.switch_limit,
        }
        for info, since in sorted(d.fleet.switching.values(), key=lambda v: v[0].usb_port)
    ]


def exit_ok(doc: Mapping[str, Any]) -> bool:
    """Exit 0 of `dongled status` (a monitoring check): Asterisk connected, no conf problem,
    every managed section verified on its own stick, every plugged stick identified and named
    by a section, no stick given up or stuck in storage mode, no config warning (a section
    name two files use: status and recovery see only one of them)."""
    if not doc.get("ami_connected") or doc.get("conf_error") or doc.get("conf_warnings"):
        return False
    if any(r.get("status") not in SECTION_FINE for r in doc.get("sections", [])):
        return False
    if any(w.get("stuck") for w in doc.get("switching", [])):
        return False
    if any(r.get("given_up") for r in doc.get("recovery", {}).values()):
        return False
    return all(s.get("status") == "bound" for s in doc.get("sticks", []))


def publish(d: StatusSource) -> None:
    """Snapshot and write at once (the daemon splits the two: `snapshot` on its loop, `write`
    in a thread)."""
    write(d.s.state_dir, snapshot(d))


def write(directory: str, doc: StatusDoc) -> bool:
    """Replace the status file with `doc` (blocking I/O). Skipped when only its time changed
    since a write less than PUBLISH_EVERY / 2 ago. False when it could not be written: said
    once per error, in the log (status is a convenience; it never takes the daemon down, but
    an old file must not go unexplained)."""
    now = doc["published_at"]
    body = json.dumps({**doc, "published_at": 0}, sort_keys=True).encode()
    last = _last.get(directory)
    if last is not None and last[0] == body and now - last[1] < PUBLISH_EVERY / 2:
        return True
    data = json.dumps(doc, indent=1, sort_keys=True).encode()
    path = os.path.join(directory, FILENAME)
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
        import tempfile  # the daemon's side only: `dongled status` never writes

        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".status.")
        try:
            try:
                os.write(fd, data)
                os.fchmod(fd, 0o644)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        if _write_failed.get(directory) != str(exc):
            _write_failed[directory] = str(exc)
            log.error("cannot write the status file %s: %s", path, exc)
        return False
    if directory in _write_failed:
        del _write_failed[directory]
        log.info("status file %s written again", path)
    _last[directory] = (body, now)
    return True


# ---- the reader's side: `dongled status` ---------------------------------------------------

TABLE_HEAD = (
    "DEVICE",
    "IMEI",
    "DATA",
    "AUDIO",
    "USB",
    "MODEL",
    "VOICE",
    "ASTERISK",
    "VERIFIED",
    "LAST CHANGE",
    "STATUS",
)


def _cell(value: object) -> str:
    if value is None or value == "":
        return "-"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)


def _short_time(stamp: object) -> str:
    # 2025-11-25T20:40:01+0000 -> 2025-11-25 20:40:01
    return str(stamp)[:19].replace("T", " ") if stamp else "-"


def _row(r: dict[str, Any], device: str, asterisk: str, verified: str) -> tuple[str, ...]:
    """One table row, in TABLE_HEAD's order, from a section or stick row of the document."""
    return (
        device,
        _cell(r.get("imei")),
        _cell(r.get("data")),
        _cell(r.get("alsadev") or r.get("audio")),  # the voice: its ALSA card with USB audio
        _cell(r.get("usb_port")),
        _cell(r.get("model")),
        _cell(r.get("voice")),
        asterisk,
        verified,
        _short_time(r.get("last_change")),
        _cell(r.get("status")),
    )


def render_table(doc: dict[str, Any]) -> list[str]:
    """The IMEI-to-port table: one row per device section, then the plugged sticks that no
    section names (unidentified or unbound), then the summary and every problem in words."""
    rows: list[tuple[str, ...]] = [TABLE_HEAD]
    for r in doc.get("sections", []):
        rows.append(
            _row(
                r,
                _cell(r.get("section")),
                _cell(r.get("asterisk_state")),
                _cell(bool(r.get("verified"))),
            )
        )
    for s in doc.get("sticks", []):
        if s.get("section") is None:  # a stick no section names: no device, not verified
            rows.append(_row(s, "-", "-", "no"))
    for w in doc.get("switching", []):
        status = "stuck" if w.get("stuck") else "switching"
        rows.append(
            (
                "-",
                "-",
                "-",
                "-",
                _cell(w.get("usb_port")),
                _cell(w.get("vid_pid")),
                "-",
                "-",
                "no",
                "-",
                status,
            )
        )
    if "+" in str(doc.get("driver", "")):  # two drivers on this box: say whose each device is
        whose = ["DRIVER"] + [_cell(r.get("driver")) for r in doc.get("sections", [])]
        whose += ["-"] * (len(rows) - len(whose))
        rows = [(r[0], w, *r[1:]) for r, w in zip(rows, whose, strict=True)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    out.append("")
    ami = "connected" if doc.get("ami_connected") else "NOT connected"
    driver = doc.get("driver", "chan_dongle")
    out.append(f"{doc.get('summary', '')}; {driver} over Asterisk AMI {ami}")
    return out + problems(doc)


def problems(doc: dict[str, Any]) -> list[str]:
    """Every problem of the document in words, one line each (what the table ends with)."""
    out: list[str] = []
    if not doc.get("ami_connected"):
        out.append("Asterisk AMI not connected: no line can be verified (see the daemon's log)")
    if doc.get("conf_error"):
        out.append(f"config problem: {doc['conf_error']}")
    for warning in doc.get("conf_warnings") or []:
        out.append(f"config problem: {warning}")
    for r in doc.get("sections", []):
        if r.get("status") not in SECTION_FINE:
            out.append(f"[{r.get('section')}] {r.get('status')}: {r.get('detail') or ''}")
    for port, rec in doc.get("recovery", {}).items():
        if rec.get("given_up"):
            out.append(f"stick at USB {port}: recovery given up: {rec['given_up']}")
        elif rec.get("last_step"):
            out.append(f"stick at USB {port}: recovering, last step {rec['last_step']}")
    for s in doc.get("sticks", []):
        for what in s.get("limits") or []:
            out.append(f"stick at USB {s.get('usb_port')} (IMEI {s.get('imei')}): {what}")
    for w in doc.get("switching", []):
        if w.get("stuck"):
            out.append(
                f"stick at USB {w.get('usb_port')} is still in storage mode after "
                f"{w.get('seconds')} s: check usb_modeswitch and its rule for {w.get('vid_pid')}"
            )
    for s in doc.get("sticks", []):
        if s.get("section") is None:
            why = s.get("error") or (
                f"IMEI {s.get('imei')} is named by no section (add it with imei=)"
                if s.get("imei")
                else "not identified yet"
            )
            out.append(f"stick at USB {s.get('usb_port')} {s.get('status')}: {why}")
    return out
