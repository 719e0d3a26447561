"""The device guard: no test process opens a device node outside its own testbed."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import devguard
from tests.support.fake_asterisk import FakeAsterisk
from tests.support.marks import needs_umockdev
from tests.support.modemsim import E1550_USB, StickSim
from tests.support.rig import ROOT, make_imei
from tests.support.testbed import Testbed


def test_a_device_path_outside_any_testbed_is_refused() -> None:
    with devguard.expecting_escape(), pytest.raises(devguard.DeviceEscapeError):
        open(devguard.selftest_path(), "rb")  # noqa: SIM115
    # /dev/tty exists on every machine, yet to the fake chan_dongle it is absent
    with pytest.raises(FileNotFoundError) as err:
        devguard.check_device_path("/dev/tty")
    assert err.value.errno == errno.ENOENT
    assert devguard.is_allowed("/dev/null/dongled-stick-absent-data")
    assert devguard.is_allowed("/dev/urandom")
    assert not devguard.is_allowed("//dev/ttyUSB0")
    assert not devguard.is_allowed("/dev/../dev/serial/by-id/usb-HUAWEI-if02")


def test_a_pty_of_another_program_is_refused_one_of_the_test_s_own_is_not() -> None:
    # another program's pty (as a developer's terminal would be): its master is not ours
    other = subprocess.Popen(
        [sys.executable, "-c", "import os,sys,time; m, s = os.openpty(); "
         "print(os.ttyname(s), flush=True); os.close(s); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert other.stdout is not None
        foreign = other.stdout.readline().strip()
        assert foreign.startswith("/dev/pts/")
        with devguard.expecting_escape(), pytest.raises(devguard.DeviceEscapeError):
            os.open(foreign, os.O_RDWR | os.O_NOCTTY)
    finally:
        other.communicate("")
    master, slave = os.openpty()  # the test's own pty: the runner holds its master
    try:
        os.close(os.open(os.ttyname(slave), os.O_RDWR | os.O_NOCTTY))
    finally:
        os.close(master)
        os.close(slave)


def test_a_daemon_subprocess_refuses_too(tmp_path: Path) -> None:
    script = tmp_path / "opener.py"
    script.write_text(f"open({devguard.selftest_path()!r}, 'rb')\n")
    proc = subprocess.run(
        [sys.executable, str(script)],
        env=dict(os.environ, PYTHONPATH=f"{devguard.SITE_DIR}:{ROOT}"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "DeviceEscapeError" in proc.stderr


@needs_umockdev
def test_testbed_nodes_open_and_a_missing_one_looks_absent(tmp_path: Path) -> None:
    with Testbed() as tb:
        stick = tb.add_stick(
            E1550_USB, StickSim(make_imei(1), "250010000000001"), [0, 1, 2], usb_port="1"
        )
        data = stick.data_port.devnode
        fd = os.open(data, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        os.close(fd)
        target = os.readlink(os.path.join(tb.root_dir, "dev", "ttyUSB2"))
        assert devguard.is_allowed(target)  # the pty behind a testbed node
        # ttyUSB9 is no node of this testbed: even where the machine has one, a test's
        # chan_dongle finds nothing there
        with pytest.raises(FileNotFoundError):
            devguard.check_device_path("/dev/ttyUSB9")
        with FakeAsterisk(str(_conf(tmp_path, data)), lock_dir=str(tmp_path)) as ast:
            entry = ast.devices_snapshot()["dongle0"]
            assert entry["State"] != "Free"  # ttyUSB9 never opened
            assert any("ttyUSB9" in m for m in ast.log_messages), ast.log_messages


def _conf(tmp_path: Path, data: str) -> Path:
    conf = tmp_path / "dongle.conf"
    conf.write_text(f"[dongle0]\ndata={data}\naudio=/dev/ttyUSB9\n")
    return conf
