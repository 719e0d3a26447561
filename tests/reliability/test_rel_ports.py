"""Campaign 5: port ownership, against `dongled run` as a real subprocess.

Besides the rig's own sticks (held by the test Asterisk), four more sticks are plugged in
whose AT port another program owns in each way there is: a live process's UUCP lock, a
lock left by a dead pid (stale: dongled may use the port), TIOCEXCL, flock(). The modem
simulator records every byte each port receives; the bytes on ports another live process
owns must be 0. dongled retries a busy stick with backoff, so the check waits past retries.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from dongled.modem.portlock import lock_path
from tests.support.figures import figure
from tests.support.marks import needs_umockdev, rel_child_only
from tests.support.modemsim import E1550_USB, StickSim
from tests.support.rig import make_imei, rig

pytestmark = [
    pytest.mark.e2e,
    rel_child_only,
    needs_umockdev,
]


def test_ports_owned_by_others_never_get_a_byte(tmp_path: Path) -> None:
    with rig(tmp_path, 2) as r:
        names = ["live LCK holder", "stale LCK (dead pid)", "TIOCEXCL", "flock"]
        extra = []
        for k in range(4):
            sim = StickSim(make_imei(10 + k), f"2500199999{k:05d}")
            extra.append(r.tb.add_stick(E1550_USB, sim, r.take_ttys(3), usb_port=str(10 + k)))
        data = [s.data_port.devnode for s in extra]
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        Path(lock_path(str(r.lock_dir), data[0])).write_text(f"{sleeper.pid:10d}\n")
        Path(lock_path(str(r.lock_dir), data[1])).write_text(f"{dead.pid} 7")
        excl = os.open(data[2], os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        fcntl.ioctl(excl, termios.TIOCEXCL)
        flocker = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import fcntl, os, sys, time\n"
                f"fd = os.open({data[3]!r}, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)\n"
                "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(120)",
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=r.tb.env(),
        )
        try:
            assert flocker.stdout is not None and flocker.stdout.readline().strip() == "locked"
            r.start_daemon()
            r.wait_all_right()
            time.sleep(7.0)  # past two of dongled's probe retries (2 s, 4 s)
            owned = {names[i]: extra[i] for i in (0, 2, 3)}
            result = {}
            for name, stick in owned.items():
                got = stick.data_port.received
                assert got == b"", f"{name}: dongled wrote {got!r}"
                result[name] = len(got)
            stale = extra[1].data_port.received
            assert b"AT+CGSN" in stale, "a dead pid's lock must not block the port"
            status = r.status()
            sticks = status.get("sticks", [])
            assert isinstance(sticks, list)
            seen = {s.get("imei") for s in sticks}
            assert make_imei(11) in seen  # the stale-lock stick was identified
            for k in (0, 2, 3):
                assert make_imei(10 + k) not in seen
            r.assert_daemon_alive()
            figure(
                "port-ownership",
                bytes_to_owned_ports=result,
                stale_lock_port_probed=True,
                waited_s=7.0,
            )
        finally:
            os.close(excl)
            for p in (sleeper, flocker):
                p.kill()
                p.communicate()
