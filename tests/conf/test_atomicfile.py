"""Atomic replacement on real files: success keeps owner/mode/backup, failure keeps the old file."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from dongled.conf.atomicfile import replace_atomically
from dongled.core.errors import ConfChangedError, ConfError
from tests.support.nobody import open_dir, run_as_nobody

OLD = b"[dongle0]\ndata=/dev/ttyUSB2\naudio=/dev/ttyUSB1\n"
NEW = b"[dongle0]\ndata=/dev/ttyUSB6\naudio=/dev/ttyUSB5\n"


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    path = tmp_path / "dongle.conf"
    path.write_bytes(OLD)
    path.chmod(0o640)
    return path


def _listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_replaces_content_and_keeps_backup(conf: Path) -> None:
    replace_atomically(str(conf), NEW)
    assert conf.read_bytes() == NEW
    assert Path(f"{conf}.dongled-bak").read_bytes() == OLD
    assert _listing(conf.parent) == ["dongle.conf", "dongle.conf.dongled-bak"]
    replace_atomically(str(conf), b"third\n")
    assert Path(f"{conf}.dongled-bak").read_bytes() == NEW


def test_keeps_mode_and_owner(conf: Path) -> None:
    if os.geteuid() == 0:
        os.chown(conf, 1234, 5678)
    before = conf.stat()
    replace_atomically(str(conf), NEW)
    after = conf.stat()
    assert stat.S_IMODE(after.st_mode) == 0o640
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)
    assert after.st_ino != before.st_ino  # a new inode was renamed in, not rewritten in place


def test_no_backup_when_disabled(conf: Path) -> None:
    replace_atomically(str(conf), NEW, backup_suffix=None)
    assert conf.read_bytes() == NEW
    assert _listing(conf.parent) == ["dongle.conf"]


def test_relative_path_in_current_directory(conf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(conf.parent)
    replace_atomically("dongle.conf", NEW, backup_suffix=".old")
    assert conf.read_bytes() == NEW
    assert (conf.parent / "dongle.conf.old").read_bytes() == OLD


def test_expected_content_is_replaced(conf: Path) -> None:
    replace_atomically(str(conf), NEW, expected=OLD)
    assert conf.read_bytes() == NEW


@pytest.mark.parametrize(
    "theirs",
    [OLD + b"; an admin's note\n", OLD[:-1], b"", OLD.replace(b"USB2", b"USB3")],
    ids=["appended", "shortened", "emptied", "same length"],
)
def test_a_file_edited_since_it_was_read_is_not_overwritten(conf: Path, theirs: bytes) -> None:
    conf.write_bytes(theirs)  # someone saved it after dongled read OLD
    with pytest.raises(ConfChangedError, match="changed on disk while dongled was editing it"):
        replace_atomically(str(conf), NEW, expected=OLD)
    assert conf.read_bytes() == theirs
    assert _listing(conf.parent) == ["dongle.conf"]  # no temp file, no backup of theirs


def test_refuses_symlink(conf: Path) -> None:
    link = conf.parent / "link.conf"
    link.symlink_to(conf)
    with pytest.raises(ConfError, match="symlink") as exc:
        replace_atomically(str(link), NEW)
    assert exc.value.path == str(link)
    assert conf.read_bytes() == OLD
    assert link.is_symlink()


def test_refuses_directory_and_fifo(tmp_path: Path) -> None:
    (tmp_path / "dir.conf").mkdir()
    os.mkfifo(tmp_path / "fifo.conf")
    for name in ("dir.conf", "fifo.conf"):
        with pytest.raises(ConfError, match="not a regular file"):
            replace_atomically(str(tmp_path / name), NEW)
    assert _listing(tmp_path) == ["dir.conf", "fifo.conf"]


@pytest.mark.parametrize("where", ["missing-dir/dongle.conf", "dongle.conf/child.conf"])
def test_unreachable_path_is_an_error(conf: Path, where: str) -> None:
    with pytest.raises(ConfError, match="checking the file failed"):
        replace_atomically(str(conf.parent / where), NEW)
    assert conf.read_bytes() == OLD
    assert _listing(conf.parent) == ["dongle.conf"]


def test_backup_failure_leaves_original_intact(conf: Path) -> None:
    # The backup name is taken by a non-empty directory: rename(2) fails with a real errno.
    blocker = Path(f"{conf}.dongled-bak")
    blocker.mkdir()
    (blocker / "keep").write_bytes(b"x")
    with pytest.raises(ConfError, match=r"keeping a backup failed .*the old file is intact"):
        replace_atomically(str(conf), NEW)
    assert conf.read_bytes() == OLD
    assert stat.S_IMODE(conf.stat().st_mode) == 0o640
    assert _listing(conf.parent) == ["dongle.conf", "dongle.conf.dongled-bak"]


_WRITE_UNDER_LIMIT = """
import resource, signal, sys
from dongled.conf.atomicfile import replace_atomically
from dongled.core.errors import ConfChangedError, ConfError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (64, resource.RLIM_INFINITY))
try:
    replace_atomically(sys.argv[1], b"; padding\\n" * 64)
