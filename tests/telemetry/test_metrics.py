"""The Prometheus endpoint and textfile of a running daemon, scraped for real."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from dongled.asterisk.device import DeviceEntry
from dongled.asterisk.network import Registration
from dongled.telemetry.metrics import Metrics
from tests.support.marks import needs_umockdev
from tests.support.metrics_scrape import free_port, samples, scrape
from tests.support.modemsim import E1550_USB, EC25, EC25_USB, StickSim
from tests.support.rig import make_imei, rig, wait_until


@needs_umockdev
def test_metrics_endpoint_and_textfile(tmp_path: Path) -> None:
    port = free_port()
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
            m = scrape(port)
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
        assert m["dongled_device_registered{device=dongle0}"] == 1
        on_disk = samples(textfile.read_text())
        assert on_disk["dongled_sticks_present"] == 2


def test_a_reading_that_became_unknown_leaves_no_stale_signal() -> None:
    m = Metrics()
    up = DeviceEntry.from_fields(
        {"Device": "dongle0", "State": "Free", "GSMRegistrationStatus": "Registered, roaming"}
        | {"RSSI": "20, -73 dBm"}
    )
    m.devices({"dongle0": up})
    assert m.registry.get_sample_value("dongled_device_registered", {"device": "dongle0"}) == 1
    assert m.registry.get_sample_value("dongled_device_rssi_dbm", {"device": "dongle0"}) == -73
    gone = replace(up, state="Not connected", registration=Registration.UNKNOWN, rssi_dbm=None)
    m.devices({"dongle0": gone})
    assert m.registry.get_sample_value("dongled_device_registered", {"device": "dongle0"}) == 0
    assert m.registry.get_sample_value("dongled_device_rssi_dbm", {"device": "dongle0"}) is None
    # A line never read at all (prometheus-client 0.16, Debian 12's, raised KeyError here and
    # failed every pass of a daemon with metrics on: seen against the real chan_dongle).
    m.devices({"dongle1": replace(gone, device="dongle1")})
    assert m.registry.get_sample_value("dongled_device_registered", {"device": "dongle1"}) == 0


@needs_umockdev
@pytest.mark.parametrize("personality", ["chan_dongle", "quectel-im", "quectel-re"])
def test_each_line_reads_its_registration_and_signal(tmp_path: Path, personality: str) -> None:
    """Three sticks as a box has them: one on its network with a good signal (+CSQ 20: -73
    dBm), one its network does not take (searching, +CSQ 17), one without a SIM. The
    endpoint reads what the driver says of each: 1 and -73, 0 and -79, 0 and no signal."""
    port = free_port()
    lte = personality.startswith("quectel")
    sim, model = (EC25, EC25_USB) if lte else (StickSim, E1550_USB)
    sims = [
        sim(make_imei(0), "250010000000000", csq=20),
        sim(make_imei(1), "250010000000001", registered=False),
        sim(make_imei(2), None),  # no SIM
    ]
    with rig(tmp_path, 3, model=model, sims=sims, personality=personality) as r:
        r.wait_all_right([0], timeout=15)
        # the searching one's device is up (IMEI read), the SIM-less one is not serving
        r.asterisk.wait_for_state("dongle1", "GSM not registered", 15)
        with r.settings.open("a") as fh:
            fh.write(f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
        r.start_daemon()
        registered = "dongled_device_registered{device=%s}"
        rssi = "dongled_device_rssi_dbm{device=%s}"
        deadline = time.monotonic() + 10
        while True:  # the gauges follow the daemon's first listing
            m = scrape(port)
            if all(registered % f"dongle{i}" in m for i in range(3)):
                break
            assert time.monotonic() < deadline, m
            time.sleep(0.05)
        assert (m[registered % "dongle0"], m[rssi % "dongle0"]) == (1, -73)
        assert (m[registered % "dongle1"], m[rssi % "dongle1"]) == (0, -79)
        assert m[registered % "dongle2"] == 0
        assert rssi % "dongle2" not in m  # not connected or not initialized: no reading
        r.assert_daemon_alive()


@needs_umockdev
def test_a_line_the_network_drops_reads_0_without_a_pass(tmp_path: Path) -> None:
    """The network drops a running line's SIM: the modem says `+CREG: 2`, the driver shows
    `GSM not registered`, and nothing else happens (no USB event, no pass). The gauges follow
    the daemon's periodic listing: 0, well before the line-down watch hands the line over."""
    port = free_port()
    with rig(tmp_path, 1, sims=[StickSim(make_imei(0), "250010000000000", csq=20)]) as r:
        r.wait_all_right(timeout=10)
        # a listing every 30/4 s; the hand-over would come only after 30 s
        r.write_settings(offline_after=30.0, tables={"metrics": {"listen": f"127.0.0.1:{port}"}})
        r.start_daemon()
        registered = "dongled_device_registered{device=dongle0}"
        wait_until(lambda: scrape(port).get(registered) == 1, 10, "registered 1 at start")
        before = scrape(port)
        r.sims[0].registered = False
        r.sims[0].report("+CREG: 2")  # searching
        r.sims[0].report("^RSSI:9")  # and a weaker signal: -95 dBm
        r.asterisk.wait_for_state("dongle0", "GSM not registered", 5)
        wait_until(lambda: scrape(port).get(registered) == 0, 10, "registered 0")
        after = scrape(port)
        assert after["dongled_device_rssi_dbm{device=dongle0}"] == -95
        for counter in ("dongled_conf_writes_total", "dongled_reloads_total"):
            assert after[counter] == before[counter]  # no pass did it
        assert after.get("dongled_lines_down_total", 0) == 0  # nor the line-down hand-over
