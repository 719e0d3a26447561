"""Campaign 6: soak. Unplug/replug cycles of 5 sticks with random timing and random tty
numbers (fresh ones and each other's old ones), against `dongled run` and the test Asterisk.

CI runs DONGLED_SOAK_CYCLES (default 40); the full campaign is
`DONGLED_REL_CHILD=1 DONGLED_SOAK_CYCLES=1000 \
    umockdev-wrapper .venv/bin/python -m pytest -s tests/reliability/test_rel_soak.py`.
Every 10 cycles and at the end: every device on its own stick. Throughout: no foreign
binding. Start vs end: the daemon's open fds, RSS, threads and asyncio tasks.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from pathlib import Path

import pytest

from dongled.daemon import IO_THREADS
from tests.support.figures import figure
from tests.support.marks import needs_umockdev, rel_child_only
from tests.support.procstats import start_instrumented, stats
from tests.support.rig import rig

pytestmark = [
    pytest.mark.e2e,
    rel_child_only,
    needs_umockdev,
]

CYCLES = int(os.environ.get("DONGLED_SOAK_CYCLES", "40"))
STICKS = 5
CHECK_EVERY = 10


@pytest.mark.timeout(max(300, CYCLES * 6))
def test_soak_unplug_replug_cycles(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("DONGLED_SOAK_SEED", "7")))
    with rig(tmp_path, STICKS) as r:
        width = len(r.model.interfaces)
        free = r.take_ttys(width * 2)  # spare numbers, so sticks can land anywhere
        r.wait_all_right(timeout=15)
        start_instrumented(r, tmp_path)
        r.wait_all_right(timeout=20)
        assert r.daemon is not None
        time.sleep(1.0)
        first = stats(r.daemon.pid, tmp_path)
        t0 = time.monotonic()
        waits: list[float] = []
        unplugs = 0
        returns = [1] * STICKS  # each stick's device came up once at the start
        for cycle in range(1, CYCLES + 1):
            out = rng.sample(range(STICKS), rng.randint(1, STICKS))
            for i in out:
                free += r.sticks[i].tty_numbers
                r.unplug(i)
                unplugs += 1
                if rng.random() < 0.3:
                    time.sleep(rng.uniform(0, 0.2))
            time.sleep(rng.uniform(0, 0.6))
            rng.shuffle(out)
            for i in out:
                rng.shuffle(free)
                ttys, free = sorted(free[:width]), free[width:]
                r.replug(i, ttys)
                returns[i] += 1
                if rng.random() < 0.4:
                    time.sleep(rng.uniform(0, 0.5))
            if os.environ.get("DONGLED_SOAK_DEBUG"):
                fds = []
                for f in os.listdir("/proc/self/fd"):
                    with contextlib.suppress(OSError):
                        fds.append(os.readlink(f"/proc/self/fd/{f}"))
                print(cycle, len(fds), sum("ttyUSB" in f or "pts" in f for f in fds))
            if cycle % CHECK_EVERY == 0 or cycle == CYCLES:
                waits.append(r.wait_all_right(timeout=30))
                r.assert_never_foreign()
                r.assert_daemon_alive()
        elapsed = time.monotonic() - t0
        time.sleep(1.5)  # verify tasks of the last pass end
        last = stats(r.daemon.pid, tmp_path)
        r.assert_never_foreign()
        r.assert_only_ports_changed()
        log = r.daemon_log()
        verified = [log.count(f"device {name} runs IMEI") for name in r.names]
        not_verified = log.count("did not come up")
        figure(
            "soak",
            cycles=CYCLES,
            unplugs=unplugs,
            sticks=STICKS,
            seconds=round(elapsed, 1),
            final="every device on its own stick",
            foreign_bindings=0,
            recovery_s_max=round(max(waits), 2),
            fds_start_end=(first.fds, last.fds),
            umockdev_fds_start_end=(first.umockdev_fds, last.umockdev_fds),
            rss_kib_start_end=(first.rss_kib, last.rss_kib),
            threads_start_end=(first.threads, last.threads),
            tasks_start_end=(first.tasks, last.tasks),
            reloads=r.asterisk.reload_count,
            device_returns=returns,
            device_verified_events=verified,
            did_not_come_up=not_verified,
        )
        # One verification per device return (issue 18): no overlapping verifications each
        # reporting, no spurious "did not come up".
        assert all(v <= n for v, n in zip(verified, returns, strict=True)), (verified, returns)
        assert not_verified == 0, not_verified
        assert last.fds <= first.fds + 2, (first, last)
        # umockdev's preload leaks a connection (and a slot of its 50-entry table, then aborts
        # the daemon) at each failed open() of a /dev node: the probe must not open a port
        # its stick was pulled from (before: 8 in 100 cycles, each a probe's second open).
        # A stick pulled between the stat and the open still costs one, rarely.
        assert last.umockdev_fds <= first.umockdev_fds + 2 + CYCLES // 100, (first, last)
        # The event loop's pool for file I/O keeps up to IO_THREADS idle threads: bounded.
        assert last.threads <= first.threads + IO_THREADS, (first, last)
        # Python's allocator keeps some arenas: allow noise, not growth per cycle.
        assert last.rss_kib <= first.rss_kib + 8192 + 16 * CYCLES, (first, last)
        assert len(last.tasks) <= len(first.tasks) + 1, (first.tasks, last.tasks)
