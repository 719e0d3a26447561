"""Campaign 3: crash safety of the config write.

kill -9 of a process that loops `replace_atomically` (old and new versions in turn) at random
moments; after every kill the file must be exactly the old or the new version, never a mix,
a truncation or nothing. Then the failures a disk gives: full (a 64 KiB tmpfs, and
RLIMIT_FSIZE where mounting is not allowed), read-only (tmpfs remounted ro), EACCES (as an
unprivileged user). Trials: DONGLED_KILL_TRIALS (default 200).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mmap
import os
import random
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from dongled.conf.atomicfile import replace_atomically
from dongled.config.settings import AmiSettings, Settings
from dongled.core.errors import ConfError
from dongled.daemon import Daemon
from dongled.hotplug.sticks import Stick, StickState
from dongled.modem.identity import Identity
from tests.support.figures import figure
from tests.support.nobody import open_dir, run_as_nobody
from tests.support.rig import make_imei

ROOT = Path(__file__).resolve().parents[2]
TRIALS = int(os.environ.get("DONGLED_KILL_TRIALS", "200"))
OLD = b"".join(
    b"; old version line %06d ....................................\n" % i for i in range(3000)
)
NEW = b"".join(b"; NEW %06d\n" % i for i in range(9000))


def _temps(d: Path) -> list[Path]:
    return [p for p in d.iterdir() if p.name.endswith(".dongled-tmp")]


def _writer(path: str, counter: mmap.mmap) -> None:
    """Child: write new, old, new, ... for ever, counting completed replacements."""
    n = 0
    while True:
        replace_atomically(path, NEW if n % 2 == 0 else OLD)
        n += 1
        counter.seek(0)
        counter.write(n.to_bytes(8, "little"))


def test_kill_9_at_random_moments_never_leaves_a_partial_file(tmp_path: Path) -> None:
    conf = tmp_path / "dongle.conf"
    conf.write_bytes(OLD)
    conf.chmod(0o640)
    rng = random.Random(int(os.environ.get("DONGLED_KILL_SEED", "4")))
    outcomes = {"old": 0, "new": 0, "partial_or_lost": 0}
    temps_left = 0
    writes: list[int] = []
    for _ in range(TRIALS):
        counter = mmap.mmap(-1, 8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
            pid = os.fork()
        if pid == 0:  # the child never returns into pytest
            try:
                _writer(str(conf), counter)
            finally:
                os._exit(1)
        time.sleep(rng.uniform(0.0, 0.03))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        counter.seek(0)
        writes.append(int.from_bytes(counter.read(8), "little"))
        counter.close()
        data = conf.read_bytes()
        if data == OLD:
            outcomes["old"] += 1
        elif data == NEW:
            outcomes["new"] += 1
        else:
            outcomes["partial_or_lost"] += 1
        assert oct(conf.stat().st_mode & 0o777) == oct(0o640)
        backup = tmp_path / "dongle.conf.dongled-bak"
        if backup.exists():
            assert backup.read_bytes() in (OLD, NEW)
        left = _temps(tmp_path)
        temps_left += bool(left)
    # A kill between mkstemp and rename leaves a temp file; the next write removes it.
    replace_atomically(str(conf), OLD)
    assert _temps(tmp_path) == []
    writes.sort()
    figure(
        "kill-9-during-write",
        trials=TRIALS,
        old=outcomes["old"],
        new=outcomes["new"],
        partial_or_lost=outcomes["partial_or_lost"],
        kills_that_left_a_temp_file=temps_left,
        writes_completed_before_kill_min_median_max=(
            writes[0],
            writes[len(writes) // 2],
            writes[-1],
        ),
    )
    assert outcomes["partial_or_lost"] == 0
    assert outcomes["old"] > 0 and outcomes["new"] > 0
    assert temps_left > 0, "no kill landed inside a write: the campaign proves nothing"


def test_stale_temp_files_of_a_killed_writer_are_removed(tmp_path: Path) -> None:
    conf = tmp_path / "dongle.conf"
    conf.write_bytes(OLD)
    stale = [
        tmp_path / ".dongle.conf.k3j4h5.dongled-tmp",
        tmp_path / ".dongle.conf.dongled-bak.0011223344556677.dongled-tmp",
    ]
    for p in stale:
        p.write_bytes(OLD[:100])
    other = tmp_path / ".other.conf.abc.dongled-tmp"  # another file's: not ours to remove
    other.write_bytes(b"x")
    replace_atomically(str(conf), NEW)
    assert conf.read_bytes() == NEW
    assert not any(p.exists() for p in stale)
    assert other.exists()


# ---- disk full, read-only, EACCES -----------------------------------------------------------


@contextlib.contextmanager
def _tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here ({exc}); RLIMIT_FSIZE test covers disk full")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(d: Path, leave: int) -> None:
    """Fill the filesystem of d until at most `leave` bytes are free."""
    with open(d / "filler", "wb") as fh:
        while True:
            st = os.statvfs(d)
            free = st.f_bavail * st.f_frsize
            if free <= leave:
                return
            try:
                fh.write(b"\0" * min(4096, free - leave))
                fh.flush()
            except OSError:
                return


def _daemon_apply(conf: Path, tmp: Path) -> tuple[Daemon, list[str]]:
    """The daemon's pass with one stick on new ports: it wants to write `conf`."""
    settings = Settings(
        drivers={"chan_dongle": str(conf)},
        lock_dir=str(tmp / "lock"),
        state_dir=str(tmp / "run"),
        ami=AmiSettings(port=9, timeout=0.5),
    )
    d = Daemon(settings)
    stick = Stick(usb_device="/sys/usb1/1-1", usb_port="1-1", vid="12d1", pid="1001")
    stick.state = StickState.IDENTIFIED
    stick.identity = Identity(imei=make_imei(0))
    stick.data, stick.audio = "/dev/ttyUSB9", "/dev/ttyUSB8"
    stick.ports = {1: "/dev/ttyUSB8", 2: "/dev/ttyUSB9"}
    d.registry.sticks[stick.usb_device] = stick
    handler = _Collect()
    logging.getLogger("dongled").addHandler(handler)

    async def go() -> None:
        try:
            await d.lanes.apply()
        finally:
            await d.close()

    try:
        asyncio.run(go())
    finally:
        logging.getLogger("dongled").removeHandler(handler)
    return d, handler.messages


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "DONGLED_EVENT", "") == "conf-error":
            self.messages.append(record.getMessage())


