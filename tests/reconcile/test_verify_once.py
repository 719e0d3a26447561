"""One verification per device: a newer pass's verification of a device supersedes the
older one still polling it, and each outcome (verified, or did not come up) is journaled
once. Against the test Asterisk over real TCP AMI, a simulated stick on real ptys."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from dongled.config.settings import AmiSettings, Settings
from dongled.daemon import Daemon
from dongled.reconcile.plan import Expect
from tests.support.ami_client import TIMEOUT
from tests.support.fake_asterisk import FakeAsterisk
from tests.support.fake_bench import (
    IMEI_A,
    IMEI_B,
    Bench,
    one_stick,
)


def daemon(bench: Bench, fake: FakeAsterisk, tmp_path: Path, verify_timeout: float) -> Daemon:
    (tmp_path / "run").mkdir()
    settings = Settings(
        drivers={"chan_dongle": str(bench.conf)},
        lock_dir=str(bench.locks),
        state_dir=str(tmp_path / "run"),
        verify_timeout=verify_timeout,
        ami=AmiSettings(port=fake.port, username="dongled", secret="s3cret", timeout=2.0),
    )
    return Daemon(settings)


def events(caplog: pytest.LogCaptureFixture, kind: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if getattr(r, "DONGLED_EVENT", "") == kind]


async def overlapping(d: Daemon, want: Expect, gap: float) -> None:
    """Two passes' verifications of dongle0, the second `gap` s after the first."""
    await d.ami.connect()
    try:
        first = asyncio.ensure_future(d.lanes.verify({"dongle0": want}))
        await asyncio.sleep(gap)
        await asyncio.gather(first, d.lanes.verify({"dongle0": want}))
    finally:
        await d.close()


def test_a_device_that_comes_up_is_verified_once(
    bench: Bench,
    make_fake: Callable[..., FakeAsterisk],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    one_stick(bench)
    fake = make_fake()
    fake.wait_for_state("dongle0", "Free", TIMEOUT)
    d = daemon(bench, fake, tmp_path, verify_timeout=2.0)
    with caplog.at_level(logging.INFO, logger="dongled"):
        asyncio.run(overlapping(d, Expect(imei=IMEI_A), gap=0.0))
    assert len(events(caplog, "device-verified")) == 1, events(caplog, "device-verified")
    assert d.lanes.verified == {"dongle0": IMEI_A}


def test_a_device_that_stays_down_is_reported_once(
    bench: Bench,
    make_fake: Callable[..., FakeAsterisk],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """dongle0's ports hold no stick: it never comes up. Each of two overlapping pollers
    used to say "did not come up", one for each pass."""
    bench.write_conf(("dongle0", bench.path("ttyUSB7"), bench.path("ttyUSB6"), IMEI_B))
    fake = make_fake()
    fake.wait_for_state("dongle0", "Not connected", TIMEOUT)
    d = daemon(bench, fake, tmp_path, verify_timeout=1.0)
    with caplog.at_level(logging.INFO, logger="dongled"):
        asyncio.run(overlapping(d, Expect(imei=IMEI_B), gap=0.3))
    down = events(caplog, "device-not-verified")
    assert down == [f"device dongle0 did not come up with IMEI {IMEI_B} within 1 s"], down
