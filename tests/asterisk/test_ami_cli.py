"""dongled driving chan_quectel's RoEdAl fork, which has no manager actions: the control
`control_for` builds for it sends its CLI lines over `Action: Command` through the AMI client,
against the test Asterisk's `quectel-re` personality (a real TCP server, real ttys)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from typing import TypeVar

import pytest
from panoramisk.message import Message

from dongled.asterisk.ami import AmiClient
from dongled.asterisk.command import CliControl
from dongled.asterisk.control import control_for
from dongled.asterisk.device import DeviceEntry
from dongled.config.settings import AmiSettings
from dongled.core.errors import AmiError
from dongled.drivers.base import CliVerbs
from dongled.drivers.chan_quectel import QUECTEL_RE
from dongled.drivers.quectel_cli import CliDevice, Listing
from dongled.hotplug.prober import holding_entry
from tests.support.ami_client import TIMEOUT
from tests.support.fake_asterisk import FakeAsterisk
from tests.support.fake_asterisk_quectel import FakeAsteriskQuectel
from tests.support.fake_bench import (
    IMEI_A,
    IMSI_A,
    QBench,
    one_module,
    write_classes,
)
from tests.support.modemsim import EC25

T = TypeVar("T")
LONG = "quectel-modem-one"  # longer than the 12 characters the listing keeps


def client(fake: FakeAsterisk) -> AmiClient:
    s = AmiSettings(port=fake.port, username="dongled", secret="s3cret", timeout=2.0)
    return AmiClient(s)


def commands(fake: FakeAsterisk) -> list[str]:
    return [h.get("Command", "") for _, name, h in fake.actions if name.lower() == "command"]


def run(
    fake: FakeAsterisk,
    ports: Mapping[str, tuple[str, str]],
    body: Callable[[CliControl], Awaitable[T]],
) -> T:
    """`body` with RE's control over a connected dongled client, then closed."""

    async def main() -> T:
        ami = client(fake)
        control = control_for(ami, QUECTEL_RE, lambda: ports)
        assert isinstance(control, CliControl)
        await ami.connect()
        try:
            return await body(control)
        finally:
            await ami.close()

    return asyncio.run(main())


def test_the_listing_names_devices_in_full_and_fills_in_their_ports(
    qbench: QBench, make_q: Callable[..., FakeAsterisk]
) -> None:
    one_module(qbench, EC25(IMEI_A, IMSI_A), name=LONG)
    fake = make_q("quectel-re", **write_classes())
    fake.wait_for_state(LONG, "Free", TIMEOUT)
    ports = {LONG: (qbench.path("ttyUSB2"), qbench.path("ttyUSB1"))}

    async def body(ami: CliControl) -> tuple[dict[str, DeviceEntry], dict[str, DeviceEntry]]:
        return await ami.show_devices(), await ami.show_devices(LONG)

    async def listing(ami: CliControl) -> dict[str, DeviceEntry]:
        return await ami.show_devices()

    every, one = run(fake, ports, body)
    # Before dongled's own reload: RE itself says which ports it read for the device.
    unknown = run(fake, {LONG: ("", "")}, listing)[LONG]
    assert every == one
    for entry in (every[LONG], unknown):
        assert (entry.state, entry.imei_state, entry.imsi_state) == ("Free", IMEI_A, IMSI_A)
        assert entry.connected and not entry.stopped
        assert (entry.data_setting, entry.data_state) == ports[LONG][0:1] * 2
        assert entry.audio_state == ports[LONG][1]
    assert commands(fake) == ["quectel show devices"] * 3 + [f"quectel show device settings {LONG}"]


