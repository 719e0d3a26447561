"""What the benchmark sees of the daemon, stamped with this process's time.monotonic().

`FsWatch` is one thread blocked in inotify on the test directory and the daemon's state
directory. It stamps each event as it arrives and keeps:

- every version of dongle.conf that dongled renamed into place (atomic replace = IN_MOVED_TO);
- every line the daemon wrote to its log (IN_MODIFY of daemon.log, read as it grows);
- every status.json the daemon published (IN_MOVED_TO in the state directory).

`ProcSample` reads /proc/<pid> for the footprint: RSS, CPU ticks, context switches of all
threads.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

_IN_MODIFY: Final = 0x002
_IN_CLOSE_WRITE: Final = 0x008
_IN_MOVED_TO: Final = 0x080
_IN_CREATE: Final = 0x100
_IN_CLOEXEC: Final = 0o2000000
_HEADER: Final = struct.Struct("iIII")


@dataclass(frozen=True, slots=True)
class Stamped:
    t: float
    text: str


class FsWatch:
    def __init__(self, conf: Path, log: Path, state_dir: Path) -> None:
        self.conf, self.log, self.state_dir = conf, log, state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self._fd: int = libc.inotify_init1(_IN_CLOEXEC)
        if self._fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        mask = _IN_MOVED_TO | _IN_MODIFY | _IN_CLOSE_WRITE | _IN_CREATE
        self._dir_wd = libc.inotify_add_watch(self._fd, os.fsencode(conf.parent), mask)
        self._state_wd = libc.inotify_add_watch(self._fd, os.fsencode(state_dir), _IN_MOVED_TO)
        if self._dir_wd < 0 or self._state_wd < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch failed")
        self._lock = threading.Lock()
        self._conf_versions: list[tuple[float, bytes]] = []
        self._lines: list[Stamped] = []
        self._status: list[tuple[float, dict[str, Any]]] = []
        self._log_offset = 0
        self._partial = b""
        self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC)
        self._thread = threading.Thread(target=self._run, name="bench-fswatch", daemon=True)
        self._thread.start()

    # ---- the thread ----

    def _run(self) -> None:
        while True:
            ready, _, _ = select.select([self._fd, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            data = os.read(self._fd, 65536)
            now = time.monotonic()
            names: set[tuple[int, str]] = set()
            pos = 0
            while pos + _HEADER.size <= len(data):
                wd, _mask, _cookie, length = _HEADER.unpack_from(data, pos)
                raw = data[pos + _HEADER.size : pos + _HEADER.size + length]
                pos += _HEADER.size + length
                names.add((wd, raw.rstrip(b"\0").decode(errors="replace")))
            for wd, name in sorted(names):
                if wd == self._dir_wd and name == self.conf.name:
                    self._on_conf(now)
                elif wd == self._dir_wd and name == self.log.name:
                    self._on_log(now)
                elif wd == self._state_wd and name == "status.json":
                    self._on_status(now)

    def _on_conf(self, now: float) -> None:
        try:
            content = self.conf.read_bytes()
        except OSError:
            return
        with self._lock:
            if not self._conf_versions or self._conf_versions[-1][1] != content:
                self._conf_versions.append((now, content))

    def _on_log(self, now: float) -> None:
        try:
            with self.log.open("rb") as fh:
                fh.seek(self._log_offset)
                chunk = fh.read()
        except OSError:
            return
        self._log_offset += len(chunk)
        data = self._partial + chunk
        *complete, self._partial = data.split(b"\n")
        with self._lock:
            self._lines.extend(Stamped(now, c.decode(errors="replace")) for c in complete)

    def _on_status(self, now: float) -> None:
        try:
            snap = json.loads((self.state_dir / "status.json").read_text())
        except (OSError, ValueError):
            return
        with self._lock:
            self._status.append((now, snap))

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join(5)
        for fd in (self._fd, self._stop_r, self._stop_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # ---- queries (any thread) ----

    def conf_versions(self, since: float = 0.0) -> list[tuple[float, bytes]]:
        with self._lock:
            return [(t, c) for t, c in self._conf_versions if t >= since]

    def lines(self, since: float = 0.0, containing: str = "") -> list[Stamped]:
        with self._lock:
            return [s for s in self._lines if s.t >= since and containing in s.text]

    def statuses(self, since: float = 0.0) -> list[tuple[float, dict[str, Any]]]:
        with self._lock:
            return [(t, s) for t, s in self._status if t >= since]

    def first_write(self, since: float, needle: bytes) -> float | None:
        """When dongle.conf first held `needle` in a version written at or after `since`."""
        for t, content in self.conf_versions(since):
            if needle in content:
                return t
        return None

    def first_line(self, since: float, *needles: str) -> float | None:
        for s in self.lines(since):
            if all(n in s.text for n in needles):
                return s.t
        return None


CLK_TCK: Final = os.sysconf("SC_CLK_TCK")
PAGE: Final = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class ProcSample:
    t: float
    cpu_s: float  # utime + stime of all threads, seconds
    rss_kib: int
    hwm_kib: int
    voluntary: int  # context switches, summed over threads
    involuntary: int
    threads: int

    @classmethod
    def take(cls, pid: int) -> ProcSample:
        now = time.monotonic()
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)
        status = _status_fields(Path(f"/proc/{pid}/status"))
        vol = invol = 0
        threads = 0
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                ts = _status_fields(task / "status")
                vol += int(ts.get("voluntary_ctxt_switches", "0"))
                invol += int(ts.get("nonvoluntary_ctxt_switches", "0"))
                threads += 1
        return cls(
            t=now,
            cpu_s=cpu,
            rss_kib=int(status["VmRSS"].split()[0]),
            hwm_kib=int(status["VmHWM"].split()[0]),
            voluntary=vol,
            involuntary=invol,
            threads=threads,
        )


def cpu_ns(pid: int) -> int:
    """Time on a CPU of all the process's threads so far, ns (schedstat: not rounded to ticks,
    and not lengthened by waiting for a CPU on a loaded machine)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int((task / "schedstat").read_text().split()[0])
    return total


def _status_fields(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out
