"""dongled recovery benchmark (issue 5): `dongled run` as a real process, fake sticks under
umockdev, the pty modem simulator answering every AT command after `--answer-delay`, and the
test Asterisk (a real TCP AMI server).

Run from the repository root (documented in docs/benchmarks.md):

    umockdev-wrapper .venv/bin/python -m bench.recovery --sticks 1,5,20,50 --cycles 30

`--quick` is the short form CI runs (tests/project/test_bench_smoke.py). Every time is measured in
this process with time.monotonic(): the uevent when umockdev's tty add returns, the config
write and the daemon's log lines when inotify reports them, the reload when the test
Asterisk receives it, the device binding when the test Asterisk's chan_dongle reaches Free.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bench.observe import FsWatch, ProcSample, cpu_ns
from bench.rigs import BenchRig, StampedTestbed, interleaved_return, make_rig, wait
from tests.support.modemsim import Role
from tests.support.rig import PARKED_DATA, ROOT
from tests.support.testbed import FakeStick, Testbed

Result = dict[str, Any]


def out(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def pct(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (no interpolation: every figure is a measured one)."""
    if not values:
        return math.nan
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def spread(values: Sequence[float]) -> dict[str, float]:
    return {"p50": pct(values, 50), "p95": pct(values, 95), "max": max(values, default=math.nan)}


def answered_commands(stick: FakeStick, since: float, until: float) -> list[tuple[float, str]]:
    """Command lines the simulator parsed on the stick's answering ports in [since, until]."""
    found: list[tuple[float, str]] = []
    for port in stick.ports.values():
        if port.role is Role.SILENT:
            continue
        line = b""
        for chunk in port.sim_port.chunks:
            for byte in chunk.data:
                if byte == 0x0D:
                    text = line.decode("ascii", "replace").strip(" \n\t\0")
                    if text.upper().startswith("AT") and since <= chunk.time <= until:
                        found.append((chunk.time, text))
                    line = b""
                else:
                    line += bytes((byte,))
    return sorted(found)


