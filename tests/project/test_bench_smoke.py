"""The benchmark's short form runs end to end and produces numbers (no time is asserted:
the figures belong in docs/benchmarks.md, not in pass/fail)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.marks import needs_umockdev

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.e2e,
    needs_umockdev,
]


def _bench(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A benchmark module as its own process (it runs its own testbed, under the wrapper
    this process runs under)."""
    env = {k: v for k, v in os.environ.items() if k != "UMOCKDEV_DIR"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=str(ROOT),
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )


def _number(x: object) -> bool:
    return isinstance(x, int | float) and not math.isnan(x) and x >= 0


def test_quick_benchmark_produces_numbers(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = _bench("bench.recovery", "--quick", "--json", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Single-stick recovery" in proc.stdout
    (res,) = json.loads(out.read_text())["results"]
    cycles = res["single"]["cycles"]
    assert cycles, res["single"]["failures"]
    for cycle in cycles:
        for key in ("a_written", "b_reload_ack", "c_verified", "own_share"):
            assert _number(cycle[key]), (key, cycle)
        assert cycle["probe_cmds"] > 0
        assert cycle["cpu_cycle"] > 0
        assert cycle["return_actions"].get("DongleReload") == 1, cycle["return_actions"]
        assert cycle["drop_actions"].get("DongleStop") == 1, cycle["drop_actions"]
    storms = res["storm"]["storms"]
    assert storms, res["storm"]["failures"]
    assert _number(storms[0]["all_verified"])
    fp = res["footprint"]
    assert fp["rss_before_idle_mib"] > 0
    assert res["startup"]["rss_mib"] > 0
    assert _number(fp["idle_cpu_percent"])
    assert _number(fp["idle_wakeups_per_s"])
    assert _number(res["status"]["status"]["p50"])


def test_quick_benchmark_runs_another_checkouts_daemon(tmp_path: Path) -> None:
    """--daemon-code: the daemon's code from a directory of choice (here this checkout's own,
    through the same path an older worktree takes: its PYTHONPATH and its settings file)."""
    out = tmp_path / "bench.json"
    proc = _bench("bench.recovery", "--quick", "--daemon-code", str(ROOT), "--json", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"daemon: {ROOT} at " in proc.stdout
    doc = json.loads(out.read_text())
    assert doc["meta"]["daemon_code"] == str(ROOT)
    (res,) = doc["results"]
    assert res["single"]["cycles"], res["single"]["failures"]


def test_restart_benchmark_measures_both_cases() -> None:
    proc = _bench("bench.restart", "--sticks", "2", "--runs", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith(("| absent", "| renum"))]
    assert len(rows) == 2, proc.stdout
    for row in rows:  # "| case | a / b / c | d / e / f |": six figures in ms
        figures = row.replace("|", "/").split("/")[2:]
        assert all(float(f.strip().split()[0]) > 0 for f in figures if f.strip()), row


def test_edits_benchmark_measures_each_driver() -> None:
    proc = _bench("bench.edits", "--runs", "1", "--idle", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {
        line.split("|")[1].strip(): line
        for line in proc.stdout.splitlines()
        if "| quectel" in line or "| chan_dongle" in line
    }
    assert set(rows) == {"chan_dongle", "quectel-im", "quectel-re"}, proc.stdout
    for row in rows.values():  # save -> file put back, save -> right: measured, in ms
        cells = [c.strip() for c in row.split("|")[2:4]]
        assert all(float(c.split(" / ")[0]) > 0 for c in cells), row
