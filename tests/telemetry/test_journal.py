"""Journal fields of dongled's events, received on a real AF_UNIX datagram socket at
journald's fixed path and parsed as journald's native protocol (no library mocked).

sd_journal_send() always writes to /run/systemd/journal/socket. CI runs as root with no
journald, so the test binds that path itself when nobody else has it, and removes it (and any
directory it had to create) afterwards.
"""

from __future__ import annotations

import array
import os
import re
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dongled.telemetry.eventlog import JOURNAL_SOCKET, Event
from tests.support.marks import needs_umockdev
from tests.support.rig import ROOT, rig

Entry = dict[str, list[bytes]]
_KEY = re.compile(rb"[A-Z0-9][A-Z0-9_]{0,63}")
# logging level -> syslog priority, as journald shows it
PRIORITY = {10: b"7", 20: b"6", 30: b"4", 40: b"3", 50: b"2"}


def parse_native(data: bytes) -> Entry:
    """journald's native protocol: `KEY=value\\n`, or `KEY\\n` + little-endian u64 length +
    value + `\\n` for values that hold a newline or binary data. Like journald, fields with an
    invalid name (lower case, leading underscore) are dropped."""
    fields: Entry = {}
    pos = 0
    while pos < len(data):
        nl = data.index(b"\n", pos)
        eq = data.find(b"=", pos, nl)
        if eq != -1:
            key, value = data[pos:eq], data[eq + 1 : nl]
            pos = nl + 1
        else:
            key = data[pos:nl]
            (size,) = struct.unpack_from("<Q", data, nl + 1)
            start = nl + 1 + 8
            value = data[start : start + size]
            if len(value) != size or data[start + size : start + size + 1] != b"\n":
                raise ValueError(f"truncated binary field {key!r}")
            pos = start + size + 1
        if not _KEY.fullmatch(key):
            continue  # journald drops invalid names (systemd-python sends record.__dict__)
        fields.setdefault(key.decode(), []).append(value)
    return fields


def test_parse_native_both_forms() -> None:
    value = b"two\nlines"
    data = b"A=1\nMESSAGE\n" + struct.pack("<Q", len(value)) + value + b"\nA=2\nmsg=x\n"
    assert parse_native(data) == {"A": [b"1", b"2"], "MESSAGE": [value]}
    with pytest.raises(ValueError, match="truncated"):
        parse_native(b"MESSAGE\n" + struct.pack("<Q", 99) + b"short\n")


class JournalSocket:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.entries: list[Entry] = []

    def _recv_one(self, timeout: float) -> Entry | None:
        self.sock.settimeout(timeout)
        fds = array.array("i")
        try:
            data, anc, _flags, _addr = self.sock.recvmsg(1 << 20, socket.CMSG_SPACE(16))
        except TimeoutError:
            return None
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
        for fd in fds:  # a large entry comes as a sealed memfd with an empty datagram
            try:
                data = os.pread(fd, os.fstat(fd).st_size, 0)
            finally:
                os.close(fd)
        return parse_native(data)

    def collect(self, until: int | None = None, timeout: float = 10.0) -> list[Entry]:
        """Entries received so far (waiting until there are `until` of them, if given)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            wait = 0.05 if until is None or len(self.entries) >= until else max(0.01, left)
            entry = self._recv_one(wait)
            if entry is not None:
                self.entries.append(entry)
                continue
            if until is None or len(self.entries) >= until or left <= 0:
                return self.entries

    def events(self) -> list[Entry]:
        return [e for e in self.entries if "DONGLED_EVENT" in e]


@pytest.fixture
def journal() -> Iterator[JournalSocket]:
    path = Path(JOURNAL_SOCKET)
    if path.exists() or path.is_symlink():
        pytest.skip(f"{JOURNAL_SOCKET} exists: a real journald owns it, the test will not")
    created: list[Path] = []
    for parent in reversed(path.parents):
        if not parent.exists():
            try:
                parent.mkdir(mode=0o755)
            except PermissionError:
                pytest.skip(f"cannot create {parent} (needs root; CI runs as root)")
            created.append(parent)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(JOURNAL_SOCKET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        yield JournalSocket(sock)
    finally:
        sock.close()
        if path.exists():
            path.unlink()
        for directory in reversed(created):
            directory.rmdir()


def _one(entry: Entry, key: str) -> str:
    values = entry.get(key, [])
    assert len(values) == 1, f"{key}: {values} in {entry}"
    return values[0].decode()


_EMIT_ALL = """
import logging
from dongled.telemetry import eventlog
from dongled.telemetry.eventlog import Event, emit
eventlog.setup()
assert type(logging.getLogger().handlers[0]).__name__ == "JournalHandler"
for i, ev in enumerate(Event):
    emit(ev, "event %s\\nsecond line", ev.name, imei="356938035643809", device=f"dongle{i}",
         data=f"/dev/ttyUSB{2 * i + 1}", audio=f"/dev/ttyUSB{2 * i}", usb_port=f"1-1.{i}")
