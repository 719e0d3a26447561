"""Replace a config file so that readers see the old bytes or the new ones, never a mix.

chan_dongle only checks its parse result for NULL; a half-written dongle.conf read during a
reload can take Asterisk down. So: temp file in the same directory, fsync, rename, fsync the
directory. Any failure before the rename leaves the original exactly as it was.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import os
import pwd
import stat
import tempfile

from dongled.core.errors import ConfChangedError, ConfError

__all__ = ["replace_atomically"]


def replace_atomically(
    path: str,
    data: bytes,
    *,
    expected: bytes | None = None,
    backup_suffix: str | None = ".dongled-bak",
) -> None:
    """Atomically replace the regular file `path` with `data`, keeping owner and mode.

    `expected` is the content the edit was made from: if the file no longer holds exactly
    that, someone else wrote it meanwhile and ConfChangedError is raised with nothing written.
    With `backup_suffix`, the previous version stays at `path + backup_suffix`.
    Raises ConfError if `path` is a symlink or not a regular file, or if any step fails.
    """
    step = "checking the file"
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise ConfError(path, None, f"cannot replace: {step} failed: {exc.strerror}") from exc
    if stat.S_ISLNK(st.st_mode):
        # Renaming over a symlink would silently turn it into a plain file.
        raise ConfError(path, None, "is a symlink; point dongled at the real file")
    if not stat.S_ISREG(st.st_mode):
        raise ConfError(path, None, "is not a regular file; refusing to replace it")

    directory = os.path.dirname(path) or "."
    _remove_stale_temps(directory, os.path.basename(path))
    tmp: str | None = None
    try:
        step = "creating a temporary file"
        tmp = _write_copy(directory, os.path.basename(path), data, st)
        if expected is not None:
            # Checked as late as possible: the window left is this read and one rename.
            step = "checking the file is unchanged"
            _check_unchanged(path, expected)
        if backup_suffix is not None:
            step = "keeping a backup"
            _backup(path, path + backup_suffix, directory, st)
        step = "renaming the new file into place"
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        why = _access_problem(path, directory, st, exc.errno)
        said = f" ({exc.strerror}): {why}" if why else f": {step} failed ({exc.strerror})"
        raise ConfError(path, None, f"not replaced{said}; the old file is intact") from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    try:
        _fsync_dir(directory)
    except OSError as exc:
        raise ConfError(
            path, None, f"replaced, but syncing the directory failed ({exc.strerror})"
        ) from exc


def write_problem(path: str) -> str | None:
    """Why replace_atomically would fail on `path` for who dongled runs as (its owner, its
    directory), asked before any write: e.g. a quectel.conf an admin created as root after
    install. None when it can, or when the file is not there (nothing to write yet)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if os.geteuid() == 0 or not stat.S_ISREG(st.st_mode):
        return None  # root can; a symlink or odd file is refused with its own message
    return _access_problem(path, os.path.dirname(path) or ".", st, errno.EACCES)


def _name(uid: int | None = None, gid: int | None = None) -> str:
    try:
        if uid is not None:
            return pwd.getpwuid(uid).pw_name
        if gid is not None:
            return grp.getgrgid(gid).gr_name
    except KeyError:
        pass
    return str(uid if uid is not None else gid)


def _access_problem(path: str, directory: str, st: os.stat_result, err: int | None) -> str | None:
    """Name an ownership or permission problem as such (who owns what, with which mode, who
    dongled runs as, what to change) instead of the step that happened to hit it."""
    if err == errno.EROFS:
        return (
            f"{directory} is on a filesystem read-only for dongled (under systemd: "
            "dongled.service's ReadWritePaths= must list it)"
        )
    if err not in (errno.EACCES, errno.EPERM):
        return None
    uid, gid = os.geteuid(), os.getegid()
    me = f"{_name(uid=uid)} (uid {uid})"
    if uid == 0:
        return f"{directory} refuses changes even to root (immutable? lsattr -d {directory})"
    problems = []
    try:
        d = os.stat(directory)
        dir_mode = (
            f"owner {_name(uid=d.st_uid)}:{_name(gid=d.st_gid)}, mode {stat.S_IMODE(d.st_mode):04o}"
        )
    except OSError:
        dir_mode = "owner unknown"
    if not os.access(directory, os.W_OK | os.X_OK):
        problems.append(
            f"dongled runs as {me} and cannot create files in {directory} ({dir_mode}); it "
            f"replaces {os.path.basename(path)} by writing a new file there and renaming it: "
            f"chown {_name(uid=uid)} {directory}"
        )
    if st.st_uid != uid or (st.st_gid != gid and st.st_gid not in os.getgroups()):
        owner = f"{_name(uid=st.st_uid)}:{_name(gid=st.st_gid)}"
        problems.append(
            f"{path} is owned by {owner} (mode {stat.S_IMODE(st.st_mode):04o}) but dongled runs "
            f"as {me}: the new file would change its owner, which only root may do: "
            f"chown {_name(uid=uid)}:{_name(gid=gid)} {path}"
        )
    return "; and ".join(problems) or None


def _check_unchanged(path: str, expected: bytes) -> None:
    def opener(name: str, flags: int) -> int:  # a FIFO or symlink swapped in is not followed
        return os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK)

    with open(path, "rb", opener=opener) as f:
        now = f.read(len(expected) + 1)
    if now != expected:
        raise ConfChangedError(
            path, None, "changed on disk while dongled was editing it; nothing written, retrying"
        )


def _remove_stale_temps(directory: str, name: str) -> None:
    """Remove temp files a killed writer of `name` left behind (ours only: the prefix and
    suffix we create, regular files, never followed through a symlink)."""
    prefix, suffix = f".{name}.", ".dongled-tmp"
    try:
        entries = os.listdir(directory)
    except OSError:
        return  # the write itself will report what is wrong with the directory
    for entry in entries:
        if not (entry.startswith(prefix) and entry.endswith(suffix)):
            continue
        stale = os.path.join(directory, entry)
        with contextlib.suppress(OSError):
            if stat.S_ISREG(os.lstat(stale).st_mode):
                os.unlink(stale)


def _write_copy(directory: str, name: str, data: bytes, st: os.stat_result) -> str:
    """Write `data` to a new temp file in `directory` with st's owner and mode; return its path."""
    # mkstemp: O_CREAT|O_EXCL with an unpredictable name, mode 0600 until we copy the mode.
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".dongled-tmp", dir=directory)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
            os.fchown(fd, st.st_uid, st.st_gid)
        os.fchmod(fd, stat.S_IMODE(st.st_mode))
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    return tmp


def _backup(path: str, backup: str, directory: str, st: os.stat_result) -> None:
    """Make `backup` hold the current bytes of `path`, replacing any older backup atomically."""
    with contextlib.suppress(OSError):
        b = os.lstat(backup)
        if (b.st_dev, b.st_ino) == (st.st_dev, st.st_ino):
            # Already a hard link of the current file (a writer was killed after its backup,
            # before its rename). rename(2) between two links of one inode does nothing and
            # would leave our temporary link behind.
            return
    link = os.path.join(directory, f".{os.path.basename(backup)}.{os.urandom(8).hex()}.dongled-tmp")
    try:
        os.link(path, link, follow_symlinks=False)
    except OSError:
        # No hard links here (some filesystems): fall back to a copy, written the same way.
        with open(path, "rb") as f:
            old = f.read()
        link = _write_copy(directory, os.path.basename(backup), old, st)
    try:
        os.replace(link, backup)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(link)
        raise


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
