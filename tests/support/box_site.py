"""What the systemd-box tests (tests/project/test_systemd_unit.py, test_deb_package.py) and
bench/admin_day.py share: the test-only drop-in that lets the unit reach the testbed, apt's
environment, and the test Asterisk run inside the box's PID namespace."""

from __future__ import annotations

import os
import subprocess
import sys

from .box_asterisk import show_devices
from .devguard import RUNNER_ENV, SITE_DIR
from .rig import ROOT
from .systemd_box import TESTBED_MOUNT, SystemdBox, SystemdBoxError
from .testbed import Testbed

APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
# Test-only: the shipped unit knows nothing of umockdev. The preload and its testbed reach the
# daemon through the environment; the preload writes its uevent socket into the testbed
# directory; the testbed's ttys are pseudo-terminals, which DevicePolicy=closed would refuse.
DROPIN_TESTBED = f"""\
[Service]
Environment=LD_PRELOAD=libumockdev-preload.so.0 UMOCKDEV_DIR={TESTBED_MOUNT}
ReadWritePaths={TESTBED_MOUNT}
DeviceAllow=char-pts rw
"""


class BoxAsterisk:
    """The test Asterisk in the box's PID namespace (tests/support/box_asterisk.py): its lock
    pids and the unit's mean the same processes to both."""

    def __init__(self, box: SystemdBox, tb: Testbed) -> None:
        env = {
            **tb.env(),
            "LD_PRELOAD": "libumockdev-preload.so.0",
            "PYTHONPATH": f"{SITE_DIR}:{ROOT}",
            RUNNER_ENV: str(os.getpid()),
        }
        self.proc = subprocess.Popen(
            [
                "nsenter", "-t", str(box.pid), "-p", "--", sys.executable, "-m",
                "tests.support.box_asterisk", str(box.path("/etc/asterisk/dongle.conf")),
                str(box.path("/run/lock")),
            ],
            env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.close()
            raise SystemdBoxError(f"the test Asterisk did not start: {line!r}")
        self.port = int(line)

    def devices(self) -> dict[str, dict[str, str]]:
        return show_devices(self.port)

    def close(self) -> None:
        """Its standard input closes: it stops its Asterisk and exits."""
        try:
            self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
