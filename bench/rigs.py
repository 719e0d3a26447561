"""The end-to-end rig of the tests, instrumented for the benchmark.

- `StampedTestbed` stamps (time.monotonic()) each `add` of a tty device: the last tty uevent
  of a stick is the moment its last tty add returned from umockdev (the event is sent then).
- `BenchRig` starts `dongled run` like the tests do (real subprocess under umockdev-wrapper,
  real NOTIFY_SOCKET), but without --verbose: debug logging is not what runs in production.
- `interleaved_return` brings unplugged sticks back with their ports interleaved in random
  order over a time window, as a USB hub does after a power dip.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.support.devguard import SITE_DIR
from tests.support.fake_asterisk import FakeAsterisk
from tests.support.fake_asterisk_dongle import ChanDongle
from tests.support.modemsim import Role
from tests.support.rig import Rig
from tests.support.testbed import FakeStick, Testbed

TTY_MARK = "E: SUBSYSTEM=tty\n"


class StampedTestbed(Testbed):
    def __init__(self) -> None:
        super().__init__()
        self.last_tty_add = 0.0

    def __enter__(self) -> StampedTestbed:
        return self

    def add_from_string(self, text: str) -> None:
        super().add_from_string(text)
        if TTY_MARK in text:
            self.last_tty_add = time.monotonic()


class _DirectPtyChan(ChanDongle):
    """The test chan_dongle, opening the pty behind /dev/ttyUSBn by its real path.

    Under the umockdev preload every open testbed /dev node takes one of 50 slots of a
    per-process table (libumockdev-preload aborts with "fd_map_add(): overflow" when it is
    full), and the test Asterisk keeps two ttys open per device: 25 sticks would be the most
    it could run (the preload tracks every open of a path that begins with "/dev/", /dev/pts
    included, once ioctl/_default exists). One change to ChanDongle: its open() goes to
    "//dev/pts/N", the pty the testbed node links to (the same tty).
    Lock names, lock checks and DataState are unchanged (still from the configured path).
    """

    testbed_root = ""

    def _open_path(self, path: str) -> str:
        node = self.testbed_root + path
        # "//dev/pts/N": the same tty for the kernel, but the preload only tracks paths that
        # begin with "/dev/"
        return "/" + os.path.realpath(node) if os.path.islink(node) else path


class BenchAsterisk(FakeAsterisk):
    chan_class = _DirectPtyChan


class BenchRig(Rig):
    tb: StampedTestbed
    asterisk_class = BenchAsterisk  # ours opens the ptys by their real path
    run_args = ("run",)  # the default log level, as installed
    ready_timeout = 60.0  # start-up with up to 50 sticks
    # Another checkout's dongled/ (bench.recovery --daemon-code): the same rig, test Asterisk
    # and measurements around an older daemon, so that a comparison shows the daemon alone.
    code_root: str | None = None

    def write_settings(
        self, tables: dict[str, dict[str, object]] | None = None, **extra: object
    ) -> None:
        super().write_settings(tables, **extra)
        if self.code_root is not None and self.personality == "chan_dongle":
            # a daemon from before the driver seam refuses the key; chan_dongle is its only one
            lines = self.settings.read_text().splitlines(keepends=True)
            self.settings.write_text("".join(x for x in lines if not x.startswith("driver =")))

    def daemon_env(self) -> dict[str, str]:
        env = super().daemon_env()
        if self.code_root is not None:
            env["PYTHONPATH"] = f"{SITE_DIR}:{self.code_root}"
        return env

    @property
    def pid(self) -> int:
        assert self.daemon is not None
        return self.daemon.pid

    def section_data(self, i: int) -> str | None:
        """The data= value of [dongle<i>] in the file on disk."""
        text = self.conf.read_bytes().decode("latin-1")
        start = text.find(f"\n[dongle{i}]\n")
        if start < 0:
            return None
        body = text[start + 1 :].split("\n[", 1)[0]
        for line in body.splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() == "data":
                return value.split(";", 1)[0].strip()
        return None


def wait(pred: Callable[[], bool], timeout: float, what: str, alive: Callable[[], None]) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        alive()
        time.sleep(0.005)


def interleaved_return(
    tb: StampedTestbed,
    sticks: Sequence[FakeStick],
    take_ttys: Callable[[int], list[int]],
    rng: random.Random,
    spread: float,
    *,
    each: float | None = None,
    last_adds: dict[str, float] | None = None,
) -> float:
    """Plug `sticks` back on new tty numbers, every uevent at a random moment of `spread`
    seconds (a stick's usb_device first, then its interfaces in order, interleaved with the
    other sticks'). With `each`, a stick instead comes back whole at a random moment of
    `spread`, its own uevents within `each` seconds (a staggered return). Returns the
    monotonic time of the last tty add; `last_adds` gets each stick's own (by name)."""
    plan: list[tuple[float, int, FakeStick, tuple[int, Role, int] | None]] = []
    seq = 0
    for stick in sticks:
        if stick.plugged:
            raise RuntimeError(f"{stick.name} is still plugged")
        interfaces = stick.model.interfaces
        ttys = take_ttys(len(interfaces))
        begin, width = (0.0, spread) if each is None else (rng.uniform(0.0, spread), each)
        times = sorted(begin + rng.uniform(0.0, width) for _ in range(len(interfaces) + 1))
        plan.append((times[0], seq, stick, None))
        seq += 1
        for (ifnum, role), tty_no, t in zip(interfaces, ttys, times[1:], strict=True):
            plan.append((t, seq, stick, (ifnum, role, tty_no)))
            seq += 1
    plan.sort(key=lambda item: (item[0], item[1]))
    start = time.monotonic()
    for at, _, stick, iface in plan:
        delay = start + at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if iface is None:
            tb.add_usb_device(stick)
            continue
        ifnum, role, tty_no = iface
        tb.add_port(stick, ifnum, role, tty_no)
        if last_adds is not None:
            last_adds[stick.name] = tb.last_tty_add
        if len(stick.ports) == len(stick.model.interfaces):
            tb.adopt(stick)
    return tb.last_tty_add


def make_rig(
    tmp: Path, tb: StampedTestbed, n: int, answer_delay: float, code_root: str | None = None
) -> BenchRig:
    _DirectPtyChan.testbed_root = tb.root_dir
    BenchRig.code_root = code_root
    # chan_dongle's interval as in the sample file (15 s): its passes are not ours to measure.
    return BenchRig(tmp, tb, n, answer_delay=answer_delay, interval=15.0)
