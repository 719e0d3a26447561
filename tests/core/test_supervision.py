"""Every long-lived task of `dongled run` is restarted when it dies, or the daemon exits
non-zero for systemd; the watchdog is never pinged for a daemon that runs on with a dead task.

The daemon is the real subprocess with its real NOTIFY_SOCKET, the test Asterisk and umockdev
sticks. What cannot be caused from outside, a bug's exception inside a task, is put in with
tests/support/faults.py (a wrapper around one dongled function, armed by a file)."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from tests.support.marks import needs_umockdev
from tests.support.rig import FAST_RECOVERY, journal, rig, wait_until
from tests.support.rig_faults import faults, fired

pytestmark = [pytest.mark.e2e, needs_umockdev]


def test_an_unexpected_error_in_a_reconnect_does_not_end_reconnects(tmp_path: Path) -> None:
    """AmiSupervisor caught only AmiError: one RuntimeError in connect() ended AMI
    reconnects for good, while the watchdog went on pinging. Now the next attempt follows."""
    with rig(tmp_path, 2) as r:
        armed, log = faults(
            r, {"at": "dongled.asterisk.ami:AmiClient.connect", "kind": "raise", "times": 1}
        )
        r.extra_env["WATCHDOG_USEC"] = "2000000"
        r.start_daemon()
        r.wait_all_right()
        armed.touch()
        r.asterisk.drop_sessions()
        wait_until(lambda: fired(log) == 1, 10, "the fault at the reconnect")
        # Asterisk's view changes while dongled is away only by a stick moving: a reconnect
        # and a pass put it right again, with no connection none would.
        r.unplug(0)
        r.replug(0)
        r.wait_all_right(timeout=20)
        assert r.status().get("ami_connected") is True
        r.assert_daemon_alive()
        r.assert_never_foreign()


def test_a_task_that_keeps_dying_ends_the_daemon_for_systemd(tmp_path: Path) -> None:
    """The reconcile loop's wait for events is outside its guard: a bug there ended the
    loop, nothing was ever reconciled again and the watchdog went on pinging. Now it is
    restarted with backoff, and once it cannot be kept alive the daemon exits non-zero."""
    with rig(tmp_path, 1) as r:
        armed, log = faults(
            r, {"at": "dongled.reconcile.coalescer:Coalescer.next_pass", "kind": "raise"}
        )
        r.extra_env["WATCHDOG_USEC"] = "400000"  # a ping every 0.2 s
        r.start_daemon()
        r.wait_all_right()
        armed.touch()
        r.unplug(0)  # a pass ends: the loop asks for the next one, and dies there
        assert r.daemon is not None
        try:
            code = r.daemon.wait(30)
        except Exception:
            raise AssertionError(f"daemon still runs; log:\n{r.daemon_log()}") from None
        assert code == 1, r.daemon_log()
        text = r.daemon_log()
        assert fired(log) == 5 and text.count("restarting it in") == 4, text
        assert "exiting for systemd to restart dongled" in text, text
        # While the task was dead (each backoff was longer than the 0.2 s ping interval)
        # the watchdog was quiet at least once.
        assert "no watchdog ping while dead: reconcile" in text, text


def test_the_watchdog_stops_while_a_task_is_dead(tmp_path: Path) -> None:
    """The pings go on as long as every task runs; during a restart's backoff longer than
    the interval there are none, then they resume."""
    with rig(tmp_path, 1) as r:
        armed, log = faults(
            r,
            {"at": "dongled.reconcile.coalescer:Coalescer.next_pass", "kind": "raise", "times": 1},
        )
        r.extra_env["WATCHDOG_USEC"] = "200000"  # a ping every 0.1 s; the backoff is 0.5 s
        r.start_daemon()
        r.wait_all_right()
        armed.touch()
        r.unplug(0)
        wait_until(lambda: fired(log) == 1, 10, "the fault")
        r.notifications.clear()
        stamps: list[float] = []
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            before = len(r.notifications)
            r.poll_notifications()
            stamps += [time.monotonic()] * sum(
                1 for n in r.notifications[before:] if n == "WATCHDOG=1"
            )
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        assert stamps and max(gaps) >= 0.3, gaps  # quiet while dead
        assert stamps[-1] > end - 0.5  # and back once restarted
        r.replug(0)
        r.wait_all_right()  # the restarted loop reconciles
        r.assert_daemon_alive()


def test_a_bug_in_one_recovery_step_does_not_end_the_sticks_ladder(tmp_path: Path) -> None:
    """A climb of the ladder that died of an unexpected error never set its follow-up: a
    device that did not come up (reported once, by its verification) was never looked at
    again. Now the failure is journaled and the ladder goes on to its next step."""
    with rig(tmp_path, 1) as r:
        r.wait_all_right(timeout=10)
        r.write_settings(verify_timeout=1.0, tables={"recovery": FAST_RECOVERY})
        armed, log = faults(
            r, {"at": "dongled.recovery.runner:Recovery._take_step", "kind": "raise", "times": 1}
        )
        armed.touch()
        r.start_daemon()
        r.sims[0].imsi = None  # chan_dongle's init aborts on AT+CIMI ERROR: the device stays down
        r.unplug(0)
        time.sleep(0.3)
        r.replug(0)
        wait_until(lambda: fired(log) == 1, 10, "the fault in the restart step")
        # The ladder goes on: its next step is a USB one, which a modem that answers AT (as
        # this SIM-less stick does) does not get: the driver is said to be at fault instead.
        wait_until(
            lambda: bool(journal(r, "answers AT")),
            10,
            f"the ladder's next step\n{r.daemon_log()}",
        )
        assert journal(r, "recovery of USB 1-1.1 failed: InjectedFault")


def test_a_bug_in_a_probe_does_not_lose_the_stick(tmp_path: Path) -> None:
    """Found by the fault campaign: a probe that died of an unexpected error left its stick
    "probing" for good (never identified, every pass held back). Now it is a failed probe,
    tried again with backoff."""
    with rig(tmp_path, 2) as r:
        armed, log = faults(
            r, {"at": "dongled.hotplug.prober:identify_port", "kind": "raise", "times": 1}
        )
        r.start_daemon()
        r.wait_all_right()
        armed.touch()
        r.unplug(0)
        r.replug(0)
        wait_until(lambda: fired(log) == 1, 10, "the fault in the probe")
        r.wait_all_right(timeout=20)
        r.assert_never_foreign()


def test_a_bug_handling_a_udev_event_does_not_lose_the_stick(tmp_path: Path) -> None:
    """Found by the fault campaign: an event whose handling failed was lost, and with it the
    stick (nothing else would ever announce it). Now the ttys are listed again."""
    with rig(tmp_path, 2) as r:
        armed, log = faults(
            r, {"at": "dongled.hotplug.registry:StickRegistry.on_tty_event", "kind": "raise"}
        )
        r.start_daemon()
        r.wait_all_right()
        armed.touch()  # every tty event of the replug fails
        r.unplug(0)
        r.replug(0)
        wait_until(lambda: fired(log) >= 2, 10, "the faults in the udev handler")
        armed.unlink()
        r.wait_all_right(timeout=20)
        r.assert_never_foreign()


def test_a_task_hung_in_an_await_stops_the_watchdog(tmp_path: Path) -> None:
    """A task hung for good in an await (here the reconcile loop's wait for the next pass,
    stalled for an hour) still runs, so the watchdog went on pinging a daemon that would
    never reconcile again. Now each task marks its progress; past its bound the stall is
    journaled and the pings stop, so systemd restarts dongled."""
    with rig(tmp_path, 1) as r:
        # reconcile's bound: stall_after + 2 * max(batch_max_wait + 0.5, ami.backoff_max 1) = 3 s
        r.write_settings(stall_after=1.0, batch_max_wait=0.5)
        armed, log = faults(
            r,
            {
                "at": "dongled.reconcile.coalescer:Coalescer.next_pass",
                "kind": "stall",
                "seconds": 3600,
                "times": 1,
            },
        )
        r.extra_env["WATCHDOG_USEC"] = "400000"  # a ping every 0.2 s
        r.start_daemon()
        r.wait_all_right()
        # Idle, every task beats through its waits' timeouts: pings all along.
        r.poll_notifications()
        r.notifications.clear()
        time.sleep(4.0)
        r.poll_notifications()
        assert r.notifications.count("WATCHDOG=1") >= 10, r.daemon_log()
        assert "no progress" not in r.daemon_log()
        armed.touch()
        r.unplug(0)  # a pass runs; the loop's next wait for a pass hangs
        wait_until(lambda: fired(log) == 1, 10, "the stall")
        hung_at = time.monotonic()
        wait_until(
            lambda: "task reconcile has made no progress" in r.daemon_log(),
            10,
            f"the stall journaled\n{r.daemon_log()}",
        )
        assert time.monotonic() - hung_at < 3.0 + 2.0  # its bound, plus a ping interval or so
        # The watchdog's own line follows the journaled stall (read between the two once).
        wait_until(
            lambda: "no watchdog ping while dead: reconcile (no progress for" in r.daemon_log(),
            5,
            f"the watchdog's word\n{r.daemon_log()}",
        )
        r.poll_notifications()  # the pings sent before the stall was seen
        r.notifications.clear()
        time.sleep(2.0)
        r.poll_notifications()
        assert "WATCHDOG=1" not in r.notifications, r.notifications
        r.assert_daemon_alive()  # the process runs on: only systemd's watchdog ends it
