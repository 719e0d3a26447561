"""What a running daemon holds, read from /proc and (tasks) via the instrument_site hook."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INSTRUMENT_SITE = str(Path(__file__).resolve().parent / "instrument_site")
ROOT = str(Path(__file__).resolve().parents[2])


def instrument_env(tmp: Path) -> dict[str, str]:
    """extra_env for Rig.start_daemon: SIGUSR1 dumps the daemon's asyncio tasks."""
    return {
        "PYTHONPATH": f"{INSTRUMENT_SITE}:{ROOT}",
        "DONGLED_TASKS_FILE": str(tmp / "tasks.json"),
    }


@dataclass(frozen=True)
class Stats:
    fds: int  # the daemon's own: umockdev's preload connections are counted apart
    rss_kib: int
    threads: int
    tasks: list[str]
    umockdev_fds: int = 0  # sockets umockdev's preload opened in the daemon (not dongled's)


def umockdev_sockets(pid: int) -> int:
    """The daemon's sockets connected to the testbed's ioctl socket: the preload opens one
    per /dev node opened and does not always close it (seen: failing opens of a vanished
    node, and closes of a node whose device was removed). Needs `ss` (iproute2)."""
    try:
        out = subprocess.run(
            ["ss", "-xpn"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    servers = set()
    mine = []
    for line in out.splitlines():
        cols = line.split()
        if len(cols) < 8:
            continue
        local_path, local_inode, peer_inode = cols[4], cols[5], cols[7]
        if local_path.endswith("/ioctl/_default"):
            servers.add(local_inode)
        if f"pid={pid}," in line:
            mine.append(peer_inode)
    return sum(1 for peer in mine if peer in servers)


def stats(pid: int, tmp: Path, timeout: float = 5.0) -> Stats:
    path = tmp / "tasks.json"
    path.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the daemon did not dump its tasks (instrument_site not loaded?)")
        time.sleep(0.02)
    tasks = json.loads(path.read_text())
    umockdev = umockdev_sockets(pid)
    fds = len(os.listdir(f"/proc/{pid}/fd")) - umockdev
    rss = threads = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return Stats(fds=fds, rss_kib=rss, threads=threads, tasks=tasks, umockdev_fds=umockdev)


def start_instrumented(r: Any, tmp: Path) -> None:
    """Rig.start_daemon with the task hook (works with either form of the rig's env hook)."""
    env = instrument_env(tmp)
    extra = getattr(r, "extra_env", None)
    if isinstance(extra, dict):
        extra.update(env)
        r.start_daemon()
    else:
        r.start_daemon(extra_env=env)
