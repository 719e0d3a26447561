"""A throw-away machine with a real systemd (and journald) as PID 1, for the unit's tests.

CI machines run no systemd, but root can boot one: fresh PID, mount, UTS and IPC namespaces,
an overlay of `/` whose upper layer is a tmpfs, and `/lib/systemd/systemd --system` chrooted
into it. Everything the box writes (install.sh's files, the journal, systemd-tmpfiles'
cleaning of /tmp) lands in that tmpfs and vanishes with the box. Never boot it on the live
root: its tmpfiles pass would empty the machine's /tmp. The box's base directory must not be
under /tmp for the same reason, so it lives under /var/tmp.

The box shares the host's network namespace (the test Asterisk listens on 127.0.0.1 in the
pytest process) but not its devices: /dev is a small tmpfs of pseudo devices plus the host's
/dev/pts (where the testbed's ptys live), so no real tty or usbfs node exists in the box at all.
The real /sys is read-only there, except the cgroup hierarchies systemd needs.

It is stopped by SIGKILL to its PID 1 (SIGTERM makes PID 1 re-execute itself); the kernel then
kills the whole PID namespace and the mounts go with the mount namespace.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

__all__ = ["BOX_PATH", "SystemdBox", "SystemdBoxError", "box_unavailable_reason"]

BOX_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""sudo's secure_path on Debian: the PATH install.sh gets from `sudo ./install.sh`."""

TESTBED_MOUNT: Final = "/var/lib/dongled-testbed"
"""Where the pytest process's umockdev testbed appears inside the box (outside /tmp, which
PrivateTmp= hides from the unit)."""

_TARGET: Final = "dongled-box.target"
_BOOT: Final = r"""
set -eu
B=$1 TB=$2 ID=$3
# our own child cgroup in every hierarchy: the box's systemd roots itself there, and nothing
# of it is left in the host's hierarchies once the box is gone
while IFS=: read -r _ ctrl path; do
    case $ctrl in "") dir=/sys/fs/cgroup/unified ;; name=*) dir=/sys/fs/cgroup/${ctrl#name=} ;;
        *) dir=/sys/fs/cgroup/${ctrl%%,*} ;; esac
    [ -f "$dir$path/cgroup.procs" ] || continue
    mkdir -p "$dir$path/$ID" && echo $$ > "$dir$path/$ID/cgroup.procs" || true
done < /proc/self/cgroup
mount --make-rprivate /
mount -t tmpfs tmpfs "$B/rw"
mkdir "$B/rw/upper" "$B/rw/work"
mount -t overlay overlay -o "lowerdir=/,upperdir=$B/rw/upper,workdir=$B/rw/work" "$B/root"
R=$B/root
mount -t proc proc "$R/proc"
mount --rbind /sys "$R/sys"
mount -o remount,bind,ro "$R/sys"
mount -t tmpfs -o mode=0755,nosuid tmpfs "$R/dev"
mknod -m 0666 "$R/dev/null" c 1 3; mknod -m 0666 "$R/dev/zero" c 1 5
mknod -m 0666 "$R/dev/full" c 1 7; mknod -m 0666 "$R/dev/random" c 1 8
mknod -m 0666 "$R/dev/urandom" c 1 9; mknod -m 0666 "$R/dev/tty" c 5 0
mknod -m 0666 "$R/dev/ptmx" c 5 2; mknod -m 0600 "$R/dev/console" c 1 3
mkdir "$R/dev/pts" "$R/dev/shm"
mount --bind /dev/pts "$R/dev/pts"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$R/dev/shm"
ln -s /proc/self/fd "$R/dev/fd"; ln -s /proc/self/fd/0 "$R/dev/stdin"
ln -s /proc/self/fd/1 "$R/dev/stdout"; ln -s /proc/self/fd/2 "$R/dev/stderr"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$R/run"
mkdir -p "$R/run/systemd/system"
printf '[Unit]\nDescription=dongled test box\n' > "$R/run/systemd/system/dongled-box.target"
printf 'Requires=sysinit.target sockets.target\nAfter=sysinit.target sockets.target\n' \
    >> "$R/run/systemd/system/dongled-box.target"
if [ -n "$TB" ]; then
    mkdir -p "$R/var/lib/dongled-testbed"
    mount --bind "$TB" "$R/var/lib/dongled-testbed"
fi
exec chroot "$R" /lib/systemd/systemd --system --unit=dongled-box.target
"""


# The box's processes, killed with its PID 1, are orphans in this PID namespace: this reaper
# (a child subreaper above `unshare`) collects them all and exits only then, so that once it is
# gone no zombie holds the box's cgroups.
_REAPER: Final = """
import ctypes, os, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
if os.fork() == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
"""


class SystemdBoxError(RuntimeError):
    pass


def box_unavailable_reason() -> str | None:
    """Why no box can be booted here (None: it can)."""
    if os.geteuid() != 0:
        return "needs root (namespaces, mounts, a systemd as PID 1); CI runs as root"
    for tool in ("unshare", "nsenter", "chroot", "mknod"):
        if shutil.which(tool) is None:
            return f"needs {tool} (util-linux/coreutils)"
    if not os.path.exists("/lib/systemd/systemd"):
        return "needs systemd installed (apt-get install systemd)"
    return None


def clean_env() -> dict[str, str]:
    """No LD_PRELOAD (the pytest process runs under umockdev's), nothing of the test runner."""
    return {"PATH": BOX_PATH, "LANG": "C.UTF-8", "HOME": "/root", "TERM": "dumb"}


