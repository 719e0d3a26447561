"""No blocking call on the event loop: a probe port whose close() hangs (a hung usb_wwan stick
waits out the kernel's 30 s closing_wait, as long as WatchdogSec) and an fsync that takes
seconds leave the loop free: the watchdog is pinged on time and other sticks are handled.

The real daemon under umockdev with the test Asterisk; the hang itself cannot happen on a pty,
so it is put in with tests/support/faults.py (a `block` fault: the call sleeps in whatever
thread makes it)."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.marks import needs_umockdev
from tests.support.rig import PARKED_DATA, Rig, mixed_rig, rig, wait_until
from tests.support.rig_faults import faults, fired

BLOCK = 4.0
PING = 0.2  # WATCHDOG_USEC=400000: a ping every 0.2 s


def watch(r: Rig, seconds: float, check: Callable[[], bool]) -> tuple[list[float], float | None]:
    """Ping times over `seconds`, and when `check()` first held (None: never)."""
    r.notifications.clear()
    stamps: list[float] = []
    held: float | None = None
    start = time.monotonic()
    while (now := time.monotonic()) - start < seconds:
        before = len(r.notifications)
        r.poll_notifications()
        stamps += [now] * sum(1 for n in r.notifications[before:] if n == "WATCHDOG=1")
        if held is None and check():
            held = now - start
    return stamps, held


def parked(r: Rig, i: int) -> bool:
    """Section i of the file names the parked ports."""
    section = r.conf.read_text().split(f"[{r.names[i]}]", 1)[1].split("\n[", 1)[0]
    return PARKED_DATA in section


def worst_gap(stamps: list[float]) -> float:
    return max((b - a for a, b in itertools.pairwise(stamps)), default=float("inf"))


@pytest.mark.e2e
@needs_umockdev
def test_a_hanging_probe_close_holds_neither_the_watchdog_nor_other_sticks(
    tmp_path: Path,
) -> None:
    with rig(tmp_path, 2) as r:
        ttys = r.take_ttys(len(r.models[0].interfaces))
        armed, log = faults(
            r,
            *(
                {"at": "serial:Serial.close", "kind": "block", "seconds": BLOCK,
                 "match": f"ttyUSB{n}'"}
                for n in ttys
            ),
        )  # fmt: skip
        r.extra_env["WATCHDOG_USEC"] = str(int(PING * 2e6))
        r.start_daemon()
        r.wait_all_right()
        armed.touch()
        r.unplug(0)
        r.replug(0, ttys)  # its probe's port now takes BLOCK s to close
        wait_until(lambda: fired(log) >= 1, 10, "the hanging close")
        r.unplug(1)  # meanwhile the other stick leaves: its device is parked at once
        stamps, took = watch(r, BLOCK - 0.5, lambda: parked(r, 1))
        assert took is not None and took < 2.0, r.daemon_log()
        assert worst_gap(stamps) < 1.0, stamps
        armed.unlink()
        r.replug(1)
        r.wait_all_right(timeout=20)
        r.assert_daemon_alive()


@pytest.mark.e2e
@needs_umockdev
def test_a_slow_fsync_does_not_hold_the_watchdog(tmp_path: Path) -> None:
    with rig(tmp_path, 2) as r:
        armed, log = faults(r, {"at": "os:fsync", "kind": "block", "seconds": BLOCK})
        r.extra_env["WATCHDOG_USEC"] = str(int(PING * 2e6))
        r.start_daemon()
        r.wait_all_right()
        armed.touch()
        r.unplug(1)  # parking dongle1 writes the file: its fsyncs take BLOCK s each
        wait_until(lambda: fired(log) >= 1, 10, "the slow fsync")
        stamps, _ = watch(r, BLOCK - 0.5, lambda: False)
        assert worst_gap(stamps) < 1.0, stamps
        armed.unlink()
        wait_until(lambda: parked(r, 1), 3 * BLOCK, "dongle1 parked")
        r.replug(1)
        r.wait_all_right(timeout=20)
        r.assert_daemon_alive()


def test_closing_wait_none_is_tolerated_on_a_pty() -> None:
    """TIOCSSERIAL is how ModemManager sets closing_wait to none on a real ttyUSB; a pty has
    no serial_struct (ENOTTY) and is left as it is, without an error."""
    from dongled.modem.port import no_closing_wait

    master, slave = os.openpty()
    try:
        assert no_closing_wait(slave) is False
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.e2e
@needs_umockdev
def test_reading_the_other_drivers_file_does_not_hold_the_watchdog(tmp_path: Path) -> None:
    """On a box with two drivers a pass reads the other driver's file for the IMEIs it names
    while that lane has no parse yet (the first pass): that ran on the event loop, so a read
    that takes seconds (a slow or hung disk) held the watchdog and every stick (before: a
    gap of BLOCK s between pings). Now it runs in a thread."""
    with mixed_rig(tmp_path, "quectel-im") as r:
        armed, log = faults(
            r,
            {
                "at": "dongled.reconcile.lanes:file_imeis",
                "kind": "block",
                "seconds": BLOCK,
                "times": 1,
            },
        )
        armed.touch()
        r.extra_env["WATCHDOG_USEC"] = str(int(PING * 2e6))
        r.start_daemon(wait_ready=False)
        stamps, _ = watch(r, BLOCK + 3.0, lambda: False)  # from the start: the first pass
        assert fired(log) == 1, r.daemon_log()
        assert worst_gap(stamps) < 1.0, stamps
        r.wait_all_right(timeout=20)
        r.assert_daemon_alive()


@pytest.mark.e2e
@needs_umockdev
def test_status_of_a_file_that_does_not_parse_does_not_hold_the_watchdog(tmp_path: Path) -> None:
    """With no good parse yet (dongle.conf broken since the start) every status document
    reads the file again for its sections: that ran on the event loop, so a read that
    takes seconds held the watchdog at every status write (before: gaps of BLOCK s). Now
    the file is read in a thread and the document made from what it gave."""
    with rig(tmp_path, 1) as r:
        r.conf.write_text(r.conf.read_text() + "\n[broken\n")
        armed, log = faults(
            r, {"at": "dongled.status.snapshot:sections_now", "kind": "block", "seconds": BLOCK}
        )
        armed.touch()
        r.extra_env["WATCHDOG_USEC"] = str(int(PING * 2e6))
        r.start_daemon(wait_ready=False)
        r.wait_notification("WATCHDOG=1", 20)
        stamps, _ = watch(r, 2 * BLOCK, lambda: False)
        assert fired(log) >= 1, r.daemon_log()
        assert worst_gap(stamps) < 1.0, stamps
        r.assert_daemon_alive()


@pytest.mark.e2e
@needs_umockdev
def test_reading_a_hand_edited_file_does_not_hold_the_watchdog(tmp_path: Path) -> None:
    """After an admin's save the file watch reads the include tree to tell an edit from
    dongled's own write: that ran on the event loop, so a read that takes seconds held the
    watchdog and every stick (before: a gap of BLOCK s between pings). Now it runs in a
    thread, and the edit still gets its pass."""
    with rig(tmp_path, 1) as r:
        armed, log = faults(
            r,
            {
                "at": "dongled.reconcile.confwatch:fingerprint",
                "kind": "block",
                "seconds": BLOCK,
                "times": 1,
            },
        )
        r.extra_env["WATCHDOG_USEC"] = str(int(PING * 2e6))
        r.start_daemon()
        r.wait_all_right()
        armed.touch()
        r.conf.write_text(r.conf.read_text() + "\n; an admin's note\n")
        stamps, _ = watch(r, BLOCK + 2.0, lambda: False)
        assert fired(log) == 1, r.daemon_log()
        assert worst_gap(stamps) < 1.0, stamps
        assert "changed on disk: a pass reads it" in r.daemon_log()
        r.assert_daemon_alive()
