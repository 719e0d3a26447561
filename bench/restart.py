"""How long chan_dongle is on its own after dongled dies: from the exec of `dongled run` to
its first write of dongle.conf, and to READY=1 (issue 13).

While dongled is down nothing parks the sections of absent sticks, and chan_dongle's own
retry may bind a device to whatever stick the kernel put on its old numbers. systemd adds
RestartSec= (systemd/dongled.service) before the exec; this measures the rest, for two
cases, each run from a fresh renumbering with dongled stopped:

- absent: every stick is gone; the first write parks every section;
- renumbered: every stick came back on new numbers; the first write points each section
  at its stick's new ports (it includes identifying them).

Run from the repository root:

    umockdev-wrapper .venv/bin/python -m bench.restart --sticks 5 --runs 10
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.observe import FsWatch
from bench.recovery import ms, out, spread
from bench.rigs import BenchRig, StampedTestbed, make_rig, wait
from tests.support.rig import PARKED_DATA


def one_run(r: BenchRig, w: FsWatch, case: str) -> tuple[float, float]:
    """(exec -> first write, exec -> READY) in seconds, for a freshly stale config."""
    n = len(r.sticks)
    r.conf.write_bytes(r.original)
    if case == "renumbered":
        for i in range(n):
            r.replug(i)  # on new numbers, where chan_dongle cannot follow
    r.notifications.clear()
    start = time.monotonic()
    r.start_daemon(wait_ready=False)

    def writes() -> list[float]:  # dongled's, not the stale copy put back above
        return [t for t, content in w.conf_versions(start) if content != r.original]

    wait(lambda: bool(writes()), 30, "the first write", r.assert_daemon_alive)
    first = min(writes()) - start
    r.wait_notification("READY=1", 30)
    ready = time.monotonic() - start  # includes our polling of the notify socket (<=0.1 s)
    text = r.conf.read_text(encoding="latin-1")
    if case == "absent":
        assert text.count(PARKED_DATA) == n, "every section parked"
    else:
        r.wait_all_right(timeout=30)
    r.stop_daemon()
    if case == "renumbered":
        r.unplug(*range(n))
    return first, ready


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sticks", type=int, default=5)
    p.add_argument("--runs", type=int, default=10)
    args = p.parse_args(argv)
    results: dict[str, tuple[list[float], list[float]]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="dongled-bench-restart-"))
    try:
        with StampedTestbed() as tb:
            r = make_rig(tmp, tb, args.sticks, 0.0)
            w = FsWatch(r.conf, tmp / "daemon.log", r.state_dir)
            try:
                r.wait_all_right(timeout=30)
                r.unplug(*range(args.sticks))  # dongled is down: chan_dongle on its own
                for case in ("absent", "renumbered"):
                    firsts, readies = results.setdefault(case, ([], []))
                    for _ in range(args.runs):
                        first, ready = one_run(r, w, case)
                        firsts.append(first)
                        readies.append(ready)
            finally:
                w.close()
                r.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    version = sys.version.split()[0]
    out(f"dongled restart, {args.sticks} sticks, {args.runs} runs per case (python {version})")
    out("| case | exec -> first write p50 / p95 / max | exec -> READY p50 / p95 / max |")
    out("| --- | --- | --- |")
    for case, (firsts, readies) in results.items():
        f, rd = spread(firsts), spread(readies)
        out(
            f"| {case} | {ms(f['p50'])} / {ms(f['p95'])} / {ms(f['max'])} "
            f"| {ms(rd['p50'])} / {ms(rd['p95'])} / {ms(rd['max'])} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