emit(Event.PROBE_FAILED, "no fields but the usb path", usb_port="1-1.9")
"""


def test_every_event_kind_carries_its_journal_fields(journal: JournalSocket) -> None:
    env = dict(os.environ, JOURNAL_STREAM="8:12345", PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-c", _EMIT_ALL], env=env, check=True, timeout=30)
    kinds = list(Event)
    entries = journal.collect(until=len(kinds) + 1)
    assert len(entries) == len(kinds) + 1
    ids: set[str] = set()
    for i, (ev, entry) in enumerate(zip(kinds, entries, strict=False)):
        assert _one(entry, "MESSAGE") == f"event {ev.name}\nsecond line"  # binary form
        mid = _one(entry, "MESSAGE_ID")
        assert re.fullmatch(r"[0-9a-f]{32}", mid) and mid == ev.message_id
        ids.add(mid)
        assert _one(entry, "DONGLED_EVENT") == ev.value[0]
        assert entry["PRIORITY"] == [PRIORITY[ev.level]]
        assert _one(entry, "SYSLOG_IDENTIFIER") == "dongled"
        assert _one(entry, "DONGLED_IMEI") == "356938035643809"
        assert _one(entry, "DONGLED_DEVICE") == f"dongle{i}"
        assert _one(entry, "DONGLED_DATA") == f"/dev/ttyUSB{2 * i + 1}"
        assert _one(entry, "DONGLED_AUDIO") == f"/dev/ttyUSB{2 * i}"
        assert _one(entry, "DONGLED_USB_PATH") == f"1-1.{i}"
    assert len(ids) == len(kinds), "one MESSAGE_ID per event kind"
    last = entries[-1]
    assert _one(last, "DONGLED_USB_PATH") == "1-1.9"
    assert not {"DONGLED_IMEI", "DONGLED_DEVICE", "DONGLED_DATA"} & last.keys()
    assert last["PRIORITY"] == [b"4"]


def test_message_ids_are_stable() -> None:
    # Admins put these in journalctl filters and catalogs: they must never change.
    assert Event.RELINKED.message_id == "888e51cad7cb56c98345030a60298772"
    assert Event.VERIFIED.message_id == "7ae2ba2acadd51ad9443178e8bf7788b"
    assert len({e.message_id for e in Event}) == len(Event)


@pytest.mark.e2e
@needs_umockdev
def test_daemon_events_in_the_journal(tmp_path: Path, journal: JournalSocket) -> None:
    with rig(tmp_path, 2) as r:
        r.wait_all_right(timeout=10)
        r.extra_env["JOURNAL_STREAM"] = "8:12345"
        r.start_daemon()
        r.wait_notification("2 on their devices", 15)
        imei0 = r.imeis[0]
        r.unplug(0)

        def is_parked() -> bool:
            return any(e["DONGLED_EVENT"] == [b"section-parked"] for e in journal.events())

        deadline = time.monotonic() + 10
        while not is_parked() and time.monotonic() < deadline:
            journal.collect(timeout=0.1)
        r.replug(0)
        r.wait_all_right()
        new_data, new_audio = r.sticks[0].data_port.devnode, r.sticks[0].audio_port.devnode

        def relinked() -> list[Entry]:
            return [
                e
                for e in journal.events()
                if e["DONGLED_EVENT"] == [b"section-relinked"]
                and e.get("DONGLED_DATA") == [new_data.encode()]
            ]

        deadline = time.monotonic() + 10
        while not relinked() and time.monotonic() < deadline:
            journal.collect(timeout=0.2)
        journal.collect(timeout=0.5)
        events = journal.events()
        by_kind: dict[str, list[Entry]] = {}
        for e in events:
            by_kind.setdefault(_one(e, "DONGLED_EVENT"), []).append(e)
        assert {"stick-appeared", "stick-identified", "stick-gone", "section-parked"} <= set(
            by_kind
        ), sorted(by_kind)

        (rel,) = relinked()
        assert _one(rel, "DONGLED_DEVICE") == "dongle0"
        assert _one(rel, "DONGLED_IMEI") == imei0
        assert _one(rel, "DONGLED_AUDIO") == new_audio
        assert rel["PRIORITY"] == [b"4"]
        assert _one(rel, "MESSAGE_ID") == Event.RELINKED.message_id

        gone = [e for e in by_kind["stick-gone"] if e.get("DONGLED_IMEI") == [imei0.encode()]]
        assert gone and _one(gone[0], "DONGLED_USB_PATH") == r.sticks[0].name
        parked = [e for e in by_kind["section-parked"] if e["DONGLED_DEVICE"] == [b"dongle0"]]
        assert parked and _one(parked[0], "DONGLED_DATA").startswith("/dev/null/")
        ident = [
            e for e in by_kind["stick-identified"] if e.get("DONGLED_DATA") == [new_data.encode()]
        ]
        assert ident and _one(ident[0], "DONGLED_IMEI") == imei0
        # `journalctl DONGLED_IMEI=...` shows one stick's history: every event about stick 0
        # after the replug names its IMEI
        verified = [
            e
            for e in by_kind.get("device-verified", [])
            if e["DONGLED_DEVICE"] == [b"dongle0"] and e.get("DONGLED_DATA") == [new_data.encode()]
        ]
        deadline = time.monotonic() + 5
        while not verified and time.monotonic() < deadline:
            journal.collect(timeout=0.2)
            verified = [
                e
                for e in journal.events()
                if e["DONGLED_EVENT"] == [b"device-verified"]
                and e["DONGLED_DEVICE"] == [b"dongle0"]
                and e.get("DONGLED_DATA") == [new_data.encode()]
            ]
        assert verified and _one(verified[0], "DONGLED_IMEI") == imei0
        r.assert_never_foreign()
