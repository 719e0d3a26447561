"""A line's own life against the real drivers: registration and signal as monitoring reads
them, a line the network drops, a device its driver cannot bring up, a stick slow to boot."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.real.drivers import SINGLE, real_rig, sim_for, verbs
from tests.support.metrics_scrape import free_port, scrape
from tests.support.rig import journal, wait_until

FAST: dict[str, object] = {"backoff": 0.5, "backoff_max": 0.5, "max_rounds": 2}


@pytest.mark.parametrize("driver", SINGLE)
def test_each_line_reads_its_registration_and_signal(tmp_path: Path, driver: str) -> None:
    """One stick on its network with a good signal (+CSQ 20: -73 dBm), one its network does
    not take (searching), one without a SIM: the metrics read what the real driver lists,
    1 and -73, 0 and -79, 0. (Without a SIM, RE keeps the device up and lists the signal the
    modem measures; chan_dongle and IM drop it: no signal.)"""
    port = free_port()
    sims = [
        sim_for(driver, 0, csq=20),
        sim_for(driver, 1, registered=False),
        sim_for(driver, 2, imsi=None),
    ]
    with real_rig(tmp_path, driver, sims=sims) as r:
        r.wait_all_right([0], timeout=30)
        r.asterisk.wait_for_state("dongle1", "GSM not registered", 30)
        r.write_settings(tables={"metrics": {"listen": f"127.0.0.1:{port}"}})
        r.start_daemon()
        registered = "dongled_device_registered{device=%s}"
        rssi = "dongled_device_rssi_dbm{device=%s}"
        wait_until(
            lambda: all(registered % f"dongle{i}" in scrape(port) for i in range(3)),
            10,
            "the gauges of all three lines",
        )
        m = scrape(port)
        assert (m[registered % "dongle0"], m[rssi % "dongle0"]) == (1, -73)
        assert (m[registered % "dongle1"], m[rssi % "dongle1"]) == (0, -79)
        assert m[registered % "dongle2"] == 0  # its signal may show: a modem measures it
        r.assert_daemon_alive()


@pytest.mark.parametrize("driver", SINGLE)
def test_a_line_off_the_network_gets_a_restart_and_comes_back(tmp_path: Path, driver: str) -> None:
    """The network stops taking a stick: past offline_after the ladder restarts its device
    (stop, the release wait, start) in the real driver, and the line comes back on its own
    stick once the network takes it again. No USB step for a modem that answers."""
    with real_rig(tmp_path, driver, 1) as r:
        r.wait_all_right(timeout=30)
        pid = r.real.pid if r.real else None
        r.write_settings(offline_after=1.0, tables={"recovery": FAST})
        r.start_daemon()
        r.sims[0].registered = False
        r.unplug(0)
        time.sleep(0.3)
        r.replug(0)
        r.asterisk.wait_for_state("dongle0", "GSM not registered", 30)
        wait_until(lambda: bool(journal(r, "recovery step restart")), 15, "the restart step")
        r.sims[0].registered = True
        r.wait_all_right(timeout=40)
        said = [verb for _, verb in verbs(r)]
        assert "start" in said[max(i for i, v in enumerate(said) if v.startswith("stop")) :]
        assert not journal(r, "recovery step reauthorize")
        r.assert_never_foreign()
        assert r.real is not None and r.real.pid == pid and r.asterisk.hazards == []


@pytest.mark.parametrize("driver", ["chan_dongle", "quectel-im"])
def test_a_device_its_driver_cannot_bring_up_is_restarted_not_reset(
    tmp_path: Path, driver: str
) -> None:
    """The driver's init stops at the SIM (AT+CIMI ERROR) and it drops the device again and
    again, while the modem answers AT. The line-down watch hands it to the ladder, which
    restarts the device in the real driver; as that does not help, dongled says the driver
    failed, and never resets the modem. With the SIM back, the line comes back."""
    with real_rig(tmp_path, driver, 1) as r:
        r.wait_all_right(timeout=30)
        r.write_settings(offline_after=1.0, tables={"recovery": FAST})
        r.start_daemon()
        imsi = r.sims[0].imsi
        r.sims[0].imsi = None
        r.unplug(0)
        time.sleep(0.3)
        r.replug(0)
        wait_until(lambda: bool(journal(r, "answers AT")), 30, "the driver blamed")
        assert not journal(r, "recovery step reauthorize") and r.tb.usb_resets == 0
        r.sims[0].imsi = imsi
        r.unplug(0)
        r.replug(0)
        r.wait_all_right(timeout=30)
        r.assert_never_foreign()
        assert r.asterisk.hazards == []


@pytest.mark.parametrize("driver", SINGLE)
def test_a_stick_slow_to_boot_is_waited_for_not_reset(tmp_path: Path, driver: str) -> None:
    """A stick whose ttys appear 2 s before it answers AT (real sticks boot for seconds) is
    probed again until it answers and bound: no recovery step for a booting stick."""
    with real_rig(tmp_path, driver, 2) as r:
        r.wait_all_right(timeout=30)
        r.start_daemon()
        r.unplug(0)
        r.sims[0].boot_delay = 2.0
        r.replug(0)
        r.wait_all_right(timeout=30)
        assert not journal(r, "recovery step")
        r.assert_never_foreign()
        assert r.asterisk.hazards == []
