"""Renumbering scenarios against the real Asterisk with the real chan_dongle, chan_quectel IM
and RE, and chan_dongle beside either fork: dongled as its own process, sticks from umockdev
and the pty simulators. Each asserts what a user would see: no device ever ran a foreign IMEI
(the listing polled every 20 ms), every device back on its own stick, Asterisk never crashed
(same pid, no segfault), and the files' other bytes unchanged."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.real.drivers import MIXED, SINGLE, real_rig, verbs
from tests.support.real_asterisk import RealAsterisk
from tests.support.rig import PARKED_DATA, Rig, wait_until
from tests.support.scenarios import (
    back_on_the_same_numbers,
    one_never_back,
    rotated_all_at_once,
    rotated_one_at_a_time,
    stale_config_at_startup,
)

ALL = SINGLE + MIXED


def _real(r: Rig) -> RealAsterisk:
    assert r.real is not None
    return r.real


def _settled(r: Rig) -> None:
    """Before dongled starts: every device Free on its own stick (RE connects one interval
    after its load)."""
    r.wait_all_right(timeout=20)


def _assert_safe(r: Rig, pid: int | None) -> None:
    r.assert_never_foreign()
    assert _real(r).pid == pid, "Asterisk was restarted behind the test's back"
    assert r.asterisk.hazards == []


def _parked(r: Rig) -> int:
    return sum(p.read_bytes().count(PARKED_DATA.encode()) for p in r.confs)


def _storm(r: Rig, order: list[int]) -> None:
    """dongled runs; every stick drops (each section parked), then all come back on new
    numbers in `order`: each device on its own stick."""
    _settled(r)
    pid = _real(r).pid
    r.start_daemon()
    r.unplug(*range(len(r.sticks)))
    wait_until(lambda: _parked(r) == len(r.sticks), 10, "every section parked")
    for i in order:
        r.replug(i)
    r.wait_all_right(timeout=30)
    _assert_safe(r, pid)
    r.assert_only_ports_changed()


@pytest.mark.parametrize("driver", ALL)
def test_every_stick_back_on_new_numbers(tmp_path: Path, driver: str) -> None:
    with real_rig(tmp_path, driver) as r:
        _storm(r, list(range(len(r.sticks))))


def test_ten_sticks_back_on_new_numbers(tmp_path: Path) -> None:
    with real_rig(tmp_path, "chan_dongle", 10) as r:
        _storm(r, list(reversed(range(10))))


# The scenarios the test Asterisk's end-to-end tests run too (tests/support/scenarios.py);
# rotations need sticks alike in their ttys, so not on a mixed box.
SHARED = [
    *((rotated_one_at_a_time, d) for d in SINGLE),
    *((rotated_all_at_once, d) for d in SINGLE),
    *((back_on_the_same_numbers, d) for d in ALL),
    *((one_never_back, d) for d in ALL),
    *((stale_config_at_startup, d) for d in ALL),
]


@pytest.mark.parametrize(
    ("scenario", "driver"), SHARED, ids=[f"{f.__name__}-{d}" for f, d in SHARED]
)
def test_shared_scenario(tmp_path: Path, scenario: Callable[[Rig], None], driver: str) -> None:
    with real_rig(tmp_path, driver) as r:
        _settled(r)
        pid = _real(r).pid
        scenario(r)
        _assert_safe(r, pid)


@pytest.mark.parametrize("driver", SINGLE)
def test_returning_one_by_one(tmp_path: Path, driver: str) -> None:
    """Sticks back 0.5 s apart on new numbers: each line back on its own, never foreign."""
    with real_rig(tmp_path, driver) as r:
        _settled(r)
        pid = _real(r).pid
        r.start_daemon()
        r.unplug(*range(3))
        wait_until(lambda: _parked(r) == 3, 10, "every section parked")
        for i in range(3):
            r.replug(i)
            r.wait_all_right([i], timeout=20)
        r.wait_all_right(timeout=10)
        _assert_safe(r, pid)


@pytest.mark.parametrize("driver", SINGLE)
def test_asterisk_restarted_while_the_sticks_are_away(tmp_path: Path, driver: str) -> None:
    """Asterisk restarts while every stick is away (it reads the parked file), then the
    sticks come back on new numbers: dongled reconnects and binds each on its own."""
    with real_rig(tmp_path, driver) as r:
        _settled(r)
        r.start_daemon()
        r.unplug(*range(3))
        wait_until(lambda: _parked(r) == 3, 10, "every section parked")
        _real(r).restart()
        pid = _real(r).pid
        for i in range(3):
            r.replug(i)
        r.wait_all_right(timeout=30)
        _assert_safe(r, pid)
        r.assert_only_ports_changed()


@pytest.mark.parametrize("driver", SINGLE)
def test_an_admins_reload_during_a_return(tmp_path: Path, driver: str) -> None:
    """An admin reloads the driver while the sticks are coming back: nobody foreign."""
    with real_rig(tmp_path, driver) as r:
        _settled(r)
        pid = _real(r).pid
        r.start_daemon()
        r.unplug(*range(3))
        wait_until(lambda: _parked(r) == 3, 10, "every section parked")
        r.replug(0)
        r.asterisk.admin_reload()
        r.replug(1)
        r.replug(2)
        r.asterisk.admin_reload()
        r.wait_all_right(timeout=30)
        _assert_safe(r, pid)


@pytest.mark.parametrize("driver", ALL)
def test_restart_after_a_wrong_binding(tmp_path: Path, driver: str) -> None:
    """dongled was killed while the sticks were away, and the driver's own retry bound every
    device to the wrong stick. The restarted dongled stops them, waits until the driver has
    let go of their ttys (a reopen a few ms after the stop crashed a real Asterisk) and binds
    each back, without climbing the recovery ladder."""
    with real_rig(tmp_path, driver) as r:
        _settled(r)
        pid = _real(r).pid
        n = len(r.sticks)
        old = [list(s.tty_numbers) for s in r.sticks]
        r.start_daemon()
        assert r.daemon is not None
        r.daemon.kill()  # killed: it parks nothing
        r.daemon.wait()
        r.daemon = None
        r.unplug(*range(n))
        snapshot = r.asterisk.devices_snapshot
        r.asterisk.wait_for(
            lambda: all(e["State"] != "Free" for e in snapshot().values()), 10, what="all down"
        )
        rotation = 2 if "+" in driver else 1  # a Huawei stick and an EC25 differ in ttys
        for i in range(n):
            r.replug(i, old[(i + rotation) % n])
        r.asterisk.wait_for(
            lambda: len({b[1] for b in r.asterisk.foreign_bindings}) == n,
            20,
            what="the driver binding every device to a wrong stick by itself",
        )
        wrong = r.asterisk.foreign_bindings
        r.start_daemon()
        r.wait_all_right(timeout=60)  # RE's own stops can take 10 s each
        stops = [t for t, verb in verbs(r) if verb.startswith("stop")]
        took = time.monotonic() - max(stops)
        print(f"\n[real] {driver}: all back {took:.3f} s after the last stop")
        assert r.asterisk.foreign_bindings == wrong  # none since dongled started
        assert _real(r).pid == pid and r.asterisk.hazards == []
        assert "recovery step" not in r.daemon_log()
        r.assert_only_ports_changed()


@pytest.mark.parametrize("driver", ALL)
def test_dongled_started_while_every_device_runs_right_stops_nothing(
    tmp_path: Path, driver: str
) -> None:
    """dongled starts while the driver already runs every device on its own stick: it learns
    which module each device holds from the driver (lock files and DataState; RE's own
    settings command) and stops, reloads or starts nothing. (Against the real RE, stopping
    every device to probe it left RE with no device back in 3 of 9 start-ups.)"""
    with real_rig(tmp_path, driver) as r:
        _settled(r)
        pid = _real(r).pid
        r.start_daemon()
        wait_until(lambda: r.status().get("ok") is True, 15, "dongled status ok")
        assert [
            verb for _, verb in verbs(r) if verb.split()[0] in ("stop", "start", "reload")
        ] == []
        print(f"\n[real] {driver}: started while all ran right: nothing stopped")
        _assert_safe(r, pid)
        r.assert_only_ports_changed()
