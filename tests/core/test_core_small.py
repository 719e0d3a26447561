"""The smaller findings of the core's review (issue 18, item 7), each shown on the daemon's
own objects: no AMI, no sticks needed for these."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dongled.conf.dongleconf import DongleConf
from dongled.config.settings import Settings
from dongled.core.errors import RecoveryError
from dongled.daemon import Daemon
from dongled.drivers.chan_dongle import CHAN_DONGLE
from dongled.drivers.chan_quectel import QUECTEL_IM
from dongled.hotplug.sticks import Stick, StickState
from dongled.modem.identity import Identity, valid_iccid, valid_imsi
from dongled.reconcile.plan import Plan


def two_drivers(tmp_path: Path) -> Daemon:
    (tmp_path / "dongle.conf").write_text("[dongle0]\ndata=/dev/ttyUSB2\naudio=/dev/ttyUSB1\n")
    (tmp_path / "quectel.conf").write_text("[quectel0]\ndata=/dev/ttyUSB8\naudio=/dev/ttyUSB9\n")
    settings = Settings(
        driver="chan_dongle+chan_quectel-im",
        drivers={
            "chan_dongle": str(tmp_path / "dongle.conf"),
            "chan_quectel": str(tmp_path / "quectel.conf"),
        },
        state_dir=str(tmp_path / "run"),
        lock_dir=str(tmp_path),
    )
    d = Daemon(settings, (CHAN_DONGLE, QUECTEL_IM))
    for lane in d.lanes:
        lane.seen.sections = DongleConf.load(lane.conf_path).devices()
    return d


def test_the_last_change_across_midnight(tmp_path: Path) -> None:
    """One lane changed at 23:59:59, the other two seconds later, after midnight: the later
    one is the last change (comparing the "HH:MM:SS" text chose the earlier one)."""
    d = two_drivers(tmp_path)
    dongle, quectel = d.lanes
    dongle.writer.last_change = "dongle0 -> ttyUSB2 23:59:59"
    dongle.writer.last_change_at = 1000.0
    quectel.writer.last_change = "quectel0 -> ttyUSB8 00:00:01"
    quectel.writer.last_change_at = 1002.0
    assert d.lanes.last_change == "quectel0 -> ttyUSB8 00:00:01"


def test_a_section_of_no_file_has_no_lane(tmp_path: Path) -> None:
    """A device no driver's file has (its section was removed while the ladder climbed)
    is not guessed to be the first driver's: its restart fails, said why."""
    d = two_drivers(tmp_path)
    assert d.lanes.lane_of("quectel0").driver is QUECTEL_IM
    with pytest.raises(LookupError, match=r"no driver's file has a section \[gone0\]"):
        d.lanes.lane_of("gone0")
    with pytest.raises(RecoveryError, match="device gone0 not restarted"):
        asyncio.run(d.lanes.restart_device("gone0"))


def test_vanished_sticks_are_not_remembered_forever(tmp_path: Path) -> None:
    from dongled.hotplug import registry

    d = Daemon(
        Settings(drivers={"chan_dongle": str(tmp_path / "dongle.conf")}, state_dir=str(tmp_path))
    )
    reg = d.registry
    for i in range(registry.GONE_MAX + 500):
        reg._note_gone(f"{i:015d}", float(i))
    assert len(reg._gone_at) == registry.GONE_MAX
    assert "000000000000000" not in reg._gone_at  # the oldest went first
    reg._note_gone("999999999999999", registry.GONE_KEEP + 10_000)
    assert list(reg._gone_at) == ["999999999999999"]  # a day later: the others are forgotten


def test_status_forgets_a_stick_that_left(tmp_path: Path) -> None:
    d = Daemon(
        Settings(drivers={"chan_dongle": str(tmp_path / "dongle.conf")}, state_dir=str(tmp_path))
    )
    for i in range(50):  # a stick re-enumerated under 50 different sysfs paths over time
        stick = Stick(usb_device=f"/sys/x/1-{i}", usb_port=f"1-{i}", vid="12d1", pid="1001")
        stick.state, stick.identity = StickState.IDENTIFIED, Identity(imei="356938030000005")
        d.registry.sticks.clear()
        d.registry.sticks[stick.usb_device] = stick
        d.status.snapshot()
    assert list(d.status._changes._seen) == ["stick:/sys/x/1-49"]


def _script(digits: str, zero: int) -> str:
    """`digits` in another script's digits (which `\\d` matches): FF10 fullwidth, 0660
    Arabic-Indic."""
    return "".join(chr(zero + int(c)) for c in digits)


@pytest.mark.parametrize(
    "imsi",
    [
        "250011234567890\n",  # a trailing newline passed `^...$`
        _script("250011234567890", 0xFF10),
        "25001" + _script("1234567890", 0x0660),
    ],
    ids=["newline", "fullwidth", "arabic-indic"],
)
def test_an_imsi_is_ascii_digits_only(imsi: str) -> None:
    assert not valid_imsi(imsi)
    with pytest.raises(ValueError, match="not a valid IMSI"):
        Identity(imei="356938030000005", imsi=imsi)
    assert valid_imsi("250011234567890")


def test_an_iccid_is_ascii_digits_only() -> None:
    assert valid_iccid("8970101234567890123")
    assert not valid_iccid("89" + _script("70101234567890123", 0xFF10))


def test_a_tty_moving_between_files_is_never_named_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dongle0 (in dongle.conf) and dongle1 (in an #included file) swap sticks. The files
    are replaced one after the other: after the first rename, a reader (Asterisk reloading
    for an admin) saw both sections on one tty. Now each state on disk names each tty once:
    the sections that take a tty from the other file are parked in between."""
    from dongled.reconcile import writer

    conf = tmp_path / "dongle.conf"
    conf.write_text(
        "[general]\ninterval=15\n\n[dongle0]\nimei=356938030000005\ndata=/dev/ttyUSB2\n"
        "audio=/dev/ttyUSB1\n\n#include branch.conf\n"
    )
    (tmp_path / "branch.conf").write_text(
        "[dongle1]\nimei=356938030000013\ndata=/dev/ttyUSB5\naudio=/dev/ttyUSB4\n"
    )
    d = Daemon(Settings(drivers={"chan_dongle": str(conf)}, state_dir=str(tmp_path / "run")))
    lane = d.lanes.first
    loaded = DongleConf.load(str(conf))
    lane.seen.sections = loaded.devices()
    seen: list[dict[str, tuple[str | None, str | None]]] = []
    from dongled.conf.atomicfile import replace_atomically as real

    def recording(path: str, content: bytes, *, expected: bytes) -> None:
        real(path, content, expected=expected)
        now = DongleConf.load(str(conf)).devices()  # what a reader sees right now
        seen.append({n: (s.data, s.audio) for n, s in now.items()})

    monkeypatch.setattr(writer, "replace_atomically", recording)
    p = Plan(
        port_changes={
            "dongle0": ("/dev/ttyUSB5", "/dev/ttyUSB4"),
            "dongle1": ("/dev/ttyUSB2", "/dev/ttyUSB1"),
        }
    )
    assert asyncio.run(lane.writer.write(loaded, p)) is True
    for state in seen:
        ttys = [t for pair in state.values() for t in pair if t and "dongled-stick" not in t]
        assert len(ttys) == len(set(ttys)), seen
    assert seen[-1] == {
        "dongle0": ("/dev/ttyUSB5", "/dev/ttyUSB4"),
        "dongle1": ("/dev/ttyUSB2", "/dev/ttyUSB1"),
    }
