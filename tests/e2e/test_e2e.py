"""`dongled run` as a real subprocess against umockdev sticks and the test Asterisk.

Mocked: nothing on dongled's side. The Asterisk is our TCP test server (tests/support/
fake_asterisk.py), since a real Asterisk with chan_dongle cannot run here; it behaves as a real
Asterisk 20 with chan_dongle was seen to do, re-grabbing of old paths included.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.marks import needs_umockdev
from tests.support.rig import PARKED_DATA, rig, wait_until
from tests.support.scenarios import restart_after_a_wrong_binding, rotated_one_at_a_time

pytestmark = [
    pytest.mark.e2e,
    needs_umockdev,
]


def test_every_stick_back_on_new_numbers(tmp_path: Path) -> None:
    with rig(tmp_path, 3) as r:
        r.wait_all_right(timeout=10)
        r.start_daemon()
        r.unplug(0, 1, 2)
        time.sleep(0.5)  # a real stick takes 2-10 s to re-enumerate; the drop is handled first
        reloads = r.asterisk.reload_count
        for i in range(3):
            r.replug(i)
        r.wait_all_right()
        r.assert_never_foreign()
        r.assert_only_ports_changed()
        assert r.asterisk.reload_count - reloads == 1
        r.assert_daemon_alive()


def test_rotated_onto_each_others_numbers_one_at_a_time(tmp_path: Path) -> None:
    with rig(tmp_path, 3) as r:
        r.wait_all_right(timeout=10)
        rotated_one_at_a_time(r)


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


def test_a_line_comes_back_without_waiting_for_its_siblings(tmp_path: Path) -> None:
    """After a hub dip real sticks return seconds apart: each line is back as soon as its own
    stick is identified, not when the slowest sibling is (parking keeps that safe)."""
    with rig(tmp_path, 3) as r:
        r.wait_all_right(timeout=10)
        r.write_settings(batch_max_wait=10.0)  # a line held for its siblings would wait 10 s
        r.start_daemon()
        r.unplug(0, 1, 2)
        wait_until(lambda: r.conf.read_text().count(PARKED_DATA) == 3, 5, "all parked")
        r.replug(0)
        r.wait_all_right([0], timeout=5)  # its siblings are still away
        assert not r.device_right(1) and not r.device_right(2)
        r.replug(1)
        r.replug(2)
        r.wait_all_right()
        r.assert_never_foreign()
        r.assert_only_ports_changed()


def test_rotated_all_at_once(tmp_path: Path) -> None:
    with rig(tmp_path, 3) as r:
        r.wait_all_right(timeout=10)
        r.start_daemon()
        old = [list(s.tty_numbers) for s in r.sticks]
        r.unplug(0, 1, 2)
        for i in range(3):
            r.replug(i, old[(i + 2) % 3])
        r.wait_all_right()
        time.sleep(1.2)  # one more chan_dongle pass: nothing may move afterwards
        assert all(r.device_right(i) for i in range(3))
        r.assert_never_foreign()
        r.assert_only_ports_changed()


def test_back_on_the_same_numbers(tmp_path: Path) -> None:
    with rig(tmp_path, 2) as r:
        r.wait_all_right(timeout=10)
        r.start_daemon()
        old = [list(s.tty_numbers) for s in r.sticks]
        r.unplug(0, 1)
        time.sleep(0.3)
        for i in range(2):
            r.replug(i, old[i])
        r.wait_all_right()
        r.assert_never_foreign()
        assert r.conf.read_bytes() == r.original  # parked, then back to the very same bytes


def test_storm_of_ten_two_writes_two_reloads_at_most(tmp_path: Path) -> None:
    """A hub's ten sticks back at once: the first stick identified has its pass at once (it
    cannot know that nine more are coming), the other nine share the next one."""
    import random

    rnd = random.Random(7)
    with rig(tmp_path, 10) as r:
        r.wait_all_right(timeout=20)
        r.start_daemon()
        r.unplug(*range(10))
        time.sleep(0.8)  # real sticks take seconds to come back; the drop is parked meanwhile
        parked = r.status()["counters"]
        reloads = r.asterisk.reload_count
        order = list(range(10))
        rnd.shuffle(order)
        numbers = list(range(r.next_tty, r.next_tty + 30))
        rnd.shuffle(numbers)
        r.next_tty += 30
        for k, i in enumerate(order):  # all at once, as after a hub's power dip
            r.replug(i, sorted(numbers[3 * k : 3 * k + 3]))
            time.sleep(rnd.uniform(0, 0.01))
        r.wait_all_right(timeout=20)
        after = r.status()["counters"]
        assert isinstance(parked, dict) and isinstance(after, dict)
        assert after["conf_writes"] - parked["conf_writes"] <= 2
        assert r.asterisk.reload_count - reloads <= 2
        r.assert_never_foreign()
        r.assert_only_ports_changed()
        # Ten sticks on one root bus: near what one USB controller serves, said once.
        warned = [ln for ln in r.daemon_log().splitlines() if "one USB controller" in ln]
        assert len(warned) == 1 and "10 sticks on USB bus 1" in warned[0]


def test_asterisk_down_during_the_storm_and_back_later(tmp_path: Path) -> None:
    with rig(tmp_path, 4) as r:
        r.wait_all_right(timeout=10)
        r.start_daemon()
        old = [list(s.tty_numbers) for s in r.sticks]
        r.asterisk.go_down()
        r.unplug(0, 1, 2, 3)
        time.sleep(0.5)
        for i in range(4):  # on each other's old numbers: the dangerous case
            r.replug(i, old[(i + 1) % 4])
        time.sleep(2.5)  # chan_dongle's own passes run meanwhile; AMI is unreachable
        r.assert_never_foreign()
        r.asterisk.come_up()
        r.wait_all_right(timeout=20)
        r.assert_never_foreign()
        r.assert_only_ports_changed()


def test_restart_of_dongled_repairs_a_stale_config(tmp_path: Path) -> None:
    with rig(tmp_path, 3) as r:
        r.wait_all_right(timeout=10)
        r.unplug(0, 1, 2)  # no dongled running: chan_dongle is on its own
        for i in range(3):
            r.replug(i)
        time.sleep(0.3)
        r.start_daemon()
        r.wait_all_right()
        r.assert_never_foreign()
        r.assert_only_ports_changed()


def test_restart_after_a_wrong_binding_reopens_no_port_that_is_still_closing(
    tmp_path: Path,
) -> None:
    """dongled was down while the sticks came back on each other's old numbers, and
    chan_dongle's own retry bound every device to the wrong stick. The restarted dongled
    stops them at once, but re-opens their ttys only after chan_dongle has let go of them:
    a reload a few ms after the stop crashed a real Asterisk."""
    with rig(tmp_path, 3) as r:
        r.wait_all_right(timeout=10)
        wait = restart_after_a_wrong_binding(r, "DongleStop", ("DongleReload", "DongleStart"))
        print(f"\n[release] last DongleStop -> first re-open: {wait:.3f} s")


def test_startup_with_a_right_config_changes_nothing(tmp_path: Path) -> None:
    with rig(tmp_path, 3) as r:
        r.wait_all_right(timeout=10)
        reloads = r.asterisk.reload_count
        r.start_daemon()
        time.sleep(0.5)
        assert r.conf.read_bytes() == r.original
        assert r.asterisk.reload_count == reloads
        assert not (tmp_path / "dongle.conf.dongled-bak").exists()
        r.wait_notification("STATUS=3 sticks, 3 on their devices", 5)
