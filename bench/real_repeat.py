"""Repeats real-tier scenarios against the real Asterisk and drivers, each in a fresh pytest
process, and reports how many runs passed and the figures they printed.

Written for the two defects the real drivers showed (docs/real-drivers.md): a dongled
restarted after the driver bound every device to the wrong stick (every device back on its
own stick, within how long of the last stop, no crash), and a dongled started while the
driver runs every device right (nothing stopped). Needs root and the real Asterisk
(DONGLED_REAL_ASTERISK or DONGLED_REAL_SOURCES, as for tests/real). From the repository root:

    umockdev-wrapper .venv/bin/python -m bench.real_repeat --runs 20
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

SCENARIOS = {
    "wrong-binding": "tests/real/test_scenarios.py::test_restart_after_a_wrong_binding",
    "started-while-running": (
        "tests/real/test_scenarios.py::"
        "test_dongled_started_while_every_device_runs_right_stops_nothing"
    ),
}
DRIVERS = (
    "chan_dongle",
    "quectel-im",
    "quectel-re",
    "chan_dongle+quectel-im",
    "chan_dongle+quectel-re",
)
_BACK = re.compile(r"\[real\] \S+: all back ([0-9.]+) s after the last stop")


def run_once(node: str) -> tuple[bool, float | None, float]:
    """One pytest process: passed?, the 'all back' figure it printed, its wall time."""
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", node],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "DONGLED_REAL_CHILD": "1"},  # tests/real is collected then
    )
    took = time.monotonic() - start
    match = _BACK.search(done.stdout)
    return done.returncode == 0, float(match.group(1)) if match else None, took


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--scenario", choices=sorted(SCENARIOS), action="append")
    ap.add_argument("--driver", choices=DRIVERS, action="append")
    args = ap.parse_args(argv)
    failed = 0
    print("| scenario | driver | passed | all back after the last stop, s: median (max) |")
    print("| --- | --- | --- | --- |")
    for scenario in args.scenario or sorted(SCENARIOS):
        for driver in args.driver or DRIVERS:
            node = f"{SCENARIOS[scenario]}[{driver}]"
            passed, backs = 0, []
            for _ in range(args.runs):
                ok, back, _took = run_once(node)
                passed += ok
                if back is not None:
                    backs.append(back)
            failed += args.runs - passed
            figure = f"{statistics.median(backs):.3f} ({max(backs):.3f})" if backs else "-"
            print(f"| {scenario} | {driver} | {passed} of {args.runs} | {figure} |", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