def test_stop_start_and_reload_are_cli_lines_and_take_effect(
    qbench: QBench, make_q: Callable[..., FakeAsterisk]
) -> None:
    one_module(qbench, EC25(IMEI_A, IMSI_A))
    fake = make_q("quectel-re", **write_classes())
    fake.wait_for_state("quectel0", "Free", TIMEOUT)
    ports = {"quectel0": (qbench.path("ttyUSB2"), qbench.path("ttyUSB1"))}

    async def stop(ami: CliControl) -> None:
        await ami.stop("quectel0")

    async def listing(ami: CliControl) -> dict[str, DeviceEntry]:
        return await ami.show_devices()

    async def start(ami: CliControl) -> None:
        await ami.start("quectel0")

    async def reload(ami: CliControl) -> None:
        await ami.reload("now")

    run(fake, ports, stop)
    fake.wait_for_state("quectel0", "Stopped", TIMEOUT)
    entry = run(fake, ports, listing)["quectel0"]
    assert (
        entry.stopped
        and not entry.connected
        and (entry.data_state, entry.audio_state)
        == (
            "",
            "",
        )
    )
    run(fake, ports, start)
    fake.wait_for_state("quectel0", "Free", TIMEOUT)
    run(fake, ports, stop)
    fake.wait_for_state("quectel0", "Stopped", TIMEOUT)
    run(fake, ports, reload)
    fake.wait_for_state("quectel0", "Free", TIMEOUT)  # a reload starts stopped devices
    sent = commands(fake)
    assert [c for c in sent if c != "quectel show devices"] == [
        "quectel stop now quectel0",
        "quectel start quectel0",
        "quectel stop now quectel0",
        "quectel reload now",
    ]
    # Each stop and start is followed by listings until it shows done: RE's device manager
    # must read one command before the next is written (they add up in its eventfd).
    for i, line in enumerate(sent):
        if line.startswith(("quectel stop", "quectel start")):
            assert sent[i + 1] == "quectel show devices"
    assert isinstance(fake, FakeAsteriskQuectel) and fake.crashes == []


def test_an_unknown_device_and_a_missing_permission_raise(
    qbench: QBench, make_q: Callable[..., FakeAsterisk]
) -> None:
    one_module(qbench, EC25(IMEI_A, IMSI_A))
    fake = make_q("quectel-re", **write_classes())

    async def stop_nope(ami: CliControl) -> None:
        await ami.stop("nope")

    with pytest.raises(AmiError, match=r"\[nope\] Device not found"):
        run(fake, {}, stop_nope)
    no_command = make_q("quectel-re")  # the AMI user lacks the `command` write class

    async def listing(ami: CliControl) -> dict[str, DeviceEntry]:
        return await ami.show_devices()

    with pytest.raises(AmiError, match="Permission denied"):
        run(no_command, {}, listing)


def test_the_crashing_command_is_refused_before_it_is_sent(
    qbench: QBench, make_q: Callable[..., FakeAsterisk]
) -> None:
    qbench.write_qconf(qbench.section("q0", "data=/dev/null/absent"))
    fake = make_q("quectel-re", **write_classes())

    async def body(ami: CliControl) -> None:
        await ami.command("quectel  show device STATE q0")

    with pytest.raises(AmiError, match="crashes Asterisk"):
        run(fake, {}, body)
    assert commands(fake) == []
    assert isinstance(fake, FakeAsteriskQuectel) and fake.crashes == []


def test_names_sharing_twelve_characters_are_told_once(
    qbench: QBench, make_q: Callable[..., FakeAsterisk], caplog: pytest.LogCaptureFixture
) -> None:
    qbench.write_qconf(
        qbench.section("quectel-site-a", "data=/dev/null/a"),
        qbench.section("quectel-site-b", "data=/dev/null/b"),
    )
    fake = make_q("quectel-re", **write_classes())
    ports = {"quectel-site-a": ("/dev/null/a", ""), "quectel-site-b": ("/dev/null/b", "")}

    async def body(ami: CliControl) -> list[dict[str, DeviceEntry]]:
        return [await ami.show_devices(), await ami.show_devices()]

    with caplog.at_level(logging.WARNING, logger="dongled.asterisk.command"):
        first, second = run(fake, ports, body)
    assert set(first) == set(second) == {"quectel-site"}  # neither section is named
    told = [r.message for r in caplog.records if "cannot tell them apart" in r.message]
    assert len(told) == 1 and "quectel-site-a, quectel-site-b" in told[0]


