"""The AMI adapter against the test Asterisk (a real TCP server): panoramisk's defects fixed;
chan_dongle's manager actions sent through it by the control `control_for` builds."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from dongled.asterisk.ami import AmiClient
from dongled.asterisk.control import control_for
from dongled.config.settings import AmiSettings
from dongled.core.errors import AmiAuthError, AmiError, AmiTimeoutError
from dongled.drivers.chan_dongle import CHAN_DONGLE
from tests.support.fake_asterisk import FakeAsterisk

CONF = (
    "[general]\ninterval=15\n\n"
    "[dongle0]\nimei=351234567890124\ndata=/dev/null/x\naudio=/dev/null/y\n"
)


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeAsterisk]:
    conf = tmp_path / "dongle.conf"
    conf.write_text(CONF)
    (tmp_path / "lock").mkdir()
    fa = FakeAsterisk(str(conf), lock_dir=str(tmp_path / "lock"), interval=30.0)
    fa.start()
    yield fa
    fa.stop()


def settings(port: int, secret: str = "s3cret", timeout: float = 1.0) -> AmiSettings:
    return AmiSettings(port=port, username="dongled", secret=secret, timeout=timeout)


def logins(fake: FakeAsterisk) -> int:
    return sum(1 for _, name, _ in fake.actions if name.lower() == "login")


def test_login_and_device_list(fake: FakeAsterisk) -> None:
    async def main() -> None:
        client = AmiClient(settings(fake.port))
        dongle = control_for(client, CHAN_DONGLE)
        await client.connect()
        devices = await dongle.show_devices()
        assert set(devices) == {"dongle0"}
        entry = devices["dongle0"]
        assert entry.data_setting == "/dev/null/x" and entry.imei_setting == "351234567890124"
        assert entry.state == "Not connected" and not entry.connected
        await dongle.stop("dongle0")
        await dongle.reload("now")
        await client.close()

    asyncio.run(main())
    names = [name for _, name, _ in fake.actions]
    assert names[-2:] == ["DongleStop", "DongleReload"]


def test_wrong_secret_raises_once_and_never_retries(fake: FakeAsterisk) -> None:
    async def main() -> None:
        client = AmiClient(settings(fake.port, secret="wrong-secret-XYZ"))
        with pytest.raises(AmiAuthError) as info:
            await client.connect()
        assert "wrong-secret-XYZ" not in str(info.value)
        assert not client.connected
        await asyncio.sleep(0.5)  # panoramisk alone would log in again and again

    asyncio.run(main())
    assert logins(fake) == 1


def test_server_down_raises_without_a_background_loop() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed

    async def main() -> None:
        client = AmiClient(settings(port))
        with pytest.raises(AmiError, match="cannot connect"):
            await client.connect()
        await asyncio.sleep(0.1)
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert others == []

    asyncio.run(main())


def test_peer_that_never_answers_times_out(fake: FakeAsterisk) -> None:
    fake.never_answer = True

    async def main() -> None:
        client = AmiClient(settings(fake.port, timeout=0.3))
        with pytest.raises(AmiTimeoutError):
            await client.connect()
        assert not client.connected

    asyncio.run(main())


def test_stalled_action_times_out_and_drops_the_connection(fake: FakeAsterisk) -> None:
    lost: list[bool] = []

    async def main() -> None:
        client = AmiClient(settings(fake.port, timeout=0.3), on_lost=lambda: lost.append(True))
        await client.connect()
        fake.never_answer = True
        with pytest.raises(AmiTimeoutError):
            await control_for(client, CHAN_DONGLE).show_devices()
        assert not client.connected and lost == [True]

    asyncio.run(main())


def test_missing_permission_is_an_error(tmp_path: Path) -> None:
    conf = tmp_path / "dongle.conf"
    conf.write_text(CONF)
    fa = FakeAsterisk(str(conf), lock_dir=str(tmp_path), write_classes=("reporting",))
    fa.start()
    try:

        async def main() -> None:
            client = AmiClient(settings(fa.port))
            dongle = control_for(client, CHAN_DONGLE)
            await client.connect()
            assert "dongle0" in await dongle.show_devices()
            with pytest.raises(AmiError, match="DongleReload refused") as info:
                await dongle.reload("now")
            assert (info.value.action, info.value.reply) == ("DongleReload", "Permission denied")
            await client.close()

        asyncio.run(main())
    finally:
        fa.stop()


def test_connection_loss_is_reported_and_close_is_final(fake: FakeAsterisk) -> None:
    lost: list[bool] = []

    async def main() -> None:
        client = AmiClient(settings(fake.port), on_lost=lambda: lost.append(True))
        await client.connect()
        fake.drop_sessions()
        for _ in range(100):
            if lost:
                break
            await asyncio.sleep(0.01)
        assert lost == [True] and not client.connected
        with pytest.raises(AmiError, match="not connected"):
            await control_for(client, CHAN_DONGLE).show_devices()
        await asyncio.sleep(0.3)

    asyncio.run(main())
    assert logins(fake) == 1  # no hidden reconnect


def test_events_asked_for_only_with_a_status_event_taken(fake: FakeAsterisk) -> None:
    """Without a status event to take, the login asks for none (`Events: off`); with one,
    for the `call` read class alone, the one DongleStatus/QuectelStatus are sent in."""

    async def main() -> None:
        quiet = AmiClient(settings(fake.port))
        await quiet.connect()
        await quiet.close()
        taking = AmiClient(settings(fake.port))
        taking.on_status_event("DongleStatus", lambda device, status: None)
        await taking.connect()
        await taking.close()

    asyncio.run(main())
    asked = [h.get("Events") for _, name, h in fake.actions if name.lower() == "login"]
    assert asked == ["off", "call"]