except ConfError as exc:
    sys.stderr.write(str(exc))
    sys.exit(3)
"""


def test_write_failure_leaves_original_intact(conf: Path) -> None:
    # A real EFBIG on write (the disk-full path) without mocks: RLIMIT_FSIZE, set in a child
    # process so that pytest's own output (often a file in CI) is not limited too.
    proc = subprocess.run(
        [sys.executable, "-c", _WRITE_UNDER_LIMIT, str(conf)],
        capture_output=True,
        text=True,
        check=False,
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    assert proc.returncode == 3, proc.stderr
    assert re.search(r"creating a temporary file failed .*the old file is intact", proc.stderr)
    assert conf.read_bytes() == OLD
    assert _listing(conf.parent) == ["dongle.conf"]  # the temp file was removed


def test_immutable_directory_leaves_original_intact(conf: Path) -> None:
    # Root ignores mode bits, but not the immutable attribute (where the fs supports it).
    made = subprocess.run(["chattr", "+i", str(conf.parent)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"chattr +i not possible here: {made.stderr.decode().strip()}")
    try:
        with pytest.raises(ConfError, match="the old file is intact"):
            replace_atomically(str(conf), NEW)
    finally:
        subprocess.run(["chattr", "-i", str(conf.parent)], check=True)
    assert conf.read_bytes() == OLD
    assert _listing(conf.parent) == ["dongle.conf"]


def test_backup_that_already_is_the_current_file_leaves_no_temp(tmp_path: Path) -> None:
    # A writer killed after making its backup link and before its rename leaves
    # dongle.conf.dongled-bak as a hard link of dongle.conf itself.
    conf = tmp_path / "dongle.conf"
    conf.write_bytes(b"[general]\n")
    os.link(conf, tmp_path / "dongle.conf.dongled-bak")
    replace_atomically(str(conf), b"[general]\ninterval=15\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dongle.conf", "dongle.conf.dongled-bak"]
    assert (tmp_path / "dongle.conf.dongled-bak").read_bytes() == b"[general]\n"


_REPLACE_AS_NOBODY = """
from dongled.core.errors import ConfError
try:
    replace_atomically(sys.argv[1], b"[dongle0]\\\\n")
except ConfError as exc:
    print(exc)
    sys.exit(0)
sys.exit(1)
"""


def test_an_unwritable_directory_is_named_with_owner_mode_and_user() -> None:
    with open_dir() as d:  # root:root 0755, dongled runs as nobody
        conf = d / "dongle.conf"
        conf.write_bytes(OLD)
        os.chown(conf, 65534, 65534)
        said = run_as_nobody(
            "from dongled.conf.atomicfile import replace_atomically\n",
            _REPLACE_AS_NOBODY,
            str(conf),
        )
        assert conf.read_bytes() == OLD
    assert f"dongled runs as nobody (uid 65534) and cannot create files in {d}" in said
    assert "(owner root:root, mode 0755)" in said
    assert f"chown nobody {d}" in said and "the old file is intact" in said
    assert "temporary" not in said


def test_a_file_owned_by_another_user_is_named_with_its_owner() -> None:
    with open_dir() as d:
        os.chown(d, 65534, 65534)  # nobody may create files here
        conf = d / "dongle.conf"
        conf.write_bytes(OLD)  # root:root 0644 (say, an admin's `cp` as root)
        conf.chmod(0o644)
        said = run_as_nobody(
            "from dongled.conf.atomicfile import replace_atomically\n",
            _REPLACE_AS_NOBODY,
            str(conf),
        )
        assert conf.read_bytes() == OLD
        assert sorted(p.name for p in d.iterdir()) == ["dongle.conf"]
    assert f"{conf} is owned by root:root (mode 0644) but dongled runs as nobody" in said
    assert f"chown nobody:nogroup {conf}" in said
    assert "cannot create files" not in said


def test_a_file_dongled_cannot_replace_is_named_before_any_write() -> None:
    """A quectel.conf an admin created as root after install: the daemon says so at start
    (write_problem), not hours later when a stick moves and the write fails."""
    with open_dir() as d:
        os.chown(d, 65534, 65534)
        conf = d / "quectel.conf"
        conf.write_bytes(OLD)  # root:root 0644
        conf.chmod(0o644)
        body = (
            "problem = write_problem(sys.argv[1])\n"
            "print(problem)\n"
            "print('absent', write_problem(sys.argv[1] + '.none'))\n"
        )
        imports = "from dongled.conf.atomicfile import write_problem\n"
        said = run_as_nobody(imports, body, str(conf))
        assert f"{conf} is owned by root:root (mode 0644) but dongled runs as nobody" in said
        assert f"chown nobody:nogroup {conf}" in said and "absent None" in said
        os.chown(conf, 65534, 65534)
        assert run_as_nobody(imports, body, str(conf)).splitlines()[0] == "None"
        assert conf.read_bytes() == OLD  # asking wrote nothing
