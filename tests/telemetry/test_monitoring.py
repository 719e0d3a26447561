"""monitoring/: the alerting rules and the Grafana dashboard ask only for metrics dongled
exports (a renamed metric would leave a panel empty and an alert silent forever). promtool's
own checks (`check rules`, `test rules`) run in .ci/run, and here where promtool is installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dongled.telemetry.metrics import Metrics

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
RULES = MONITORING / "dongled.rules.yml"
DASHBOARD = MONITORING / "grafana-dongled.json"
_NAME = re.compile(r"\bdongled_[a-z0-9_]+")


def _exported() -> set[str]:
    m = Metrics()
    # labelled families show samples only once a label is used, as the daemon does
    m.rssi.labels(device="dongle0").set(-73)
    m.registered.labels(device="dongle0").set(1)
    m.recoveries.labels(step="restart").inc()
    return {s.name for family in m.registry.collect() for s in family.samples}


def _dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in doc["templating"]["list"] if "definition" in v]
    return exprs


def test_the_dashboard_queries_only_exported_metrics() -> None:
    exported = _exported()
    exprs = _dashboard_exprs()
    used = {name for e in exprs for name in _NAME.findall(e)}
    assert used and used <= exported, used - exported
    # every metric of the fleet view is on the dashboard somewhere
    families = {n.removesuffix("_total").removesuffix("_bucket") for n in used}
    for name in exported - {n for n in exported if n.endswith(("_created", "_sum", "_count"))}:
        assert name.removesuffix("_total").removesuffix("_bucket") in families, name


def test_the_rules_query_only_exported_metrics() -> None:
    lines = RULES.read_text().splitlines()
    exprs = [line.split("expr:", 1)[1] for line in lines if "expr:" in line]
    used = {name for e in exprs for name in _NAME.findall(e)}
    assert used and used <= _exported(), used - _exported()


def test_promtool_checks_and_tests_the_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (.ci/run installs it and runs both checks)")
    for args in (["check", "rules", str(RULES)], ["test", "rules", "dongled.rules.test.yml"]):
        out = subprocess.run(
            [promtool, *args], cwd=MONITORING, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stdout + out.stderr
