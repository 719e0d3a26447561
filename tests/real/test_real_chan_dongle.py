"""The real-driver tier for chan_dongle: dongled as its own process against the real Asterisk
20 and the real chan_dongle (tests/support/real_asterisk.py), sticks from umockdev and the pty
modem simulators."""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.rig import Rig, rig


def _actions(r: Rig, *names: str) -> list[float]:
    return [t for t, name, _ in r.asterisk.actions if name in names]


def test_restart_after_a_wrong_binding_brings_every_device_back(tmp_path: Path) -> None:
    """dongled was down while the sticks came back on each other's old numbers, and
    chan_dongle's own retry bound every device to the wrong stick. The restarted dongled stops
    them, waits until chan_dongle has let go of their ttys, and binds each back: within a
    second of its stops, with no crash."""
    with rig(tmp_path, 3, real=True) as r:
        n = len(r.sticks)
        old = [list(s.tty_numbers) for s in r.sticks]
        r.unplug(*range(n))
        r.asterisk.wait_for(
            lambda: all(
                e["State"] == "Not connected" for e in r.asterisk.devices_snapshot().values()
            ),
            5,
            "every device Not connected",
        )
        for i in range(n):
            r.replug(i, old[(i + 1) % n])
        r.asterisk.wait_for(
            lambda: len({b[1] for b in r.asterisk.foreign_bindings}) == n,
            10,
            what="chan_dongle binding every device to a wrong stick by itself",
        )
        pid = r.asterisk.pid
        r.start_daemon()
        r.wait_all_right(timeout=30)
        stops = _actions(r, "DongleStop")
        back = time.monotonic()
        assert len(stops) == n
        print(f"\n[real] all back {back - max(stops):.3f} s after the last DongleStop")
        assert r.asterisk.pid == pid and r.asterisk.hazards == []
        r.assert_only_ports_changed()