CONF = (
    f"[general]\ninterval=15\n; {'padding ' * 400}\n[dongle0]\nimei={make_imei(0)}\n"
    "data=/dev/ttyUSB2\naudio=/dev/ttyUSB1\n"
).encode()


def _root_only() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (CI runs as root)")


def test_disk_full_on_a_small_tmpfs(tmp_path: Path) -> None:
    _root_only()
    with _tmpfs(tmp_path / "fs", "64k") as fs:
        conf = fs / "dongle.conf"
        conf.write_bytes(CONF)
        _fill(fs, leave=0)
        with pytest.raises(ConfError, match="not replaced") as exc:
            replace_atomically(str(conf), CONF + b"; more\n")
        assert conf.read_bytes() == CONF and _temps(fs) == []
        _, messages = _daemon_apply(conf, tmp_path)
        assert conf.read_bytes() == CONF and _temps(fs) == []
        assert messages and "No space left" in messages[-1], messages
        figure(
            "disk-full",
            how="tmpfs size=64k, filled",
            file="old version, intact",
            direct=str(exc.value),
            daemon=messages[-1],
        )


def test_read_only_filesystem(tmp_path: Path) -> None:
    _root_only()
    with _tmpfs(tmp_path / "fs", "64k") as fs:
        conf = fs / "dongle.conf"
        conf.write_bytes(CONF)
        subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
        with pytest.raises(ConfError, match="Read-only") as exc:
            replace_atomically(str(conf), CONF + b"; more\n")
        assert conf.read_bytes() == CONF
        _, messages = _daemon_apply(conf, tmp_path)
        assert conf.read_bytes() == CONF
        assert messages and "Read-only" in messages[-1], messages
        figure(
            "read-only",
            how="tmpfs remounted ro",
            file="old version, intact",
            direct=str(exc.value),
            daemon=messages[-1],
        )


def test_file_size_limit_mid_write(tmp_path: Path) -> None:
    """Disk full without mounting anything: the write of the temp file fails half-way."""
    conf = tmp_path / "dongle.conf"
    conf.write_bytes(CONF)
    code = (
        "import resource, signal, sys\n"
        "from dongled.conf.atomicfile import replace_atomically\n"
        "from dongled.core.errors import ConfError\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
        "try:\n    replace_atomically(sys.argv[1], b'x' * 100000)\n"
        "except ConfError as exc:\n    print(exc); sys.exit(0)\n"
        "sys.exit(3)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(conf)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 0, out
    assert conf.read_bytes() == CONF and _temps(tmp_path) == []
    figure(
        "file-size-limit",
        how="RLIMIT_FSIZE=4096, 100 kB write",
        file="old version, intact",
        direct=out.stdout.strip(),
    )


def test_eacces_as_an_unprivileged_user() -> None:
    _root_only()
    with open_dir() as tmp_path:
        conf = tmp_path / "dongle.conf"
        conf.write_bytes(CONF)
        conf.chmod(0o666)  # even a writable file: the directory is what decides
        said = run_as_nobody(
            "from dongled.conf.atomicfile import replace_atomically\n"
            "from dongled.core.errors import ConfError\n",
            "try:\n    replace_atomically(sys.argv[1], b'new')\n"
            "except ConfError as exc:\n    print(exc); sys.exit(0)\n"
            "sys.exit(3)\n",
            str(conf),
        )
        assert "Permission denied" in said
        assert conf.read_bytes() == CONF and _temps(tmp_path) == []
    figure(
        "eacces",
        how="uid 65534, root-owned 0755 directory",
        file="old version, intact",
        direct=said.strip(),
    )


def test_fsync_is_really_called_before_the_rename(tmp_path: Path) -> None:
    """kill -9 cannot show a missing fsync (the page cache survives); check the order."""
    calls: list[str] = []
    conf = tmp_path / "dongle.conf"
    conf.write_bytes(CONF)
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append("fsync-dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync-file")
        real_fsync(fd)

    def replace(a: str, b: str) -> None:
        calls.append("rename" if b == str(conf) else "rename-backup")
        real_replace(a, b)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "fsync", fsync)
        mp.setattr(os, "replace", replace)
        replace_atomically(str(conf), b"new\n")
    assert calls.index("fsync-file") < calls.index("rename") < calls.index("fsync-dir"), calls