def counters(r: BenchRig) -> dict[str, int]:
    snap = r.status()
    raw = snap.get("counters", {})
    return {k: int(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in after}


def actions_since(r: BenchRig, since: float, name: str) -> list[float]:
    return [t for t, n, _ in r.asterisk.actions if t >= since and n.lower() == name.lower()]


def action_counts(r: BenchRig, since: float, until: float) -> dict[str, int]:
    """AMI actions the test Asterisk received from `since` to `until`, by name."""
    counts: dict[str, int] = {}
    for t, name, _ in r.asterisk.actions:
        if since <= t < until:
            counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def verified_line(i: int, imei: str) -> tuple[str, str]:
    return (f"device dongle{i} runs IMEI {imei}", "")


# ---- scenario 1: one stick, unplug and replug at new numbers -------------------------------


def single_cycle(r: BenchRig, w: FsWatch, i: int, delay: float) -> Result:
    stick, imei, name = r.sticks[i], r.imeis[i], f"dongle{i}"
    alive = r.assert_daemon_alive
    cpu_before = cpu_ns(r.pid)
    t_unplug = time.monotonic()
    r.unplug(i)
    wait(lambda: r.section_data(i) == PARKED_DATA, 10, f"{name} parked", alive)
    wait(
        lambda: r.asterisk.devices_snapshot()[name]["State"] in ("Stopped", "Not connected"),
        10,
        f"{name} stopped",
        alive,
    )
    drop_writes = len(w.conf_versions(t_unplug))
    time.sleep(0.3)  # let the drop's pass finish: the return is measured alone
    before = counters(r)
    t_start = time.monotonic()
    r.replug(i)
    t0 = r.tb.last_tty_add
    data = stick.data_port.devnode
    needle = f"data={data} ".encode()
    marks: dict[str, float] = {}

    def done() -> bool:
        if "write" not in marks and (t := w.first_write(t_start, needle)) is not None:
            marks["write"] = t
        if "ack" not in marks and "write" in marks:
            # since the replug, not since the write: inotify may report the write after the
            # reload that followed it arrived (the drop's pass sends no reload)
            acks = actions_since(r, t_start, "DongleReload") or actions_since(
                r, t_start, "DongleStart"
            )
            if acks:
                marks["ack"] = acks[0]
        if "free" not in marks:
            for t, dev, path, got in r.asterisk.bindings_log:
                if t >= t_start and dev == name and path == data and got == imei:
                    marks["free"] = t
                    break
        if "verified" not in marks:
            t = w.first_line(t_start, f"device {name} runs IMEI {imei} on {data}")
            if t is not None:
                marks["verified"] = t
        return len(marks) == 4

    try:
        wait(done, 30, f"{name} back and verified on {data}", alive)
    except TimeoutError as exc:
        since = {k: round(v - t0, 3) for k, v in marks.items()}
        log = [s.text for s in w.lines(t_start)]
        entry = r.asterisk.devices_snapshot().get(name, {})
        ast = {k: entry.get(k) for k in ("State", "DataSetting", "IMEIState", "DataState")}
        ast_log = r.asterisk.log_messages[-8:]
        cmds = answered_commands(stick, t_start, time.monotonic())
        raise TimeoutError(
            f"{exc}; reached {since}; asterisk {ast}; chan_dongle log {ast_log}; "
            f"AT seen {[(round(t - t0, 3), c) for t, c in cmds]}; daemon log {log}"
        ) from None
    if not r.device_right(i):
        raise AssertionError(f"{name} is not on its stick after the cycle")
    time.sleep(0.2)
    t_end = time.monotonic()
    cpu_cycle = (cpu_ns(r.pid) - cpu_before) / 1e9
    spent = delta(counters(r), before)
    c = max(marks["free"], marks["verified"])
    probe = answered_commands(stick, t_start, marks["write"])
    every = answered_commands(stick, t_start, c)
    return {
        "a_written": marks["write"] - t0,
        "b_reload_ack": marks["ack"] - t0,
        "c_verified": c - t0,
        "probe_cmds": len(probe),
        "modem_cmds": len(every),
        "own_share": c - t0 - delay * len(probe),
        "own_share_excl_asterisk_init": c - t0 - delay * len(every),
        "uevent_to_first_at": (probe[0][0] - t0) if probe else math.nan,
        "last_probe_answer_to_write": (marks["write"] - probe[-1][0] - delay)
        if probe
        else math.nan,
        "ack_to_free": marks["free"] - marks["ack"],
        "free_to_verified_seen": marks["verified"] - marks["free"],
        "drop_writes": drop_writes,
        "cpu_cycle": cpu_cycle,
        "drop_actions": action_counts(r, t_unplug, t_start),
        "return_actions": action_counts(r, t_start, t_end),
        "writes": spent.get("conf_writes", 0),
        "reloads": spent.get("reloads", 0),
        "probes": spent.get("probes", 0),
    }


# ---- scenario 2: a storm ---------------------------------------------------------------------


def storm(r: BenchRig, w: FsWatch, rng: random.Random, window: float) -> Result:
    n = len(r.sticks)
    alive = r.assert_daemon_alive
    before = counters(r)
    t_drop = time.monotonic()
    order = rng.sample(range(n), n)
    for i in order:
        r.tb.unplug(r.sticks[i])
    drop_took = time.monotonic() - t_drop
    wait(
        lambda: all(r.section_data(i) == PARKED_DATA for i in range(n)),
        20,
        "every section parked",
        alive,
    )
    time.sleep(0.5)
    after_drop = counters(r)
    drop = delta(after_drop, before)
    drop_stops = len(actions_since(r, t_drop, "DongleStop"))
    t_start = time.monotonic()
    sticks = [r.sticks[i] for i in rng.sample(range(n), n)]
    t_last = interleaved_return(r.tb, sticks, r.take_ttys, rng, window)
    t_first_write: list[float] = []

    def all_back() -> bool:
        return all(r.device_right(i) for i in range(n))

    wait(all_back, 60, f"all {n} sticks back on their devices", alive)
    verified: list[float] = []
    for i in range(n):
        data = r.sticks[i].data_port.devnode
        needle = f"device dongle{i} runs IMEI {r.imeis[i]} on {data}"
        wait(
            lambda needle=needle: w.first_line(t_start, needle) is not None,  # type: ignore[misc]
            30,
            needle,
            alive,
        )
        seen = w.first_line(t_start, needle)
        assert seen is not None
        verified.append(seen)
    free = [t for t, _dev, _path, _imei in r.asterisk.bindings_log if t >= t_start]
    time.sleep(0.5)
    ret = delta(counters(r), after_drop)
    writes = w.conf_versions(t_start)
    t_first_write = [t for t, _ in writes]
    reload_acks = actions_since(r, t_start, "DongleReload")
    return {
        "all_verified": max(max(verified), max(free)) - t_last,
        "first_write_after_last_uevent": (t_first_write[0] - t_last) if t_first_write else None,
        "first_reload_after_last_uevent": (reload_acks[0] - t_last) if reload_acks else None,
        "return_writes": ret.get("conf_writes", 0),
        "return_reloads": ret.get("reloads", 0),
        "return_probes": ret.get("probes", 0),
        "return_writes_seen": len(writes),
        "return_reloads_seen": len(reload_acks),
        "drop_writes": drop.get("conf_writes", 0),
        "drop_reloads": drop.get("reloads", 0),
        "drop_stops": drop_stops,
        "drop_took": drop_took,
    }


# ---- scenarios 3 and 4: footprint and `dongled status` ---------------------------------------


def footprint(r: BenchRig, idle: float, strace_for: float, tmp: Path) -> Result:
    pid = r.pid
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    if not any(b"dongled" in part for part in cmdline):
        raise RuntimeError(f"pid {pid} is not the daemon: {cmdline!r}")
    time.sleep(1.0)
    start = ProcSample.take(pid)
    time.sleep(idle)
    end = ProcSample.take(pid)
    dt = end.t - start.t
    result: Result = {
        "pid_cmdline": " ".join(p.decode() for p in cmdline if p),
        "cpu_s_so_far": start.cpu_s,
        "rss_before_idle_mib": start.rss_kib / 1024,
        "rss_after_idle_mib": end.rss_kib / 1024,
        "rss_peak_mib": end.hwm_kib / 1024,
        "threads": end.threads,
        "idle_seconds": dt,
        "idle_cpu_percent": 100 * (end.cpu_s - start.cpu_s) / dt,
        "idle_wakeups_per_s": (end.voluntary - start.voluntary) / dt,
        "idle_involuntary_per_s": (end.involuntary - start.involuntary) / dt,
    }
    if strace_for > 0 and shutil.which("strace"):
        result["strace"] = strace_idle(pid, strace_for, tmp)
    return result


def strace_idle(pid: int, seconds: float, tmp: Path) -> Result:
    """Every syscall of every thread of the idle daemon for `seconds`."""
    log = tmp / "strace.txt"
    proc = subprocess.Popen(
        ["strace", "-f", "-qq", "-o", str(log), "-p", str(pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(seconds)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    if not log.exists():
        return {"error": err.decode(errors="replace").strip()[:300]}
    calls: dict[str, int] = {}
    for line in log.read_text(errors="replace").splitlines():
        body = line.split(None, 1)[1] if line[:1].isdigit() else line
        name = body.split("(", 1)[0].strip()
        if name and name.isidentifier():
            calls[name] = calls.get(name, 0) + 1
    # attaching shows each thread's pending call once (resumed): anything beyond is activity
    return {"seconds": seconds, "syscalls": dict(sorted(calls.items()))}


def start_py_spy(pid: int, path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """Sample the daemon's stacks (py-spy, 250 Hz, idle frames left out) until stopped."""
    path.parent.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    cmd = [
        spy,
        "record",
        "--pid",
        str(pid),
        "--rate",
        "250",
        "--format",
        "raw",
        "--nolineno",
        "-o",
        str(path),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # attached before the storms begin
    return proc, path


def stop_py_spy(proc: subprocess.Popen[bytes], path: Path) -> Result:
    """Top functions by samples where they were running (self) and on the stack (total)."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
    if not path.exists():
        return {"error": "py-spy wrote nothing"}
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = [
            f.split(" (", 1)[0] + " " + f.rsplit("/", 1)[-1].rstrip(")") for f in stack.split(";")
        ]
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            total[frame] = total.get(frame, 0) + count
    top = sorted(own.items(), key=lambda kv: -kv[1])[:15]
    top_total = sorted(total.items(), key=lambda kv: -kv[1])[:25]
    return {"file": str(path), "samples": samples, "self": top, "total": top_total}


def status_timing(r: BenchRig, runs: int) -> Result:
    """Wall time of `dongled status` as an administrator runs it (no umockdev preload)."""
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "UMOCKDEV_DIR")} | {
        "PYTHONPATH": r.code_root or str(ROOT)
    }
    result: Result = {}
    for label, extra in (("status", []), ("status --json", ["--json"])):
        times: list[float] = []
        codes: set[int] = set()
        for _ in range(runs):
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "dongled", "--config", str(r.settings), "status", *extra],
                env=env,
                capture_output=True,
                check=False,
                cwd=str(ROOT),
            )
            times.append(time.perf_counter() - start)
            codes.add(proc.returncode)
        output = (proc.stdout + proc.stderr).decode(errors="replace")[-600:]
        result[label] = {
            **spread(times),
            "min": min(times),
            "exit_codes": sorted(codes),
            "last_output": output,
        }
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "pass"], env=env, capture_output=True, check=False, cwd=str(ROOT)
    )
    result["bare_python_startup"] = time.perf_counter() - start
    return result


# ---- one rig per stick count -------------------------------------------------------------


@contextlib.contextmanager
def bench_rig(
    n: int, delay: float, keep: bool, code_root: str | None = None
) -> Iterator[tuple[BenchRig, FsWatch, Path]]:
    tmp = Path(tempfile.mkdtemp(prefix=f"dongled-bench-{n}-"))
    try:
        with StampedTestbed() as tb:
            r = make_rig(tmp, tb, n, delay, code_root)
            w = FsWatch(r.conf, tmp / "daemon.log", r.state_dir)
            try:
                r.wait_all_right(timeout=30 + n)
                r.start_daemon()
                wait(
                    lambda: (
                        f"{n} sticks, {n} on their devices" in str(r.status().get("summary", ""))
                    ),
                    30 + n,
                    "every device verified after start-up",
                    r.assert_daemon_alive,
                )
                yield r, w, tmp
            finally:
                w.close()
                r.close()
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def run_size(n: int, args: argparse.Namespace, rng: random.Random) -> Result:
    res: Result = {"sticks": n, "loadavg_before": os.getloadavg()}
    with bench_rig(n, args.answer_delay, args.keep, args.daemon_code) as (r, w, tmp):
        boot = ProcSample.take(r.pid)
        res["startup"] = {
            "counters": counters(r),
            "cpu_s": boot.cpu_s,
            "rss_mib": boot.rss_kib / 1024,
        }
        spy = start_py_spy(r.pid, Path(args.py_spy) / f"daemon-{n}.txt") if args.py_spy else None
        cycles: list[Result] = []
        failures: list[str] = []
        for k in range(args.cycles):
            try:
                cycles.append(single_cycle(r, w, k % n, args.answer_delay))
            except (TimeoutError, AssertionError) as exc:
                failures.append(f"cycle {k}: {exc}")
                r.assert_daemon_alive()
        res["single"] = {"cycles": cycles, "failures": failures}
        storms: list[Result] = []
        storm_failures: list[str] = []
        for k in range(args.storms):
            try:
                storms.append(storm(r, w, rng, args.window))
            except (TimeoutError, AssertionError) as exc:
                storm_failures.append(f"storm {k}: {exc}")
                r.assert_daemon_alive()
                break  # the sticks are in an unknown state
        res["storm"] = {"storms": storms, "failures": storm_failures}
        if spy is not None:
            res["profile"] = stop_py_spy(*spy)
        if n == args.footprint_sticks:
            time.sleep(0.5)
            res["footprint"] = footprint(r, args.idle, args.strace, tmp)
            if args.status_runs > 0:  # --status-runs 0: footprint only
                res["status"] = status_timing(r, args.status_runs)
        res["daemon_log_tail"] = r.daemon_log().splitlines()[-15:]
        res["tmp"] = str(tmp)
    res["loadavg_after"] = os.getloadavg()
    return res


# ---- the report --------------------------------------------------------------------------


def ms(x: float | None) -> str:
    return "-" if x is None or math.isnan(x) else f"{1000 * x:.0f}"


def three(values: Sequence[float]) -> str:
    if not values:
        return "-"
    s = spread(values)
    return f"{ms(s['p50'])} / {ms(s['p95'])} / {ms(s['max'])}"


def span(values: Sequence[int]) -> str:
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    return str(lo) if lo == hi else f"{lo}-{hi}"


def report(results: list[Result], args: argparse.Namespace) -> str:
    lines: list[str] = []
    add = lines.append
    sizes = [res["sticks"] for res in results]
    head = "| | " + " | ".join(f"{n} stick{'s' if n > 1 else ''}" for n in sizes) + " |"
    rule = "|---" * (len(sizes) + 1) + "|"
    add(f"Single-stick recovery, ms, p50 / p95 / max (answer_delay {args.answer_delay:g} s)")
    add("")
    add(head)
    add(rule)
    rows = [
        ("cycles measured (failed)", None),
        ("(a) last tty uevent -> config written", "a_written"),
        ("(b) -> reload acknowledged (AMI)", "b_reload_ack"),
        ("(c) -> verified (Free + right IMEI, and dongled logged it)", "c_verified"),
        ("own share = (c) - probe's AT commands x delay", "own_share"),
        ("own share excl. chan_dongle's init AT too", "own_share_excl_asterisk_init"),
        ("  uevent -> first AT command of the probe", "uevent_to_first_at"),
        ("  last probe answer -> config written", "last_probe_answer_to_write"),
        ("  reload ack -> device Free (test Asterisk init)", "ack_to_free"),
        ("  device Free -> dongled's 'verified' line seen", "free_to_verified_seen"),
        ("daemon CPU time per cycle (drop and return; schedstat)", "cpu_cycle"),
    ]
    for label, key in rows:
        cells = []
        for res in results:
            cycles = res["single"]["cycles"]
            if key is None:
                cells.append(f"{len(cycles)} ({len(res['single']['failures'])})")
            else:
                cells.append(three([c[key] for c in cycles]))
        add(f"| {label} | " + " | ".join(cells) + " |")
    for side in ("drop", "return"):
        cells = []
        for res in results:
            totals: dict[str, int] = {}
            cycles = res["single"]["cycles"]
            for c in cycles:
                for name, count in c.get(f"{side}_actions", {}).items():
                    totals[name] = totals.get(name, 0) + count
            cells.append(", ".join(f"{n} {v / max(1, len(cycles)):.1f}" for n, v in totals.items()))
        add(f"| AMI actions per {side} (mean) | " + " | ".join(cells) + " |")
    for label, key in (
        ("AT commands of the probe", "probe_cmds"),
        ("AT commands answered until verified", "modem_cmds"),
        ("config writes / reloads per return", None),
    ):
        cells = []
        for res in results:
            cycles = res["single"]["cycles"]
            if key is None:
                writes = span([c["writes"] for c in cycles])
                cells.append(f"{writes} / {span([c['reloads'] for c in cycles])}")
            else:
                cells.append(span([c[key] for c in cycles]))
        add(f"| {label} | " + " | ".join(cells) + " |")
    add("")
    add(f"Storm: every stick re-enumerates within {args.window:g} s, random interleaved order")
    add("")
    add(head)
    add(rule)
    storm_rows: list[tuple[str, str, str]] = [
        ("storms measured (failed)", "", "count"),
        ("last uevent -> all verified, ms p50 / p95 / max", "all_verified", "ms"),
        ("last uevent -> first return write, ms", "first_write_after_last_uevent", "ms"),
        ("last uevent -> reload received, ms", "first_reload_after_last_uevent", "ms"),
        ("config writes on the return", "return_writes", "int"),
        ("reloads on the return", "return_reloads", "int"),
        ("probes on the return", "return_probes", "int"),
        ("config writes on the drop (parking)", "drop_writes", "int"),
        ("DongleStop on the drop", "drop_stops", "int"),
        ("reloads on the drop", "drop_reloads", "int"),
        ("time the testbed took to drop them all, ms p50 / max", "drop_took", "ms2"),
    ]  # fmt: skip
    for label, key, kind in storm_rows:
        cells = []
        for res in results:
            storms = res["storm"]["storms"]
            if kind == "count":
                cells.append(f"{len(storms)} ({len(res['storm']['failures'])})")
            elif kind == "ms":
                cells.append(three([s[key] for s in storms if s[key] is not None]))
            elif kind == "ms2":
                vals = [s[key] for s in storms]
                cells.append(f"{ms(pct(vals, 50))} / {ms(max(vals, default=None))}")
            else:
                cells.append(span([s[key] for s in storms]))
        add(f"| {label} | " + " | ".join(cells) + " |")
    for res in results:
        fp = res.get("footprint")
        if fp is None:
            continue
        add("")
        add(f"Footprint with {res['sticks']} sticks (pid = python: {fp['pid_cmdline']})")
        add("")
        add("| metric | value |")
        add("|---|---|")
        boot = res["startup"]
        add(f"| CPU time from exec to all verified | {boot['cpu_s']:.2f} s |")
        add(f"| RSS when all verified after start-up | {boot['rss_mib']:.1f} MiB |")
        add(f"| CPU time after all cycles and storms | {fp['cpu_s_so_far']:.2f} s |")
        add(f"| RSS after all cycles and storms | {fp['rss_before_idle_mib']:.1f} MiB |")
        add(f"| RSS after {fp['idle_seconds']:.0f} s idle (peak) | "
            f"{fp['rss_after_idle_mib']:.1f} MiB ({fp['rss_peak_mib']:.1f} MiB) |")  # fmt: skip
        add(f"| threads | {fp['threads']} |")
        add(f"| CPU while idle | {fp['idle_cpu_percent']:.3f} % |")
        add(f"| wake-ups while idle (voluntary ctxt switches, all threads) | "
            f"{fp['idle_wakeups_per_s']:.2f} /s |")  # fmt: skip
        st = fp.get("strace")
        if st is not None:
            calls = st.get("syscalls", st.get("error"))
            add(f"| syscalls while idle, strace -f over {args.strace:g} s | {calls} |")
        stat = res.get("status")
        if stat is not None:  # None: --status-runs 0
            for label in ("status", "status --json"):
                s = stat[label]
                add(f"| `dongled {label}` wall, ms min / p50 / p95 / max ({args.status_runs} "
                    f"runs) | {ms(s['min'])} / {ms(s['p50'])} / {ms(s['p95'])} / {ms(s['max'])} "
                    f"(exit {s['exit_codes']}) |")  # fmt: skip
            add(f"| bare `python -c pass` wall | {ms(stat['bare_python_startup'])} ms |")
    add("")
    add("Load average (1 min) before / after each size: " + ", ".join(
        f"{res['sticks']}: {res['loadavg_before'][0]:.2f} / {res['loadavg_after'][0]:.2f}"
        for res in results
    ))  # fmt: skip
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.recovery", description=__doc__.split("\n")[0])
    p.add_argument("--sticks", default="1,5,20,50", help="stick counts, comma-separated")
    p.add_argument("--cycles", type=int, default=30, help="single-stick cycles per count")
    p.add_argument("--storms", type=int, default=10, help="storms per count")
    p.add_argument("--window", type=float, default=2.0, help="seconds a storm's return spans")
    p.add_argument("--answer-delay", type=float, default=0.03, help="modem answer delay, s")
    p.add_argument("--footprint-sticks", type=int, default=20, help="count for footprint/status")
    p.add_argument("--idle", type=float, default=60.0, help="idle seconds for the footprint")
    p.add_argument("--strace", type=float, default=10.0, help="seconds of strace (0: none)")
    p.add_argument("--status-runs", type=int, default=20)
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--json", metavar="FILE", help="write every measurement as JSON")
    p.add_argument(
        "--py-spy", metavar="DIR", help="profile the daemon (py-spy) during cycles and storms"
    )
    p.add_argument(
        "--daemon-code",
        metavar="DIR",
        help="run the dongled/ of another checkout (e.g. an older commit's worktree) in this "
        "rig, so that only the daemon differs",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary directories")
    p.add_argument("--quick", action="store_true", help="the short form CI runs (no timing goal)")
    args = p.parse_args(argv)
    if args.quick:
        args.sticks, args.cycles, args.storms, args.window = "2", 2, 1, 0.3
        args.footprint_sticks, args.idle, args.strace, args.status_runs = 2, 1.0, 0.0, 2
    args.sizes = [int(x) for x in str(args.sticks).split(",") if x.strip()]
    return args


def _git(*args: str, cwd: str | None = None) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=cwd or str(ROOT), capture_output=True, text=True, check=False
    )
    return proc.stdout.strip()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not Testbed.available():
        out("run me under umockdev-wrapper: umockdev-wrapper .venv/bin/python -m bench.recovery")
        return 2
    rng = random.Random(args.seed)
    results: list[Result] = []
    started = datetime.datetime.now(datetime.UTC)
    meta = {
        "started": started.isoformat(timespec="seconds"),
        "argv": sys.argv,
        "cpus": os.cpu_count(),
        "machine": platform.platform(),
        "python": platform.python_version(),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "dongled_dirty": _git("status", "--porcelain", "dongled"),
        "daemon_code": args.daemon_code or str(ROOT),
        "daemon_commit": _git("rev-parse", "--short", "HEAD", cwd=args.daemon_code),
    }
    for n in args.sizes:
        out(f"--- {n} sticks ...")
        t = time.monotonic()
        results.append(run_size(n, args, rng))
        out(f"--- {n} sticks done in {time.monotonic() - t:.0f} s")
        if args.json:  # after each size: a later size that dies keeps the earlier figures
            Path(args.json).write_text(
                json.dumps({"meta": meta, "args": vars(args), "results": results}, indent=1)
            )
    out(f"commit {meta['commit']}; uncommitted in dongled/: {meta['dongled_dirty'] or 'none'}")
    if args.daemon_code:
        out(f"daemon: {args.daemon_code} at {meta['daemon_commit']}")
    out(report(results, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
