"""Run a piece of dongled code as an unprivileged user (uid/gid 65534).

As root, file modes decide nothing: a test of "permission denied" must drop to another user,
in a directory that user can reach (pytest's tmp_path sits under a 0700 directory).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def open_dir() -> Iterator[Path]:
    """A root-owned 0755 directory every user can reach, removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix="dongled-nobody-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def run_as_nobody(imports: str, body: str, *args: str) -> str:
    """Run Python `body` (its arguments in sys.argv[1:]) as uid/gid 65534 and return what it
    printed; `imports` run before the switch (the interpreter's own files may be root's
    only). `body` must exit 0 when it saw what the test expects. Skips unless root."""
    if os.getuid() != 0:
        pytest.skip("needs root to switch to an unprivileged user")
    code = f"import os, sys\n{imports}os.setgid(65534); os.setuid(65534)\n{body}"
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 0, out
    return out.stdout