class SystemdBox:
    """One booted box; `run()` executes a command in it as root."""

    def __init__(self, testbed_dir: str = "", *, boot_timeout: float = 60.0) -> None:
        reason = box_unavailable_reason()
        if reason:
            raise SystemdBoxError(reason)
        Path("/var/tmp").mkdir(exist_ok=True)
        self.base = Path(tempfile.mkdtemp(prefix="dongled-box.", dir="/var/tmp"))
        assert not str(self.base).startswith("/tmp/")
        (self.base / "rw").mkdir()
        (self.base / "root").mkdir()
        self._cgroup = self.base.name
        self._cgroup_dirs = self._our_cgroup_dirs()
        # A box's cgroups can stay busy for a while after it is gone: a later box removes what
        # an earlier one had to leave (those whose base directory is gone).
        _sweep_cgroups(self._cgroup_dirs, wait=0)
        self._log = (self.base / "boot.log").open("wb")
        self._unshare = subprocess.Popen(
            [
                sys.executable, "-c", _REAPER,
                "unshare", "--pid", "--fork", "--mount", "--uts", "--ipc",
                "--propagation", "private",
                "sh", "-c", _BOOT, "boot", str(self.base), testbed_dir, self._cgroup,
            ],
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.pid = 0
        try:
            self.pid = self._find_pid1()
            self._wait_booted(boot_timeout)
        except BaseException:
            self.close()
            raise

    # ---- lifecycle ---------------------------------------------------------------------------

    def _our_cgroup_dirs(self) -> list[Path]:
        dirs = []
        with open("/proc/self/cgroup", encoding="ascii") as fh:
            for line in fh:
                _, ctrl, path = line.rstrip("\n").split(":", 2)
                if ctrl == "":
                    top = "/sys/fs/cgroup/unified"
                elif ctrl.startswith("name="):
                    top = "/sys/fs/cgroup/" + ctrl[5:]
                else:
                    top = "/sys/fs/cgroup/" + ctrl.split(",")[0]
                dirs.append(Path(top + path.rstrip("/")) / self._cgroup)
        return dirs

    def _find_pid1(self) -> int:
        """reaper -> unshare -> PID 1 of the box (as this PID namespace numbers it)."""
        deadline = time.monotonic() + 10
        pid = self._unshare.pid
        for _ in range(2):
            while True:
                if self._unshare.poll() is not None:
                    raise SystemdBoxError(f"the box did not boot:\n{self.boot_log()}")
                if time.monotonic() > deadline:
                    raise SystemdBoxError("no PID 1 in the box")
                with contextlib.suppress(OSError):
                    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
                    if children:
                        pid = int(children[0])
                        break
                time.sleep(0.02)
        return pid

    def _wait_booted(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            if self._unshare.poll() is not None:
                raise SystemdBoxError(f"the box's systemd died:\n{self.boot_log()}")
            proc = self.run("systemctl", "is-system-running", check=False, timeout=10)
            state = proc.stdout.strip()
            if state in ("running", "degraded"):
                return
            time.sleep(0.2)
        raise SystemdBoxError(f"the box's systemd is {state!r} after {timeout} s")

    def boot_log(self) -> str:
        return (self.base / "boot.log").read_text(errors="replace")

    def close(self) -> None:
        """SIGKILL to PID 1 ends every process of the box; then nothing of it is left."""
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        if self._unshare.poll() is None:
            try:
                self._unshare.wait(20)
            except subprocess.TimeoutExpired:
                self._unshare.kill()
                self._unshare.wait()
        self._log.close()
        shutil.rmtree(self.base, ignore_errors=True)
        _sweep_cgroups(self._cgroup_dirs, wait=5)

    def __enter__(self) -> SystemdBox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- inside the box ----------------------------------------------------------------------

    def run(
        self,
        *cmd: str,
        check: bool = True,
        timeout: float = 120,
        input: str | None = None,
        cwd: str = "/",
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `cmd` in the box (its namespaces and root) as root, with a clean environment."""
        full = [
            "nsenter", "-t", str(self.pid), "-m", "-p", "-u", "-i", f"--root=/proc/{self.pid}/root",
            f"--wd=/proc/{self.pid}/root{cwd}", *cmd,
        ]  # fmt: skip
        proc = subprocess.run(
            full,
            env={**clean_env(), **(env or {})},
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise SystemdBoxError(
                f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def path(self, inside: str) -> Path:
        """The host's view of a path in the box (through its PID 1's root)."""
        return Path(f"/proc/{self.pid}/root{inside}")

    def write(self, inside: str, text: str, mode: int = 0o644) -> None:
        target = self.path(inside)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("systemctl", "--no-pager", *args, check=check)

    def journal(self, *args: str) -> str:
        return self.run("journalctl", "--no-pager", *args, check=False).stdout

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.systemctl("show", unit, *(f"--property={p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


# Run without umockdev's preload: in the pytest process it redirects every /sys path into the
# testbed, where no cgroup is.
_SWEEP: Final = """
import os, sys, time
deadline = time.monotonic() + float(sys.argv[1])
while True:
    left = []
    for parent in sys.argv[2:]:
        try:
            names = [n for n in os.listdir(parent) if n.startswith("dongled-box.")]
        except OSError:
            continue
        for name in names:
            if os.path.exists(os.path.join("/var/tmp", name)):
                continue  # a box that still runs (or boots)
            top = os.path.join(parent, name)
            for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass
            if os.path.exists(top):
                left.append(top)
    if not left or time.monotonic() >= deadline:
        break
    time.sleep(0.1)
"""


def _sweep_cgroups(ours: list[Path], wait: float) -> None:
    """Remove the cgroups of boxes that are gone, in every hierarchy we know."""
    parents = sorted({str(top.parent) for top in ours})
    subprocess.run(
        [sys.executable, "-c", _SWEEP, str(wait), *parents],
        env=clean_env(),
        check=False,
        timeout=wait + 30,
    )
