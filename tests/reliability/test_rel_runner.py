"""Runs the rig-heavy reliability campaigns, each in a fresh pytest process.

umockdev's preload tracks open /dev fds of a process in a fixed 50-entry table and aborts
the process when it is full; the test process leaks entries over many rig tests (seen:
abort after ~45 soak cycles, or after the AMI + ports campaigns in one process). A fresh
process per campaign keeps every campaign, and the rest of the suite, clear of that limit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.marks import needs_umockdev

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
@pytest.mark.timeout(1200)
@needs_umockdev
@pytest.mark.parametrize(
    "module", ["test_rel_ami.py", "test_rel_ports.py", "test_rel_soak.py", "test_rel_faults.py"]
)
def test_campaign_in_a_fresh_process(module: str) -> None:
    env = {**os.environ, "DONGLED_REL_CHILD": "1"}
    out = subprocess.run(
        [
            "umockdev-wrapper",
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-s",
            f"tests/reliability/{module}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    for line in out.stdout.splitlines():
        if line.startswith("FIGURE") or "FIGURE {" in line:
            print(line[line.index("FIGURE") :])
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
