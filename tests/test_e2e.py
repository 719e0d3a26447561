"""`dongled run` as a real subprocess against umockdev sticks and the test Asterisk.

Mocked: nothing on dongled's side. The Asterisk is our TCP test server (tests/support/
fake_asterisk.py), since a real Asterisk with chan_dongle cannot run here; it reproduces the
behaviour recorded in shared/spec/real-asterisk.md, re-grabbing of old paths included.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.rig import PARKED_DATA, rig
from tests.support.testbed import Testbed

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Testbed.available(), reason="needs umockdev-wrapper (CI runs it)"),
]


def test_every_stick_back_on_new_numbers(tmp_path: Path) -> None:
    with rig(tmp_path, 3) as r:
        r.wait_all_right(timeout=10)
        r.start_daemon()
        reloads = r.asterisk.reload_count
        r.unplug(0, 1, 2)
        for i in range(3):
            r.replug(i)
        took = r.wait_all_right()
        print(f"all 3 sticks verified {took:.2f} s after the replug")
        r.assert_never_foreign()
        r.assert_only_ports_changed()
        assert r.asterisk.reload_count - reloads == 1
        r.assert_daemon_alive()


def test_rotated_onto_each_others_numbers_one_at_a_time(tmp_path: Path) -> None:
    with rig(tmp_path, 3) as r:
        r.wait_all_right(timeout=10)
        r.start_daemon()
        old = [list(s.tty_numbers) for s in r.sticks]
        r.unplug(0, 1, 2)
        time.sleep(1.5)  # past chan_dongle's interval: it tries the old paths meanwhile
        for i in range(3):
            r.replug(i, old[(i + 1) % 3])
            time.sleep(0.5)
        r.wait_all_right()
        r.assert_never_foreign()
        r.assert_only_ports_changed()


def test_one_stick_never_comes_back(tmp_path: Path) -> None:
    with rig(tmp_path, 3) as r:
        r.wait_all_right(timeout=10)
        r.start_daemon()
        r.unplug(0, 1, 2)
        r.replug(0)
        r.replug(1)
        r.wait_all_right([0, 1])
        entry = r.asterisk.devices_snapshot()["dongle2"]
        assert entry["DataSetting"] == PARKED_DATA or entry["State"] == "Stopped"
        assert b"data=" + PARKED_DATA.encode() in r.conf.read_bytes()
        r.asterisk.admin_reload()  # an admin's reload must not start it on a stale path
        time.sleep(1.5)
        r.assert_never_foreign()
