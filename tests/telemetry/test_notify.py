"""READY=1, STATUS= and WATCHDOG=1 of `dongled run`, received on a real NOTIFY_SOCKET (an
AF_UNIX datagram socket, as systemd's) with the daemon as a subprocess."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.support.marks import needs_umockdev
from tests.support.rig import rig

pytestmark = [
    pytest.mark.e2e,
    needs_umockdev,
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


def test_a_receiver_that_never_reads_cannot_stall_the_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libsystemd's sd_notify blocks once the receiver's queue is full; ours drops instead."""
    import socket
    import time

    from dongled.telemetry import notify

    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        start = time.monotonic()
        for i in range(5000):  # far more than any socket queue holds
            notify.status(f"{i} sticks")
            notify.watchdog()
        assert time.monotonic() - start < 5.0
        receiver.settimeout(0.5)
        first = receiver.recv(4096)
        assert first.startswith(b"STATUS=0 sticks") or first.startswith(b"WATCHDOG=1")


def test_status_is_sent_only_when_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from dongled.telemetry import notify

    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(path))
        receiver.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        for _ in range(3):
            notify.status("same line")
        notify.status("another line")
        got = []
        while True:
            try:
                got.append(receiver.recv(4096))
            except BlockingIOError:
                break
        assert got == [b"STATUS=same line", b"STATUS=another line"]


def test_bad_settings_fail_run_once_with_exit_2_and_the_message_for_systemctl_status(
    tmp_path: Path,
) -> None:
    """The README's old step 2 (a second `[ami]` appended to the template) made the unit
    restart 8 times. Exit 2 is what `RestartPreventExitStatus=2` stops on; the message goes to
    stderr (the journal) and to STATUS= (both shown by `systemctl status`). A real
    `dongled run` process and a real NOTIFY_SOCKET."""
    import socket
    import subprocess
    import sys

    conf = tmp_path / "dongled.toml"
    template = (Path(__file__).resolve().parents[2] / "etc" / "dongled.toml").read_text()
    conf.write_text(template + '\n[ami]\nusername = "dongled"\n')
    line = len(template.splitlines()) + 2
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(path))
        receiver.settimeout(5)
        proc = subprocess.run(
            [sys.executable, "-m", "dongled", "--config", str(conf), "run"],
            env={**os.environ, "NOTIFY_SOCKET": str(path)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        said = receiver.recv(4096).decode()
    assert proc.returncode == 2, proc.stderr
    assert f"bad settings: {conf}:{line}: not valid TOML: Cannot declare ('ami',)" in proc.stderr
    assert said.startswith("STATUS=bad settings: ") and "Cannot declare" in said
