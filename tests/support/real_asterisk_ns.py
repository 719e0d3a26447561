"""A real Asterisk in a mount namespace of its own (`unshare --mount`), and the testbed's tty
nodes kept in step in its private /dev.

In the namespace the test's lock directory is bound over /run/lock (the real chan_dongle and IM
write `/var/lock/LCK..ttyUSBn`) and a tmpfs over /var/lib (their SMS store): nothing outside
the test's sandbox is touched. Asterisk runs without umockdev's preload (see `plain_env`); it
reaches the testbed's ttys (the ptys the modem simulators answer on) through its own /dev.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

from tests.support.real_asterisk_tree import AsteriskTree

# Run as `sh -euc _NAMESPACE sh LOCK_DIR HOSTDEV TTY_SCRIPT ASTERISK ARGS...` in a fresh
# mount namespace: the lock dir and a tmpfs /var/lib as Asterisk's own; a /dev of its own with
# the few host nodes it needs, the host's ptys, and the testbed's ttys bound by name (not
# linked: chan_dongle names its lock after realpath(), which must stay /dev/ttyUSBn).
_NAMESPACE = """
mount --bind "$1" /run/lock
mount -t tmpfs -o mode=0755 tmpfs /var/lib
mkdir -p /var/lib/asterisk
mount --rbind /dev "$2"
mount -t tmpfs -o mode=0755 tmpfs /dev
for n in null zero full random urandom tty; do
    touch "/dev/$n"; mount --bind "$2/$n" "/dev/$n"
done
mkdir /dev/pts /dev/shm
mount --bind "$2/pts" /dev/pts
ln -s pts/ptmx /dev/ptmx
sh -euc "$3"
shift 3
exec "$@"
"""


def plain_env(env: Mapping[str, str]) -> dict[str, str]:
    """Asterisk runs without umockdev's preload: its realpath() wrapper (0.17.16)
    corrupts the heap of a C caller that passes its own buffer, as chan_dongle's lock
    naming does. Its ttys are the testbed's ptys, bound into its own /dev instead."""
    return {k: v for k, v in env.items() if k not in ("LD_PRELOAD", "UMOCKDEV_DIR")}


def tty_script(before: Mapping[str, str], after: Mapping[str, str]) -> str:
    """Shell lines that turn /dev's ttys from `before` into `after` (names are the testbed's
    own `ttyUSBn`/`ttyACMn`, checked here before they reach a shell)."""
    lines: list[str] = []
    for name in sorted(before):
        if after.get(name) != before[name]:
            lines.append(f"umount /dev/{_safe(name)}; rm -f /dev/{_safe(name)}")
    for name, pty in sorted(after.items()):
        if before.get(name) != pty:
            lines.append(f"touch /dev/{_safe(name)}; mount --bind {_safe(pty)} /dev/{_safe(name)}")
    return "\n".join(lines)


def _safe(path: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9/_.-]+", path):
        raise ValueError(f"unexpected tty path {path!r}")
    return path


class TtySync:
    """The testbed's ttys (`env`'s UMOCKDEV_DIR) as bound into Asterisk's /dev."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.bound: dict[str, str] = {}  # /dev name -> the pty slave bound there

    def testbed_ttys(self) -> dict[str, str]:
        """The testbed's ttys now: /dev name -> the pty slave it is."""
        dev = Path(self.env["UMOCKDEV_DIR"]) / "dev"
        return {
            link.name: os.readlink(link) for link in sorted(dev.glob("tty*")) if link.is_symlink()
        }

    def first_script(self) -> str:
        """What binds the testbed's ttys of now into a new, empty /dev."""
        self.bound = self.testbed_ttys()
        return tty_script({}, self.bound)

    def sync(self, pid: int) -> None:
        """Make the /dev of process `pid`'s namespace show the testbed's ttys as they are now:
        a vanished stick's tty gone at once (a stale bind would reach whatever pty takes its
        number next), a new one bound to its pty."""
        now = self.testbed_ttys()
        script = tty_script(self.bound, now)
        if script:
            subprocess.run(
                ["nsenter", "-t", str(pid), "-m", "sh", "-euc", script],
                env=plain_env(self.env), check=True, capture_output=True, timeout=10,
            )  # fmt: skip
        self.bound = now


class NamespacedAsterisk:
    """The Asterisk process of `tree`, in its own mount namespace with `lock_dir` as its
    /run/lock and the testbed's ttys (`ttys`) in its /dev."""

    def __init__(self, tree: AsteriskTree, build: Path, lock_dir: Path, ttys: TtySync) -> None:
        self.tree, self.build, self.lock_dir, self.ttys = tree, build, lock_dir, ttys
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        hostdev = self.tree.root / "hostdev"
        hostdev.mkdir(exist_ok=True)
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-euc", _NAMESPACE,
                "sh", str(self.lock_dir), str(hostdev), self.ttys.first_script(),
                str(self.build / "sbin" / "asterisk"), "-C", str(self.tree.asterisk_conf),
                "-f", "-n", "-q"]  # fmt: skip
        out = self.tree.stdout_path.open("ab")
        self.proc = subprocess.Popen(
            argv,
            env=plain_env(self.ttys.env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def sync_ttys(self) -> None:
        """The testbed's ttys as they are now in its /dev (nothing to do when not running)."""
        if self.proc is not None and self.alive():
            self.ttys.sync(self.proc.pid)

    def stop(self) -> int | None:
        """SIGTERM (SIGKILL after 10 s). Returns its exit status if it had exited by itself
        with one other than 0, else None."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            return None
        return proc.returncode if proc.returncode != 0 else None
