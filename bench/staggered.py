"""The recovery benchmark's staggered storm (issue 11): after a hub dip real sticks come back
2-15 s after power returns, spread over seconds. Does each line come back as soon as its own
stick is identified, or does it wait for its slowest sibling?

For each storm every stick is unplugged (and its section parked), then the sticks come back
whole at random moments of `--window` seconds, in random order, on new tty numbers. Per line:
its own stick's last uevent -> its device verified (the daemon's "device dongleN runs IMEI"
line). Also the hub case (`--window` 0.2 s: all at once), whose writes and reloads are
counted: it should still cost one write and one reload.

Run from the repository root (documented in docs/benchmarks.md):

    umockdev-wrapper .venv/bin/python -m bench.staggered --sticks 20 --window 10 --storms 3
"""

from __future__ import annotations

import argparse
import random
import re
import time
from collections.abc import Sequence

from bench.observe import FsWatch
from bench.recovery import bench_rig, counters, delta, ms, out, spread
from bench.rigs import BenchRig, interleaved_return, wait
from tests.support.rig import PARKED_DATA

EACH = 0.05  # one stick's own uevents (usb_device, interfaces, ttys) come within this


PHASES = ("identified", "written", "verified")  # per line, each from the one before


def staggered_storm(
    r: BenchRig, w: FsWatch, rng: random.Random, window: float
) -> tuple[list[float], dict[str, list[float]], dict[str, int]]:
    """Per line: own last uevent -> verified (s), the same split into its phases (own last
    uevent -> stick identified -> its data port in the written file -> verified), and the
    return's counter deltas."""
    n = len(r.sticks)
    alive = r.assert_daemon_alive
    for i in rng.sample(range(n), n):
        r.tb.unplug(r.sticks[i])
    wait(lambda: all(r.section_data(i) == PARKED_DATA for i in range(n)), 20, "parked", alive)
    time.sleep(0.5)
    before = counters(r)
    start = time.monotonic()
    last_adds: dict[str, float] = {}
    sticks = [r.sticks[i] for i in rng.sample(range(n), n)]
    interleaved_return(r.tb, sticks, r.take_ttys, rng, window, each=EACH, last_adds=last_adds)
    wait(lambda: all(r.device_right(i) for i in range(n)), 60, "every line back", alive)
    lines = []
    phases: dict[str, list[float]] = {name: [] for name in PHASES}
    for i, stick in enumerate(r.sticks):
        needle = f"device dongle{i} runs IMEI {r.imeis[i]} on {stick.data_port.devnode}"
        wait(lambda needle=needle: w.first_line(start, needle) is not None, 30, needle, alive)  # type: ignore[misc]
        seen = w.first_line(start, needle)
        identified = w.first_line(start, f"is IMEI {r.imeis[i]} ")
        written = _first_naming(w, start, stick.data_port.devnode)
        assert seen is not None
        assert identified is not None
        assert written is not None
        lines.append(seen - last_adds[stick.name])
        phases["identified"].append(identified - last_adds[stick.name])
        phases["written"].append(written - identified)
        phases["verified"].append(seen - written)
    time.sleep(0.5)
    return lines, phases, delta(counters(r), before)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.staggered", description=__doc__.split("\n")[0]
    )
    p.add_argument("--sticks", type=int, default=20)
    p.add_argument("--window", type=float, default=10.0, help="seconds the returns span")
    p.add_argument("--storms", type=int, default=3, help="staggered storms (and as many hub ones)")
    p.add_argument("--answer-delay", type=float, default=0.03, help="modem answer delay, s")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument(
        "--daemon-code", help="another checkout whose dongled/ the daemon runs (the rig is ours)"
    )
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    rows: list[tuple[str, list[float], dict[str, list[float]], list[dict[str, int]]]] = []
    with bench_rig(args.sticks, args.answer_delay, False, args.daemon_code) as (r, w, _tmp):
        for name, window in (
            (f"staggered over {args.window:g} s", args.window),
            ("hub (0.2 s)", 0.2),
        ):
            per_line: list[float] = []
            phases: dict[str, list[float]] = {phase: [] for phase in PHASES}
            deltas: list[dict[str, int]] = []
            for _ in range(args.storms):
                lines, split, d = staggered_storm(r, w, rng, window)
                per_line += lines
                for phase in PHASES:
                    phases[phase] += split[phase]
                deltas.append(d)
            rows.append((name, per_line, phases, deltas))
    delay = args.answer_delay
    out(f"{args.sticks} sticks, {args.storms} storms each, modem answer delay {delay:g} s")
    if args.daemon_code:
        out(f"daemon: {args.daemon_code}")
    out(
        "| return | lines | own last uevent -> verified p50 / p95 / max (ms) "
        "| writes per storm | reloads per storm |"
    )
    out("| --- | --- | --- | --- | --- |")
    for name, per_line, _phases, deltas in rows:
        writes = ", ".join(str(d.get("conf_writes", 0)) for d in deltas)
        reloads = ", ".join(str(d.get("reloads", 0)) for d in deltas)
        out(f"| {name} | {len(per_line)} | {_figures(per_line)} | {writes} | {reloads} |")
    out("")
    out(
        "| return | own last uevent -> identified (probe) | identified -> in the file "
        "(waiting for a pass) | in the file -> verified (reload, Asterisk's init) |"
    )
    out("| --- | --- | --- | --- |")
    for name, _per_line, by_phase, _deltas in rows:
        cells = " | ".join(_figures(by_phase[phase]) for phase in PHASES)
        out(f"| {name} | {cells} |")
    return 0


def _first_naming(w: FsWatch, since: float, devnode: str) -> float | None:
    """When dongle.conf first named `devnode` as a data port (ttyUSB1 is not ttyUSB12)."""
    needle = re.compile(rb"^data=" + re.escape(devnode.encode()) + rb"(?![0-9])", re.M)
    for t, content in w.conf_versions(since):
        if needle.search(content):
            return t
    return None


def _figures(values: list[float]) -> str:
    f = spread(values)
    return f"{ms(f['p50'])} / {ms(f['p95'])} / {ms(f['max'])}"


if __name__ == "__main__":
    raise SystemExit(main())
