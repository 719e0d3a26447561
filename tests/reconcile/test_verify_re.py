"""Verification under chan_quectel's RoEdAl fork, which opens devices on its `[general]
interval` timer: a device may show its IMEI only one interval after a load (or after it failed
to open), and dongled must not call it missing before then. The daemon's own verification
against the test Asterisk's quectel-re personality (real TCP AMI, real ttys)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dongled.config.settings import AmiSettings, Settings
from dongled.daemon import Daemon
from dongled.drivers.chan_quectel import QUECTEL_RE
from dongled.reconcile.plan import Expect
from tests.support.fake_asterisk import FakeAsterisk
from tests.support.fake_bench import (
    IMEI_A,
    IMSI_A,
    QBench,
    write_classes,
)
from tests.support.modemsim import EC25

INTERVAL = 2  # RE's timer, in quectel.conf and in the fake
VERIFY = 1.0  # dongled's verify_timeout: shorter than the timer


@pytest.mark.parametrize("timer_known", [True, False])
def test_a_device_opened_by_the_timer_is_not_called_missing(
    qbench: QBench,
    make_q: Callable[..., FakeAsterisk],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    timer_known: bool,
) -> None:
    """Loaded just now, RE opens the module only at its first tick, INTERVAL s later. dongled
    verifies it with verify_timeout + interval; a driver taken to connect at once (what
    dongled assumed before) gives up after verify_timeout and calls it missing."""
    qbench.write_qconf(
        qbench.section(
            "quectel0",
            f"data={qbench.path('ttyUSB2')}",
            f"audio={qbench.path('ttyUSB1')}",
            f"imei={IMEI_A}",
        ),
        interval=INTERVAL,
    )
    qbench.plug(EC25(IMEI_A, IMSI_A), "ttyUSB2", "ttyUSB1")
    fake = make_q("quectel-re", quectel_interval=float(INTERVAL), **write_classes())
    loaded = time.monotonic()
    (tmp_path / "run").mkdir()
    settings = Settings(
        driver=QUECTEL_RE.name,
        drivers={"chan_quectel": str(qbench.qconf)},
        lock_dir=str(qbench.locks),
        state_dir=str(tmp_path / "run"),
        verify_timeout=VERIFY,
        ami=AmiSettings(port=fake.port, username="dongled", secret="s3cret", timeout=2.0),
    )
    driver = QUECTEL_RE if timer_known else dataclasses.replace(QUECTEL_RE, open_interval=None)
    daemon = Daemon(settings, (driver,))
    # Before dongled's own reload the ports RE runs are unknown; the names are the file's.
    assert daemon.lanes.first.ports.named() == {"quectel0": ("", "")}
    assert daemon.lanes.first.verifier.window() == VERIFY + (INTERVAL if timer_known else 0)

    async def main() -> None:
        await daemon.ami.connect()
        try:
            await daemon.lanes.verify({"quectel0": Expect(imei=IMEI_A)})
        finally:
            await daemon.close()

    with caplog.at_level(logging.INFO, logger="dongled"):
        asyncio.run(main())
    took = time.monotonic() - loaded
    missing = [r.message for r in caplog.records if "did not come up" in r.message]
    if timer_known:
        assert daemon.lanes.verified == {"quectel0": IMEI_A}
        assert missing == [] and took >= INTERVAL - 0.1
    else:
        assert daemon.lanes.verified == {}
        assert missing == [f"device quectel0 did not come up with IMEI {IMEI_A} within 1 s"]
