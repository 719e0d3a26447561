"""Campaign 7: security review, as tests. Threat model: docs/reliability.md."""

from __future__ import annotations

import asyncio
import os
import re
import stat
import time
import traceback
from pathlib import Path

import pytest

from dongled.asterisk.ami import AmiClient
from dongled.config.settings import AmiSettings, Settings
from dongled.core.errors import AmiError, PortBusyError
from dongled.hotplug.udev import tty_info_from
from dongled.modem.portlock import lock_path, uucp_lock
from tests.support.fake_asterisk import FakeAsterisk
from tests.support.figures import figure
from tests.support.marks import needs_umockdev
from tests.support.rig import rig

PKG = Path(__file__).resolve().parents[2] / "dongled"
SECRET = "Zq9-distinctive-AMI-secret-7741"

SHELL = re.compile(
    r"\bos\.system\b|\bos\.popen\b|\bos\.exec\w*\b|\bos\.spawn\w*\b"
    r"|shell\s*=\s*True|create_subprocess_shell|\bpty\.spawn\b|\bcommands\.\w+\("
)
SUBPROCESS = re.compile(r"\bsubprocess\b|create_subprocess_\w+")
# The only program dongled ever runs: uhubctl (optional power-cycle step), as an argument
# list of a fixed binary and validated sysfs names, never through a shell.
SUBPROCESS_ALLOWED = {"usbreset.py"}


def test_no_shell_and_no_subprocess_anywhere_in_dongled() -> None:
    hits = []
    files = sorted(PKG.rglob("*.py"))
    for path in files:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if SHELL.search(code) or (
                SUBPROCESS.search(code) and path.name not in SUBPROCESS_ALLOWED
            ):
                hits.append(f"{path.name}:{n}: {line.strip()}")
    assert hits == []
    runs = [
        line.strip()
        for path in files
        if path.name in SUBPROCESS_ALLOWED
        for line in path.read_text().splitlines()
        if "subprocess.run(" in line
    ]
    assert all(
        line.endswith("subprocess.run(  # noqa: S603 - fixed binary, validated arguments, no shell")
        for line in runs
    ), runs
    figure("security-no-shell", files=len(files), hits=0)


def test_secret_not_in_reprs_or_exceptions() -> None:
    s = Settings(ami=AmiSettings(secret=SECRET))
    assert SECRET not in repr(s) and SECRET not in str(s)

    async def refused() -> AmiError:
        fake = FakeAsterisk("/nonexistent/dongle.conf", lock_dir="/nonexistent", secret="other")
        fake.start()
        try:
            client = AmiClient(AmiSettings(port=fake.port, secret=SECRET, timeout=3.0))
            try:
                await client.connect()
            except AmiError as exc:
                return exc
            finally:
                await client.close()
            raise AssertionError("a wrong secret was accepted")
        finally:
            fake.stop()

    exc = asyncio.run(refused())
    text = "".join(traceback.format_exception(exc)) + repr(exc) + str(exc.args)
    assert SECRET not in text
    assert "refused the login" in str(exc)


@pytest.mark.parametrize(
    "devnode",
    [
        "/dev/ttyUSB0\n[dongle0]",
        "/dev/ttyUSB0\n",
        "/dev/ttyUSB0;x",
        "/dev/tty USB0",
        "/dev/../etc/passwd",
        "/dev/..",
        "/dev/.",
        "/dev/ttyUSB0\r",
        "/dev/ttyUSB0#include",
        "ttyUSB0",
        "/dev/",
        "/dev/" + "a" * 65,
        "/dev/ttyUSB0=",
        "/dev/tty\x00USB0",
        "/dev/ttyUSB\u00e90",
    ],
)
def test_unsafe_device_names_from_udev_are_rejected(devnode: str) -> None:
    info = tty_info_from(
        devnode,
        "/sys/devices/x/tty/ttyUSB0",
        {"bInterfaceNumber": "02"},
        "/sys/devices/pci0000:00/usb1/1-1",
        {"idVendor": "12d1", "idProduct": "1001"},
    )
    assert info is None


def test_safe_device_name_is_accepted() -> None:
    info = tty_info_from(
        "/dev/ttyUSB12",
        "/sys/devices/x/tty/ttyUSB12",
        {"bInterfaceNumber": "02"},
        "/sys/devices/pci0000:00/usb1/1-1",
        {"idVendor": "12d1", "idProduct": "1001"},
    )
    assert info is not None and info.devnode == "/dev/ttyUSB12"


def test_symlink_planted_as_lock_file_is_never_written_through(tmp_path: Path) -> None:
    lock_dir = tmp_path / "lock"
    lock_dir.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    port = "/dev/ttyUSB3"
    link = Path(lock_path(str(lock_dir), port))
    link.symlink_to(victim)  # content "precious": not a pid, so the lock counts as held
    with pytest.raises(PortBusyError), uucp_lock(str(lock_dir), port):
        pass
    assert victim.read_text() == "precious\n"
    link.unlink()
    absent = tmp_path / "created-through-link"
    link.symlink_to(absent)  # dangling: must not create the target
    with uucp_lock(str(lock_dir), port):
        assert not absent.exists()
        assert not link.is_symlink() and link.read_bytes().strip() == str(os.getpid()).encode()
    assert not absent.exists() and not link.exists()


@pytest.mark.e2e
@needs_umockdev
def test_daemon_keeps_secret_modes_and_owner(tmp_path: Path) -> None:
    with rig(tmp_path, 2) as r:
        r.settings.write_text(r.settings.read_text().replace('"s3cret"', f'"{SECRET}"'))
        r.asterisk.secret = SECRET
        os.chown(r.conf, 1234, 5678)
        r.conf.chmod(0o640)
        r.wait_all_right(timeout=10)
        r.start_daemon()
        r.unplug(0, 1)
        r.replug(0)
        r.replug(1)
        r.wait_all_right()
        st = r.conf.stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o640)
        bak = Path(str(r.conf) + ".dongled-bak")
        bst = bak.stat()
        assert (bst.st_uid, bst.st_gid, stat.S_IMODE(bst.st_mode)) == (1234, 5678, 0o640)
        # Now a wrong secret: Asterisk refuses, dongled says so, never with the secret.
        r.asterisk.secret = "the-right-one-is-different"
        r.asterisk.drop_sessions()
        deadline = time.monotonic() + 15
        while "refused the login" not in r.daemon_log() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "refused the login" in r.daemon_log()
        r.assert_daemon_alive()
        status_path = r.state_dir / "status.json"
        mode = stat.S_IMODE(status_path.stat().st_mode)
        assert not mode & 0o022, oct(mode)
        dmode = stat.S_IMODE(r.state_dir.stat().st_mode)
        assert not dmode & 0o002, oct(dmode)
        places = {"daemon log": r.daemon_log().encode(), "dongle.conf": r.conf.read_bytes()}
        for p in r.state_dir.rglob("*"):
            if p.is_file():
                places[str(p.relative_to(tmp_path))] = p.read_bytes()
        for where, data in places.items():
            assert SECRET.encode() not in data, f"the AMI secret is in {where}"
        figure(
            "security-daemon",
            secret_found_in=[],
            places_searched=sorted(places),
            status_json_mode=oct(mode),
            state_dir_mode=oct(dmode),
            conf_owner_mode_kept=f"1234:5678 {oct(0o640)}",
        )
