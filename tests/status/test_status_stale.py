"""Status that cannot lie: a status file the daemon cannot write is said in its log, and
`dongled status` does not show an old snapshot as current (nor crash on a malformed one)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dongled import cli
from dongled.config.settings import Settings
from dongled.daemon import Daemon
from dongled.status.document import PUBLISH_EVERY
from tests.support.marks import needs_umockdev
from tests.support.rig import rig, wait_until


def _settings(tmp_path: Path, doc: dict[str, Any]) -> Path:
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "status.json").write_text(json.dumps(doc))
    settings = tmp_path / "dongled.toml"
    settings.write_text(f'state_dir = "{run}"\n')
    return settings


def _doc(**extra: Any) -> dict[str, Any]:
    """A snapshot saying all is well, of a live daemon (this process)."""
    return {
        "schema": 1, "running": True, "pid": os.getpid(), "ami_connected": True,
        "conf_error": None, "summary": "0 sticks, 0 on their devices", "sections": [],
        "sticks": [], "switching": [], "recovery": {}, "ok": True, **extra,
    }  # fmt: skip


def test_a_failed_status_write_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "run"
    blocker.write_text("a file where the state directory should be")
    d = Daemon(
        Settings(drivers={"chan_dongle": str(tmp_path / "dongle.conf")}, state_dir=str(blocker))
    )
    with caplog.at_level(logging.INFO, logger="dongled"):
        d.status.file.write(d.status.snapshot())
        d.status.file.write(d.status.snapshot())
    said = [r.getMessage() for r in caplog.records if "status file" in r.getMessage()]
    assert len(said) == 1 and f"cannot write the status file {blocker}/status.json" in said[0]
    assert caplog.records[0].levelno == logging.ERROR


def test_an_old_snapshot_is_not_shown_as_current(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The daemon's pid lives, but its snapshot is 100 s old: it hangs, or its writes fail.
    Before, `dongled status` showed the old table and exited 0."""
    settings = _settings(tmp_path, _doc(published_at=time.time() - 100, publish_every=10.0))
    assert cli.main(["--config", str(settings), "status"]) == 1
    err = capsys.readouterr().err
    assert "is not current: it was written 100 s ago" in err and "every 10 s" in err
    assert cli.main(["--config", str(settings), "status", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["stale"] is True and doc["running"] is True


def test_a_current_snapshot_is_shown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = _settings(tmp_path, _doc(published_at=time.time() - 5, publish_every=10.0))
    assert cli.main(["--config", str(settings), "status"]) == 0
    assert "0 sticks, 0 on their devices" in capsys.readouterr().out


@pytest.mark.parametrize("pid", ["12x", None, [1], 1.5, True])
def test_a_malformed_pid_is_no_running_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pid: object
) -> None:
    """`int(snap["pid"])` crashed `dongled status` with a traceback on a malformed file."""
    settings = _settings(tmp_path, _doc(pid=pid, published_at=time.time(), publish_every=10.0))
    assert cli.main(["--config", str(settings), "status"]) == 3
    said = capsys.readouterr().err
    assert "not a status document" in said and "Traceback" not in said


@pytest.mark.e2e
@needs_umockdev
def test_the_daemon_keeps_its_snapshot_current(tmp_path: Path) -> None:
    """With nothing happening, the daemon still rewrites its snapshot's time."""
    with rig(tmp_path, 1) as r:
        r.start_daemon()
        r.wait_all_right()
        wait_until(lambda: "published_at" in r.status(), 5, "a snapshot")
        first = r.status()["published_at"]
        assert isinstance(first, float)
        every = PUBLISH_EVERY
        wait_until(lambda: r.status()["published_at"] != first, every, "a rewrite")
        assert r.cli("status").returncode == 0


def test_dongled_status_imports_none_of_the_daemons_libraries(tmp_path: Path) -> None:
    """`dongled status` reads a file: it must not load pyudev, panoramisk or asyncio (before,
    the stick types it reads pulled in pyudev and asyncio)."""
    settings = _settings(tmp_path, _doc(published_at=time.time(), publish_every=10.0))
    script = (
        "import sys\nfrom dongled import cli\n"
        f"code = cli.main(['--config', {str(settings)!r}, 'status'])\n"
        "heavy = {'pyudev', 'panoramisk', 'asyncio', 'serial', 'prometheus_client'}\n"
        "print(code, sorted(heavy & set(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=30
    )
    assert done.stdout.splitlines()[-1] == "0 []"
