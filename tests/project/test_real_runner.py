"""Runs the real-driver tier (tests/real: the real Asterisk and channel drivers) in a fresh
pytest process, as the reliability campaigns are: its rigs' testbeds each leave a few fds
behind, which the suite's own process cannot afford (select() stops at fd 1024)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.marks import needs_umockdev
from tests.support.real_asterisk import require_build

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.real
@pytest.mark.timeout(2400)
@needs_umockdev
def test_real_tier_in_a_fresh_process() -> None:
    built = require_build()  # skips (or fails under CI) without the real Asterisk
    env = {**os.environ, "DONGLED_REAL_CHILD": "1", "DONGLED_REAL_ASTERISK": str(built)}
    out = subprocess.run(
        ["umockdev-wrapper", sys.executable, "-m", "pytest", "-q", "-s", "-p",
         "no:cacheprovider", "tests/real"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    for line in out.stdout.splitlines():
        if line.startswith(("[real]", "[contract]")) or " passed" in line or " failed" in line:
            print(line)
    assert out.returncode == 0, out.stdout[-8000:] + out.stderr[-3000:]
