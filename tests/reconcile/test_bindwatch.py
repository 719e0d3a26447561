"""The foreign-binding watch of a daemon against the test Asterisk (real TCP AMI, real ptys
with modem simulators), with no pass running: a device the driver started on a stick whose
IMEI is not its section's is stopped by the watch alone, from chan_dongle's DongleStatus
event, and from RE's polled listing (RE announces nothing)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from dongled.config.settings import AmiSettings, Settings
from dongled.daemon import Daemon
from dongled.drivers.chan_dongle import CHAN_DONGLE
from dongled.drivers.chan_quectel import QUECTEL_RE
from tests.support.fake_asterisk import FakeAsterisk
from tests.support.fake_bench import (
    IMEI_A,
    IMEI_B,
    IMSI_A,
    Bench,
    QBench,
    write_classes,
)
from tests.support.modemsim import EC25, StickSim

WAIT = 10.0  # bound on waiting for the stop (no timing is asserted)


def _settings(
    tmp_path: Path, fake: FakeAsterisk, files: dict[str, str], driver: str = "chan_dongle"
) -> Settings:
    (tmp_path / "run").mkdir()
    return Settings(
        driver=driver,
        drivers=files,
        lock_dir=str(tmp_path / "lock"),
        state_dir=str(tmp_path / "run"),
        ami=AmiSettings(port=fake.port, username="dongled", secret="s3cret", timeout=2.0),
    )


def _stopped(fake: FakeAsterisk, verb: str, device: str) -> bool:
    return any(
        (h.get("Device") == device and name == verb) or h.get("Command", "") == f"{verb} {device}"
        for _, name, h in fake.actions
    )


def test_a_dongle_status_initialize_on_a_foreign_stick_stops_it(
    bench: Bench,
    make_fake: Callable[..., FakeAsterisk],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bench.write_conf(("dongle0", bench.path("ttyUSB2"), bench.path("ttyUSB1"), IMEI_A))
    fake = make_fake()
    daemon = Daemon(_settings(tmp_path, fake, {"chan_dongle": str(bench.conf)}), (CHAN_DONGLE,))

    async def main() -> None:
        await daemon.ami.connect()  # logs in with Events: call
        try:
            # chan_dongle's own retry opens the section's old path, another stick there now
            bench.plug(StickSim(IMEI_B, IMSI_A), "ttyUSB2", "ttyUSB1")
            stop = lambda: _stopped(fake, "DongleStop", "dongle0")  # noqa: E731
            await asyncio.to_thread(fake.wait_for, stop, WAIT, what="the stop")
        finally:
            await daemon.close()

    with caplog.at_level(logging.INFO, logger="dongled"):
        asyncio.run(main())
    assert [b[1:] for b in fake.foreign_bindings] == [("dongle0", bench.path("ttyUSB2"), IMEI_B)]
    stop = next(t for t, name, h in fake.actions if name == "DongleStop")
    assert stop > fake.foreign_bindings[0][0]
    said = [r.message for r in caplog.records if "came up on" in r.message]
    assert said == [f"device dongle0 came up on IMEI {IMEI_B}, not its own {IMEI_A}: stopping it"]


def _re_running_a_foreign_module(
    qbench: QBench, make_q: Callable[..., FakeAsterisk], tmp_path: Path
) -> tuple[FakeAsterisk, Daemon]:
    """RE running [quectel0] on a module that is not its own, and a daemon for it (not
    started: each test runs only the parts it is about)."""
    qbench.write_qconf(
        qbench.section(
            "quectel0",
            f"data={qbench.path('ttyUSB2')}",
            f"audio={qbench.path('ttyUSB1')}",
            f"imei={IMEI_A}",
        ),
        interval=1,
    )
    qbench.plug(EC25(IMEI_B, IMSI_A), "ttyUSB2", "ttyUSB1")  # not quectel0's module
    fake = make_q("quectel-re", quectel_interval=1.0, **write_classes())
    fake.wait_for_state("quectel0", "Free", WAIT, imei=IMEI_B)
    settings = _settings(tmp_path, fake, {"chan_quectel": str(qbench.qconf)}, QUECTEL_RE.name)
    return fake, Daemon(settings, (QUECTEL_RE,))


def test_res_polled_listing_stops_a_foreign_module(
    qbench: QBench,
    make_q: Callable[..., FakeAsterisk],
    tmp_path: Path,
) -> None:
    fake, daemon = _re_running_a_foreign_module(qbench, make_q, tmp_path)

    async def main() -> None:
        await daemon.ami.connect()
        lane = daemon.lanes.first
        poll = asyncio.ensure_future(daemon.bindwatch.polling(lane))
        try:
            stop = lambda: _stopped(fake, "quectel stop now", "quectel0")  # noqa: E731
            await asyncio.to_thread(fake.wait_for, stop, WAIT, what="the stop")
        finally:
            poll.cancel()
            await daemon.close()

    asyncio.run(main())
    logins = [h.get("Events") for _, name, h in fake.actions if name.lower() == "login"]
    assert logins == ["off"]  # RE sends no events: none asked for
    fake.wait_for_state("quectel0", "Stopped", WAIT)  # RE's stop is scheduled, then done


def test_an_edit_of_res_file_polls_its_listing_at_once(
    qbench: QBench,
    make_q: Callable[..., FakeAsterisk],
    tmp_path: Path,
) -> None:
    """A hand edit is when an admin's reload binds a foreign module (until dongled puts the
    file back): the first event of a change to quectel.conf polls RE's listing at once and
    then quickly, instead of at the next idle poll (here made an hour long, so only the
    edit can be what found the module)."""
    fake, daemon = _re_running_a_foreign_module(qbench, make_q, tmp_path)
    daemon.bindwatch.poll = 3600.0

    def stop() -> bool:
        return _stopped(fake, "quectel stop now", "quectel0")

    async def main() -> None:
        await daemon.ami.connect()
        assert daemon.confwatch.start()
        poll = asyncio.ensure_future(daemon.bindwatch.polling(daemon.lanes.first))
        try:
            await asyncio.sleep(0)  # the poll task starts its hour-long wait
            assert not stop()
            with qbench.qconf.open("a") as f:  # an admin's editor saving
                f.write("; checked\n")
            await asyncio.to_thread(fake.wait_for, stop, WAIT, what="the stop")
        finally:
            poll.cancel()
            daemon.confwatch.close()
            await daemon.close()

    asyncio.run(main())
    fake.wait_for_state("quectel0", "Stopped", WAIT)
