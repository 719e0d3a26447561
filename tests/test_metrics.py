"""The Prometheus endpoint and textfile of a running daemon, scraped for real."""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from dongled.metrics import rssi_dbm
from tests.support.marks import needs_umockdev
from tests.support.rig import rig


def samples(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    # untyped in prometheus-client 0.16 (Debian 12), typed in later releases
    families = text_string_to_metric_families(text)  # type: ignore[no-untyped-call,unused-ignore]
    for family in families:
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def test_rssi_parsing() -> None:
    assert rssi_dbm("20, -73 dBm") == -73.0
    assert rssi_dbm("99, unknown") is None


@needs_umockdev
def test_metrics_endpoint_and_textfile(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    textfile = tmp_path / "dongled.prom"
    with rig(tmp_path, 2) as r:
        r.wait_all_right(timeout=10)
        with r.settings.open("a") as fh:
            fh.write(f'[metrics]\nlisten = "127.0.0.1:{port}"\ntextfile = "{textfile}"\n')
        r.start_daemon()
        r.unplug(0)
        time.sleep(0.3)
        r.replug(0)
        r.wait_all_right()
        deadline = time.monotonic() + 5
        while True:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
            m = samples(body.decode())
            settled = m.get("dongled_recovery_seconds_count", 0) >= 1
            # The scrape runs in prometheus_client's thread: the gauges follow the histogram a
            # moment later (the next status publish); a scrape between the two saw 1 once.
            if (settled and m.get("dongled_devices_verified") == 2) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert m["dongled_sticks_present"] == 2
        assert m["dongled_devices_verified"] == 2
        assert m["dongled_reenumerations_total"] == 1
        assert m["dongled_recovery_seconds_count"] == 1
        assert m["dongled_conf_writes_total"] == 2  # parked, then re-linked
        assert m["dongled_reloads_total"] == 1
        assert "dongled_device_registered{device=dongle0}" in m
        on_disk = samples(textfile.read_text())
        assert on_disk["dongled_sticks_present"] == 2
