"""READY=1, STATUS= and WATCHDOG=1 of `dongled run`, received on a real NOTIFY_SOCKET (an
AF_UNIX datagram socket, as systemd's) with the daemon as a subprocess."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.rig import rig
from tests.support.testbed import Testbed

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Testbed.available(), reason="needs umockdev-wrapper (CI runs it)"),
]


def test_ready_status_and_watchdog(tmp_path: Path) -> None:
    with rig(tmp_path, 2) as r:
        r.wait_all_right(timeout=10)
        r.extra_env["WATCHDOG_USEC"] = "400000"  # WatchdogSec=0.4: a ping every 0.2 s
        r.start_daemon()
        ready = [n for n in r.notifications if "READY=1" in n]
        assert len(ready) == 1
        fields = dict(line.split("=", 1) for line in ready[0].splitlines())
        assert fields["STATUS"].startswith("2 sticks")  # READY carries the first summary

        r.notifications.clear()
        time.sleep(1.0)
        r.poll_notifications()
        pings = [n for n in r.notifications if n == "WATCHDOG=1"]
        assert 3 <= len(pings) <= 8, r.notifications

        r.unplug(0)
        r.replug(0)
        r.wait_all_right()
        r.wait_notification("STATUS=2 sticks, 2 on their devices; last: dongle0", 10)
        assert not any("READY=1" in n for n in r.notifications)  # once only

        r.notifications.clear()
        assert r.stop_daemon() == 0
        r.poll_notifications()
        assert "STOPPING=1" in r.notifications


def test_no_watchdog_pings_unless_asked(tmp_path: Path) -> None:
    with rig(tmp_path, 1) as r:
        r.wait_all_right(timeout=10)
        r.start_daemon()
        time.sleep(0.5)
        r.poll_notifications()
        assert not any("WATCHDOG=1" in n for n in r.notifications)