def test_a_module_re_holds_is_named_by_the_listing_whether_or_not_dongled_knows_its_ports(
    qbench: QBench, make_q: Callable[..., FakeAsterisk]
) -> None:
    """No lock file names RE as the holder: the module's data tty is held with TIOCEXCL and
    flock, and the listing names the device running there: with the ports dongled knows RE
    read (after its own reload), or, before that, with those RE says it read (`quectel show
    device settings`), so a dongled started while RE runs stops nothing to learn them."""
    one_module(qbench, EC25(IMEI_A, IMSI_A))
    fake = make_q("quectel-re", **write_classes())
    fake.wait_for_state("quectel0", "Free", TIMEOUT)
    data, audio = qbench.path("ttyUSB2"), qbench.path("ttyUSB1")

    async def listing(ami: CliControl) -> dict[str, DeviceEntry]:
        return await ami.show_devices()

    known = run(fake, {"quectel0": (data, audio)}, listing)
    unknown = run(fake, {}, listing)
    locks = str(qbench.locks)
    held = holding_entry(known, {data, audio}, locks, lock_files=False)
    assert held is not None and (held.device, held.imei_state) == ("quectel0", IMEI_A)
    assert holding_entry(known, {data, audio}, locks) is None  # no LCK file to go by
    assert holding_entry(unknown, {data, audio}, locks, lock_files=False) == held


class _ForkAsterisk:
    """Asterisk with a CLI-only fork loaded that prints its own listing: no such fork
    exists to run here, so this transport stands for it (it answers `Action: Command` the way
    Asterisk does, with `Output:` lines)."""

    connected = True

    def __init__(self, said: dict[str, list[str]]) -> None:
        self.said = said
        self.sent: list[str] = []

    async def send(self, action: dict[str, str]) -> Message:
        self.sent.append(action["Command"])
        return Message({"Response": "Success", "Output": self.said[action["Command"]]})


def _fork_listing(output: Iterable[str]) -> Listing:
    """The fork's listing: `<device>|<state>|<imei>` lines."""
    rows = []
    for line in output:
        device, state, imei = line.split("|")
        rows.append(
            CliDevice(
                device=device, group=0, state=state, rssi=20, mode=0, provider="",
                model="", firmware="", imei=imei, imsi="", number="",
            )
        )  # fmt: skip
    return Listing(devices=tuple(rows), unparsed=(), header_seen=False)


def _fork_ports(output: Iterable[str]) -> tuple[str, str] | None:
    """The fork's ports of a device: `<data>,<audio>`."""
    data, _, audio = next(iter(output), "").partition(",")
    return (data, audio) if data else None


def test_a_cli_driver_reads_its_listing_and_answers_with_its_own_parsers() -> None:
    """A CLI-only driver whose CLI prints otherwise than RE brings its parsers in its
    CliVerbs: its control reads the listing, the ports and the stop's answer with them."""
    assert isinstance(QUECTEL_RE.ami, CliVerbs)
    verbs = replace(
        QUECTEL_RE.ami,
        show="fork list",
        parse_listing=_fork_listing,
        stop="fork halt {device}",
        acknowledged=lambda verb, device, lines: lines == [f"{device}: {verb} ok"],
        settings="fork ports {device}",
        parse_settings=_fork_ports,
        one_at_a_time=0.0,
    )
    fork = _ForkAsterisk(
        {
            "fork list": [f"modem-number-one|Free|{IMEI_A}"],
            "fork ports modem-number-one": ["/dev/ttyUSB2,/dev/ttyUSB1"],
            "fork halt modem-number-one": ["modem-number-one: stop ok"],
            "fork halt other": ["other: no such device"],
        }
    )
    control = CliControl(fork, verbs)

    async def body() -> dict[str, DeviceEntry]:
        await control.stop("modem-number-one")
        with pytest.raises(AmiError, match="no such device"):
            await control.stop("other")
        return await control.show_devices()

    entry = asyncio.run(body())["modem-number-one"]  # a whole name: RE's would be cut to 12
    assert (entry.imei_state, entry.state) == (IMEI_A, "Free")
    assert (entry.data_state, entry.audio_state) == ("/dev/ttyUSB2", "/dev/ttyUSB1")
    assert fork.sent == [
        "fork halt modem-number-one",
        "fork halt other",
        "fork list",
        "fork ports modem-number-one",
    ]
