"""Campaign 8: fault injection into the long-lived tasks. At each await point of each task
(the list below), an unexpected exception (twice; or every time while armed, for 3 s or for
12 s) or a stall of 3 s (twice) is put in with tests/support/faults.py while a storm runs: 3
sticks unplugged and plugged back on new tty numbers, and the AMI connection dropped. Then, in
every run, the daemon must either recover on its own, every line back on its own stick and
every long-lived task alive, or have exited non-zero (for systemd, which restarts it: here the
test restarts it and the lines must come back). A run that goes on with a dead task, or with
lines not back, is a silent death. The event loop runs in asyncio's debug mode, which logs
every callback that held it longer than 0.1 s: a stall is one longer than a second.

Run alone, it prints one FIGURE line per run (`tests/reliability/test_rel_runner.py` runs it in
a fresh process):
`DONGLED_REL_CHILD=1 umockdev-wrapper .venv/bin/python -m pytest -s
tests/reliability/test_rel_faults.py`
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.figures import figure
from tests.support.marks import needs_umockdev, rel_child_only
from tests.support.rig import Rig, rig
from tests.support.rig_faults import faults, fired

pytestmark = [pytest.mark.e2e, rel_child_only, needs_umockdev]

STICKS = 3
HOLD = 3.0  # the fault stays armed this long into the storm
RECOVER = 40.0  # then the lines must be back (or the daemon gone) within this
LONG_LIVED = {"status", "ami", "reconcile", "lines"}

# (task, where): an async method or function each task awaits; sync ones only raise
POINTS: list[tuple[str, str, bool]] = [
    ("ami", "dongled.asterisk.ami:AmiClient.connect", True),
    ("ami", "dongled.asterisk.control:ActionControl.show_devices", True),
    ("reconcile", "dongled.reconcile.coalescer:Coalescer.next_pass", True),
    ("reconcile", "dongled.reconcile.lanes:Lanes.apply", True),
    ("reconcile", "dongled.reconcile.executor:PassExecutor.prepare", True),
    ("reconcile", "dongled.reconcile.writer:Writer.write", True),
    ("reconcile", "dongled.reconcile.teller:Teller.tell", True),
    ("reconcile", "dongled.reconcile.release:Releases.settle", True),
    ("verify", "dongled.reconcile.verifier:Verifier.verify", True),
    ("probe", "dongled.hotplug.prober:identify_port", True),
    ("lines", "dongled.reconcile.lanes:Lanes.listing", True),
    ("recovery", "dongled.recovery.runner:Recovery._recover", True),  # stick 0 hangs in the storm
    ("status", "dongled.status.snapshot:snapshot", False),
    ("udev", "dongled.hotplug.registry:StickRegistry.on_tty_event", False),
]
MODES: dict[str, dict[str, Any]] = {
    "raise-twice": {"kind": "raise", "times": 2},
    "raise-always": {"kind": "raise"},  # while armed: HOLD s
    "raise-always-12s": {"kind": "raise", "hold": 12.0},  # long enough to exhaust restarts
    "stall-3s": {"kind": "stall", "seconds": 3.0, "times": 2},
}


def point_id(point: tuple[str, str, bool]) -> str:
    return point[1].split(":")[1].replace(".", "-")


class Pings(threading.Thread):
    """Receives the daemon's notifications meanwhile: the times of its WATCHDOG=1."""

    def __init__(self, r: Rig) -> None:
        super().__init__(daemon=True)
        self.r, self.stamps, self.done = r, list[float](), threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                text = self.r.notify.recv(4096).decode()
            except (TimeoutError, BlockingIOError):
                continue
            if text == "WATCHDOG=1":
                self.stamps.append(time.monotonic())

    def stop(self) -> float:
        """The longest silence between two pings (seconds)."""
        self.done.set()
        self.join()
        gaps = [b - a for a, b in zip(self.stamps, self.stamps[1:], strict=False)]
        return round(max(gaps, default=0.0), 3)


def live_tasks(r: Rig, path: Path) -> set[str]:
    assert r.daemon is not None
    path.unlink(missing_ok=True)
    r.daemon.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 5
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("no task dump")
        time.sleep(0.02)
    names: list[str] = json.loads(path.read_text())
    return set(names)


def stalls(log: str) -> list[float]:
    """Callbacks that held the event loop longer than a second (asyncio's debug mode)."""
    return [float(s) for s in re.findall(r"took (\d+\.\d+) seconds", log) if float(s) > 1.0]


