"""UUCP locks against real processes: a live holder is respected, a dead one's lock is stale."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dongled.core.errors import PortBusyError
from dongled.modem.portlock import holder, lock_path, uucp_lock


@pytest.fixture
def port(tmp_path: Path) -> str:
    target = tmp_path / "ttyUSB7"
    target.touch()
    return str(target)


def test_chan_dongle_lock_of_live_process_is_respected(tmp_path: Path, port: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        Path(lock_path(str(tmp_path), port)).write_text(f"{proc.pid} 7")  # chan_dongle's format
        assert holder(str(tmp_path), port) == proc.pid
        with pytest.raises(PortBusyError, match=str(proc.pid)), uucp_lock(str(tmp_path), port):
            pass
    finally:
        proc.kill()
        proc.wait()


def test_stale_lock_of_dead_pid_is_taken_over(tmp_path: Path, port: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    lock = Path(lock_path(str(tmp_path), port))
    lock.write_text(f"{proc.pid:10d}\n")
    assert holder(str(tmp_path), port) is None
    with uucp_lock(str(tmp_path), port):
        assert lock.read_text() == f"{os.getpid():10d}\n"
    assert not lock.exists()  # released promptly


def test_lock_named_after_real_tty_for_symlinks(tmp_path: Path, port: str) -> None:
    link = tmp_path / "by-path-link"
    link.symlink_to(port)
    assert lock_path("/var/lock", str(link)) == "/var/lock/LCK..ttyUSB7"


def test_garbage_lock_is_treated_as_held(tmp_path: Path, port: str) -> None:
    Path(lock_path(str(tmp_path), port)).write_bytes(b"not a pid")
    with pytest.raises(PortBusyError), uucp_lock(str(tmp_path), port):
        pass