def storm(r: Rig, free: list[int], hang: bool) -> None:
    """Every stick out and back on other tty numbers, the AMI connection dropped meanwhile;
    with `hang`, stick 0 comes back mute (the recovery ladder takes it)."""
    for i in range(STICKS):
        free += r.sticks[i].tty_numbers
        r.unplug(i)
    r.asterisk.drop_sessions()
    r.sims[0].mute = hang
    for i in range(STICKS):
        replug(r, i, free)


def replug(r: Rig, i: int, free: list[int]) -> None:
    width = len(r.model.interfaces)
    if r.sticks[i].plugged:
        free += r.sticks[i].tty_numbers
    ttys, free[:] = free[:width], free[width:]
    r.replug(i, ttys)


def one_run(
    r: Rig, tmp: Path, where: str, mode: str, free: list[int], hang: bool
) -> dict[str, Any]:
    spec = dict(MODES[mode])
    hold = spec.pop("hold", HOLD)
    armed, log = faults(r, {"at": where, **spec})
    (tmp / "fired").unlink(missing_ok=True)
    tasks_file = tmp / "tasks.json"
    r.extra_env.update(
        {
            "WATCHDOG_USEC": "400000",
            "PYTHONASYNCIODEBUG": "1",
            "DONGLED_TASKS_FILE": str(tasks_file),
        }
    )
    r.notifications.clear()  # READY=1 must be this daemon's
    r.start_daemon()
    r.wait_all_right(timeout=20)
    start_log = len(r.daemon_log())
    pings = Pings(r)
    pings.start()
    armed.touch()
    storm(r, free, hang)
    time.sleep(hold)
    armed.unlink()
    if hang:  # as a USB reset would: the stick re-enumerates, unstuck
        r.sims[0].mute = False
        replug(r, 0, free)
    outcome, code = "", None
    deadline = time.monotonic() + RECOVER
    while not outcome and time.monotonic() < deadline:
        assert r.daemon is not None
        code = r.daemon.poll()
        if code is not None:
            outcome = "exited"
        elif all(r.device_right(i) for i in range(STICKS)):
            # a task whose restart is due (its backoff is at most 5 s) is not dead yet
            until = time.monotonic() + 6.0
            while (dead := LONG_LIVED - live_tasks(r, tasks_file)) and time.monotonic() < until:
                time.sleep(0.2)
            outcome = f"silent death ({', '.join(sorted(dead))})" if dead else "recovered"
        else:
            time.sleep(0.1)
    gap = pings.stop()
    text = r.daemon_log()[start_log:]
    row: dict[str, Any] = {
        "where": where,
        "mode": mode,
        "fired": fired(log),
        "outcome": outcome or "lines not back",
        "exit_code": code,
        "stalls_over_1s": stalls(text),
        "longest_ping_gap": gap,
        "task_restarts": text.count("restarting it in"),
    }
    if outcome == "exited":  # as systemd would: start it again, without the fault
        r.daemon = None
        del r.extra_env["DONGLED_FAULTS"]
        r.notifications.clear()
        r.start_daemon()
        r.wait_all_right(timeout=30)
        row["back_after_restart"] = True
    r.stop_daemon()
    r.extra_env.pop("DONGLED_FAULTS", None)
    return row


@pytest.mark.timeout(600)
@pytest.mark.parametrize("point", POINTS, ids=[point_id(p) for p in POINTS])
def test_fault_point(tmp_path: Path, point: tuple[str, str, bool]) -> None:
    task, where, awaitable = point
    rows = []
    hang = task == "recovery"
    with rig(tmp_path, STICKS) as r:
        if hang:  # a mute stick is hung at once, and the ladder climbs fast
            recovery: dict[str, object] = {"backoff": 0.4, "backoff_max": 0.4, "max_rounds": 3}
            r.write_settings(offline_after=3.0, boot_grace=0.5, tables={"recovery": recovery})
        else:
            r.write_settings(offline_after=3.0)
        free = r.take_ttys(len(r.model.interfaces) * STICKS)
        r.wait_all_right(timeout=15)
        for mode in MODES if awaitable else [m for m in MODES if m.startswith("raise")]:
            row = {"task": task, **one_run(r, tmp_path, where, mode, free, hang)}
            figure("fault-run", **row)
            rows.append(row)
            r.assert_never_foreign()
    bad = [
        row
        for row in rows
        if row["outcome"] not in ("recovered", "exited")
        or (row["outcome"] == "exited" and row["exit_code"] == 0)
        or row["stalls_over_1s"]
    ]
    assert not bad, bad
