"""The test Asterisk behaves as a real Asterisk 20 + chan_dongle was seen to (docs/design.md).

The AMI client here is a minimal one of its own (asyncio streams): neither panoramisk nor
dongled code, so that a bug in dongled's AMI adapter cannot hide a bug in the fake.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import os
import subprocess
import sys
import termios
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.ami_client import TIMEOUT, Ami, status
from tests.support.fake_asterisk import FakeAsterisk
from tests.support.fake_asterisk_conf import ConfParseError, parse_conf
from tests.support.fake_bench import (
    IMEI_A,
    IMEI_B,
    IMSI_A,
    IMSI_B,
    INTERVAL,
    Bench,
    one_stick,
    stick_pulled,
)
from tests.support.modemsim import StickSim, server_thread

# --- login and permissions --------------------------------------------------------------------


def test_banner_login_and_ping(bench: Bench, make_fake: Callable[..., FakeAsterisk]) -> None:
    bench.write_conf()
    fake = make_fake()

    async def main() -> None:
        ami = await Ami.connect(fake.port)
        assert ami.banner == b"Asterisk Call Manager/9.0.0\r\n"
        reply = await ami.login(events="off")
        assert reply.pairs == [
            ("Response", "Success"),
            ("ActionID", reply["ActionID"]),
            ("Message", "Authentication accepted"),
        ]
        pong = await ami.action("Ping")
        assert (pong["Response"], pong["Ping"]) == ("Success", "Pong")
        bye = await ami.action("Logoff")
        assert bye["Response"] == "Goodbye"
        assert await ami.read() is None
        await ami.close()

    asyncio.run(main())
    assert [a[1] for a in fake.actions] == ["Login", "Ping", "Logoff"]


def test_wrong_secret_fails_and_hangs_up(
    bench: Bench, make_fake: Callable[..., FakeAsterisk]
) -> None:
    bench.write_conf()
    fake = make_fake()

    async def main() -> None:
        ami = await Ami.connect(fake.port)
        reply = await ami.login(secret="wrong")
        assert (reply["Response"], reply["Message"]) == ("Error", "Authentication failed")
        assert await ami.read() is None
        await ami.close()

    asyncio.run(main())


def test_actions_before_login_are_denied(
    bench: Bench, make_fake: Callable[..., FakeAsterisk]
) -> None:
    bench.write_conf()
    fake = make_fake()

    async def main() -> None:
        ami = await Ami.connect(fake.port)
        for action in ("DongleShowDevices", "DongleReload", "Ping"):
            reply = await ami.action(action, When="now")
            assert (reply["Response"], reply["Message"]) == ("Error", "Permission denied")
        await ami.close()

    asyncio.run(main())
    assert fake.reload_count == 0


@pytest.mark.parametrize(
    ("write_classes", "allowed"),
    [
        (("reporting",), {"DongleShowDevices"}),
        (("config",), {"DongleReload", "DongleStop", "Reload"}),
        (("system",), {"DongleShowDevices", "DongleReload", "DongleStop", "Reload"}),
        (("command",), {"Command"}),
    ],
)
def test_permission_classes(
    bench: Bench,
    make_fake: Callable[..., FakeAsterisk],
    write_classes: tuple[str, ...],
    allowed: set[str],
) -> None:
    bench.write_conf(("dongle0", "/dev/null/absent0", "/dev/null/absent1", IMEI_A))
    fake = make_fake(write_classes=write_classes)
    args = {
        "DongleShowDevices": {},
        "DongleReload": {"When": "now"},
        "DongleStop": {"Device": "dongle0", "When": "now"},
        "Reload": {"Module": "chan_dongle.so"},
        "Command": {"Command": "dongle show devices"},
    }

    async def main() -> dict[str, str]:
        ami = await Ami.connect(fake.port)
        await ami.login(events="off")
        seen = {}
        for action, headers in args.items():
            reply = await ami.action(action, **headers)
            seen[action] = reply["Response"]
            if reply["Response"] == "Error":
                assert reply["Message"] == "Permission denied"
        await ami.close()
        return seen

    seen = asyncio.run(main())
    assert {a for a, r in seen.items() if r == "Success"} == allowed


def test_unknown_action_and_unknown_command(
    bench: Bench, make_fake: Callable[..., FakeAsterisk]
) -> None:
    bench.write_conf()
    fake = make_fake(write_classes=("system", "config", "command"))

    async def main() -> None:
        ami = await Ami.connect(fake.port)
        await ami.login()
        reply = await ami.action("DongleFrobnicate")
        assert (reply["Response"], reply["Message"]) == ("Error", "Invalid/unknown command")
        reply = await ami.action("Command", Command="core frobnicate")
        assert reply["Response"] == "Error"
        assert reply["Output"].startswith("No such command")
        await ami.close()

    asyncio.run(main())


# --- reload actions ---------------------------------------------------------------------------


def test_dongle_reload_when_and_the_other_reloads(
    bench: Bench, make_fake: Callable[..., FakeAsterisk]
) -> None:
    bench.write_conf()
    fake = make_fake(write_classes=("system", "config", "command"))

    async def main() -> None:
        ami = await Ami.connect(fake.port)
        await ami.login(events="off")
        for bad in ({}, {"When": "later"}):
            reply = await ami.action("DongleReload", **bad)
            assert (reply["Response"], reply["Message"]) == ("Error", "Invalid value of When")
        assert fake.reload_count == 0
        for when in ("now", "Gracefully", "WHEN CONVENIENT"):
            reply = await ami.action("DongleReload", When=when)
            assert reply.pairs == [
                ("Response", "Success"),
                ("ActionID", reply["ActionID"]),
                ("Message", "reload scheduled"),
            ]
        reply = await ami.action("Command", Command="dongle reload now")
        assert reply.keys() == ["Response", "ActionID", "Message", "Output"]
        assert (reply["Response"], reply["Message"]) == ("Success", "Command output follows")
        reply = await ami.action("Reload", Module="chan_dongle.so")
        assert (reply["Response"], reply["Message"]) == ("Success", "Module Reloaded")
        await ami.close()

    asyncio.run(main())
    fake.wait_for(lambda: fake.reload_count == 5, what="5 reloads")
    fake.admin_reload()
    assert fake.reload_count == 6


# --- devices ----------------------------------------------------------------------------------

ENTRY_FIELDS = [
    *("Device", "AudioSetting", "DataSetting", "IMEISetting", "IMSISetting", "Context", "State"),
    *("AudioState", "DataState", "Voice", "SMS", "Manufacturer", "Model", "Firmware"),
    *("IMEIState", "IMSIState", "GSMRegistrationStatus", "RSSI", "ProviderName"),
    *("CallsChannels", "Active", "CurrentDeviceState", "DesiredDeviceState"),
]


def test_device_free_with_what_the_modem_said(
    bench: Bench, make_fake: Callable[..., FakeAsterisk]
) -> None:
    one_stick(bench)
    fake = make_fake()
    entry = fake.wait_for_state("dongle0", "Free", TIMEOUT)
    assert entry["IMEIState"] == IMEI_A
    assert entry["IMSIState"] == IMSI_A
    assert (entry["Manufacturer"], entry["Model"], entry["Voice"]) == ("huawei", "E1550", "Yes")
    assert entry["Firmware"] == "11.608.12.02.21"
    assert entry["GSMRegistrationStatus"] == "Registered, home network"
    assert entry["RSSI"] == "17, -79 dBm"
    assert entry["ProviderName"] == "MegaFon"
    assert entry["DataState"] == bench.path("ttyUSB2")
    assert (entry["CurrentDeviceState"], entry["DesiredDeviceState"]) == ("start", "start")
    assert entry["Context"] == "dongle-incoming"
    [(_, device, data, imei)] = fake.bindings_log
    assert (device, data, imei) == ("dongle0", bench.path("ttyUSB2"), IMEI_A)
    assert fake.foreign_bindings == []
    assert fake.hazards == []
    # chan_dongle's lock: realpath's basename, "<pid> <fd>", no newline
    pts = os.path.basename(os.path.realpath(bench.path("ttyUSB2")))
    pid, fd = (bench.locks / f"LCK..{pts}").read_text().split(" ")
    assert int(pid) == os.getpid()
    assert fd.isdigit()


def test_show_devices_list_format(bench: Bench, make_fake: Callable[..., FakeAsterisk]) -> None:
    bench.write_conf(
        ("dongle0", bench.path("ttyUSB2"), bench.path("ttyUSB1"), IMEI_A),
        ("dongle1", "/dev/null/absent0", "/dev/null/absent1", IMEI_B),
    )
    bench.plug(StickSim(IMEI_A, IMSI_A), "ttyUSB2", "ttyUSB1")
    fake = make_fake()
    fake.wait_for_state("dongle0", "Free", TIMEOUT)

    async def main() -> None:
        ami = await Ami.connect(fake.port)
        await ami.login(events="off")
        response, *entries, complete = await ami.list_action("DongleShowDevices")
        action_id = response["ActionID"]
        assert response.pairs == [
            ("Response", "Success"),
            ("ActionID", action_id),
            ("EventList", "start"),
            ("Message", "Device status list will follow"),
        ]
        assert [e["Device"] for e in entries] == ["dongle0", "dongle1"]
        for entry in entries:
            assert entry.keys()[:2] == ["Event", "ActionID"]
            assert entry["Event"] == "DongleDeviceEntry"
            assert set(ENTRY_FIELDS) <= set(entry.keys())
        assert (entries[0]["State"], entries[0]["IMEIState"]) == ("Free", IMEI_A)
        off = entries[1]
        assert (off["State"], off["IMEIState"], off["IMEISetting"]) == (
            "Not connected",
            "",
            IMEI_B,
        )
        assert (off["CurrentDeviceState"], off["DesiredDeviceState"]) == ("stop", "start")
        assert complete.pairs == [
            ("Event", "DongleShowDevicesComplete"),
            ("ActionID", action_id),
            ("EventList", "Complete"),
            ("ListItems", "2"),
        ]
        _, only, complete = await ami.list_action("DongleShowDevices", Device="dongle1")
        assert (only["Device"], complete["ListItems"]) == ("dongle1", "1")
        _, complete = await ami.list_action("DongleShowDevices", Device="nosuch")
        assert complete["ListItems"] == "0"
        await ami.close()

    asyncio.run(main())


def test_events_follow_read_classes_and_events_header(
    bench: Bench, make_fake: Callable[..., FakeAsterisk]
) -> None:
    bench.write_conf(("dongle0", bench.path("ttyUSB2"), bench.path("ttyUSB1"), IMEI_A))
    fake = make_fake()

    async def main() -> None:
        quiet = await Ami.connect(fake.port)
        await quiet.login(events="off")
        ami = await Ami.connect(fake.port)
        await ami.login(events="on")
        await ami.event(lambda m: m.get("Event") == "FullyBooted")
        bench.plug(StickSim(IMEI_A, IMSI_A), "ttyUSB2", "ttyUSB1")
        seen = []
        for value in ("Connect", "Initialize"):
            event = await ami.event(status("dongle0", value))
            assert event["Privilege"] == "call,all"
            seen.append(value)
        # the ready signal: DongleShowDevices already shows Free when Initialize is seen
        assert fake.devices_snapshot()["dongle0"]["IMEIState"] == IMEI_A
        await ami.action("Ping")
        # As chan_dongle: the registration is read during the init, before Initialize;
        # Free is no readiness signal (sent when a call's last channel goes, or at a
        # disconnect) and does not come here.
        kept = [m["Status"] for m in ami.events if m.get("Event") == "DongleStatus"]
        assert kept == ["Register"]
        await quiet.action("Ping")
        assert quiet.events == []
        await ami.close()
        await quiet.close()

    asyncio.run(main())


def test_events_need_read_class_call(bench: Bench, make_fake: Callable[..., FakeAsterisk]) -> None:
    bench.write_conf(("dongle0", "/dev/null/absent0", "/dev/null/absent1", IMEI_A))
    fake = make_fake(read_classes=("system",))

    async def main() -> None:
        ami = await Ami.connect(fake.port)
        await ami.login()
        # interval passes go by, each with a DonglePortFail that this session must not see
        await asyncio.sleep(INTERVAL * 2.5)
        await ami.action("Ping")
        assert [e.get("Event") for e in ami.events] == ["FullyBooted"]
        await ami.close()

    asyncio.run(main())
    assert any(name == "DonglePortFail" for _, name, _ in fake.events)


def test_stick_vanishes_then_a_foreign_stick_is_grabbed_at_the_same_path(
    bench: Bench, make_fake: Callable[..., FakeAsterisk]
) -> None:
    """The dangerous case: chan_dongle re-opens the old path and never checks the IMEI."""
    mine = one_stick(bench)
    fake = make_fake()
    fake.wait_for_state("dongle0", "Free", TIMEOUT, imei=IMEI_A)

    async def main() -> None:
        ami = await Ami.connect(fake.port)
        await ami.login()
        lock_files = set(os.listdir(bench.locks))
        assert len(lock_files) == 2  # data and audio
        bench.unplug(mine)
        await ami.event(status("dongle0", "Free"))
        await ami.event(status("dongle0", "Disconnect"))
        entry = fake.devices_snapshot()["dongle0"]
        assert entry["State"] == "Not connected"
        assert entry["IMEIState"] == ""
        assert (entry["CurrentDeviceState"], entry["DesiredDeviceState"]) == ("stop", "start")
        assert os.listdir(bench.locks) == []
        fail = await ami.event(lambda m: m.get("Event") == "DonglePortFail")
        assert fail.pairs[-3:] == [
            ("Device", bench.path("ttyUSB2")),
            ("Message", "Open Failed"),
            ("ErrorCode", str(errno.ENOENT)),
        ]
        # another stick turns up at the same path: grabbed at the next pass, IMEI ignored
        bench.plug(StickSim(IMEI_B, IMSI_B), "ttyUSB2", "ttyUSB1")
        await ami.event(status("dongle0", "Initialize"), wait=INTERVAL * 3)
        await ami.close()

    asyncio.run(main())
    entry = fake.devices_snapshot()["dongle0"]
    assert (entry["State"], entry["IMEIState"], entry["IMEISetting"]) == ("Free", IMEI_B, IMEI_A)
    [(_, device, data, imei)] = fake.foreign_bindings
    assert (device, data, imei) == ("dongle0", bench.path("ttyUSB2"), IMEI_B)
    assert any("Lost connection" in m for m in fake.log_messages)


def test_same_stick_back_at_the_same_path_reconnects_by_itself(
    bench: Bench, make_fake: Callable[..., FakeAsterisk]
) -> None:
    fake = stick_pulled(bench, make_fake)
    reloads = fake.reload_count
    bench.plug(StickSim(IMEI_A, IMSI_A), "ttyUSB2", "ttyUSB1")
    fake.wait_for_state("dongle0", "Free", INTERVAL * 3, imei=IMEI_A)
    assert fake.reload_count == reloads
    assert len(fake.bindings_log) == 2
    assert fake.foreign_bindings == []


def test_stopped_device_is_not_retried_but_any_reload_restarts_it(
    bench: Bench, make_fake: Callable[..., FakeAsterisk]
) -> None:
    fake = stick_pulled(bench, make_fake)

    async def stop() -> None:
        ami = await Ami.connect(fake.port)
        await ami.login(events="off")
        for action, when in (("DongleStop", {}), ("DongleStop", {"When": "soon"})):
            reply = await ami.action(action, Device="dongle0", **when)
            assert reply["Response"] == "Error"
        reply = await ami.action("DongleStop", Device="nosuch", When="now")
        assert reply["Response"] == "Error"
        reply = await ami.action("DongleStop", Device="dongle0", When="now")
        assert reply["Response"] == "Success"
        await ami.close()

    asyncio.run(stop())
    entry = fake.wait_for_state("dongle0", "Stopped", 1.0)
    assert (entry["CurrentDeviceState"], entry["DesiredDeviceState"]) == ("stop", "stop")
    bench.plug(StickSim(IMEI_B, IMSI_B), "ttyUSB2", "ttyUSB1")
    # several interval passes: a stopped device is left alone ...
    time.sleep(INTERVAL * 3)
    assert fake.devices_snapshot()["dongle0"]["State"] == "Stopped"
    assert fake.foreign_bindings == []
    # ... but a reload with an unchanged file starts it on whatever the file names
    fake.admin_reload()
    fake.wait_for_state("dongle0", "Free", 1.0, imei=IMEI_B)
    assert [b[3] for b in fake.foreign_bindings] == [IMEI_B]


def test_stopped_section_pointed_at_impossible_paths_stays_safe(
    bench: Bench, make_fake: Callable[..., FakeAsterisk]
) -> None:
    fake = stick_pulled(bench, make_fake)
    bench.plug(StickSim(IMEI_B, IMSI_B), "ttyUSB2", "ttyUSB1")
    bench.write_conf(("dongle0", "/dev/null/absent-data", "/dev/null/absent-audio", IMEI_A))
    fake.admin_reload()
    fake.wait_for(
        lambda: any(
            name == "DonglePortFail" and h["Device"] == "/dev/null/absent-data"
            for _, name, h in fake.events
        ),
        1.0,
    )
    entry = fake.devices_snapshot()["dongle0"]
    assert (entry["State"], entry["DataSetting"]) == ("Not connected", "/dev/null/absent-data")
    time.sleep(INTERVAL * 2)
    assert fake.foreign_bindings == []


def test_impossible_path_gives_port_fail_at_every_pass(
    bench: Bench, make_fake: Callable[..., FakeAsterisk]
) -> None:
    bench.write_conf(("dongle0", "/dev/null/absent0", "/dev/null/absent1", IMEI_A))
    fake = make_fake()

    def fails() -> list[dict[str, str]]:
        return [h for _, name, h in fake.events if name == "DonglePortFail"]

    fake.wait_for(lambda: len(fails()) >= 3, INTERVAL * 4, what="3 DonglePortFail")
    first = fails()[0]
    assert (first["Device"], first["Message"]) == ("/dev/null/absent0", "Open Failed")
    # ENOTDIR on a real /dev; ENOENT under umockdev-wrapper, which serves /dev from the testbed.
    assert first["ErrorCode"] in (str(errno.ENOTDIR), str(errno.ENOENT))
    entry = fake.devices_snapshot()["dongle0"]
    assert (entry["State"], entry["CurrentDeviceState"]) == ("Not connected", "stop")
    assert fake.bindings_log == []


def test_lock_of_a_live_foreign_process_is_honoured_and_a_dead_ones_removed(
    bench: Bench, make_fake: Callable[..., FakeAsterisk]
) -> None:
    one_stick(bench)
    pts = os.path.basename(os.path.realpath(bench.path("ttyUSB2")))
    lock = bench.locks / f"LCK..{pts}"
    lock.write_text(f"{os.getppid():10d}\n")  # a UUCP lock of a live process (pytest's parent)
    fake = make_fake()
    fake.wait_for(lambda: any("already used by process" in m for m in fake.log_messages), TIMEOUT)
    time.sleep(INTERVAL * 1.5)
    assert fake.devices_snapshot()["dongle0"]["State"] == "Not connected"
    assert lock.read_text() == f"{os.getppid():10d}\n"
    # the holder dies, its lock stays behind: stale, removed, the port is taken
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    lock.write_text(f"{dead.stdout.strip()} 3")
    fake.wait_for_state("dongle0", "Free", INTERVAL * 3, imei=IMEI_A)
    assert lock.read_text().split(" ")[0] == str(os.getpid())


def test_reload_moves_devices_and_a_port_held_by_a_sibling_is_refused(
    bench: Bench, make_fake: Callable[..., FakeAsterisk]
) -> None:
    """Swapped sticks, config rewritten: the first device finds its new port still held."""
    bench.write_conf(
        ("dongle0", bench.path("ttyUSB2"), bench.path("ttyUSB1"), IMEI_A),
        ("dongle1", bench.path("ttyUSB5"), bench.path("ttyUSB4"), IMEI_B),
    )
    bench.plug(StickSim(IMEI_B, IMSI_B), "ttyUSB2", "ttyUSB1")
    bench.plug(StickSim(IMEI_A, IMSI_A), "ttyUSB5", "ttyUSB4")
    fake = make_fake()
    fake.wait_for_state("dongle0", "Free", TIMEOUT, imei=IMEI_B)
    fake.wait_for_state("dongle1", "Free", TIMEOUT, imei=IMEI_A)
    assert len(fake.foreign_bindings) == 2
    bench.write_conf(
        ("dongle0", bench.path("ttyUSB5"), bench.path("ttyUSB4"), IMEI_A),
        ("dongle1", bench.path("ttyUSB2"), bench.path("ttyUSB1"), IMEI_B),
    )
    fake.admin_reload()
    assert any(f"already used by process {os.getpid()}" in m for m in fake.log_messages)
    assert any("still held by [dongle1]" in h for h in fake.hazards)
    fake.wait_for_state("dongle1", "Free", TIMEOUT, imei=IMEI_B)
    # dongle0 gets its port only at the next interval pass
    fake.wait_for_state("dongle0", "Free", INTERVAL * 3, imei=IMEI_A)
    assert len(fake.foreign_bindings) == 2


def test_a_stick_pulled_between_open_and_tcgetattr_fails_only_its_device(
    bench: Bench, make_fake: Callable[..., FakeAsterisk], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pty whose master goes away right after the open answers tcgetattr with EIO
    (termios.error, which is no OSError). Like chan_dongle's opentty, that device stays down
    and every other device of the load still opens (it once ended the whole reload)."""
    bench.write_conf(
        ("dongle0", bench.path("ttyUSB2"), bench.path("ttyUSB1"), IMEI_A),
        ("dongle1", bench.path("ttyUSB5"), bench.path("ttyUSB4"), IMEI_B),
    )
    bench.plug(StickSim(IMEI_A, IMSI_A), "ttyUSB2", "ttyUSB1")
    bench.plug(StickSim(IMEI_B, IMSI_B), "ttyUSB5", "ttyUSB4")
    real_setraw, calls = tty.setraw, itertools.count()

    def setraw(fd: int, when: int = termios.TCSAFLUSH) -> None:
        if next(calls) == 0:  # the first tty the load opens: its stick just pulled
            raise termios.error(errno.EIO, "Input/output error")
        real_setraw(fd, when)

    monkeypatch.setattr(tty, "setraw", setraw)
    fake = make_fake()
    fake.wait_for_state("dongle1", "Free", TIMEOUT, imei=IMEI_B)
    assert any("unable to open" in m and "tcgetattr" in m for m in fake.log_messages)
    monkeypatch.setattr(tty, "setraw", real_setraw)
    fake.wait_for_state("dongle0", "Free", INTERVAL * 3, imei=IMEI_A)  # its next interval


def test_reload_removes_and_adds_sections(
    bench: Bench, make_fake: Callable[..., FakeAsterisk]
) -> None:
    one_stick(bench)
    fake = make_fake()
    fake.wait_for_state("dongle0", "Free", TIMEOUT)
    bench.write_conf(("dongle7", bench.path("ttyUSB2"), bench.path("ttyUSB1"), IMEI_A))
    fake.admin_reload()
    fake.wait_for_state("dongle7", "Free", TIMEOUT, imei=IMEI_A)
    assert list(fake.devices_snapshot()) == ["dongle7"]


def test_unparsable_conf_at_reload_is_a_hazard_and_the_old_config_stays(
    bench: Bench, make_fake: Callable[..., FakeAsterisk]
) -> None:
    one_stick(bench)
    fake = make_fake()
    fake.wait_for_state("dongle0", "Free", TIMEOUT)
    bench.conf.write_text(f"[dongle0\ndata={bench.path('ttyUSB9')}\n")  # half-written
    fake.admin_reload()
    [hazard] = fake.hazards
    assert "does not parse" in hazard
    entry = fake.devices_snapshot()["dongle0"]
    assert (entry["State"], entry["DataSetting"]) == ("Free", bench.path("ttyUSB2"))


def test_init_aborts_without_sim_and_is_retried(
    bench: Bench, make_fake: Callable[..., FakeAsterisk]
) -> None:
    bench.write_conf(("dongle0", bench.path("ttyUSB2"), bench.path("ttyUSB1"), IMEI_A))
    bench.plug(StickSim(IMEI_A, None), "ttyUSB2", "ttyUSB1")
    fake = make_fake()
    fake.wait_for(
        lambda: sum("initialization failed" in m for m in fake.log_messages) >= 2,
        INTERVAL * 4,
    )
    assert fake.devices_snapshot()["dongle0"]["State"] == "Not connected"
    assert fake.bindings_log == []
    assert os.listdir(bench.locks) == []


def test_init_tolerates_garbage_and_unsolicited_lines(
    bench: Bench, make_fake: Callable[..., FakeAsterisk]
) -> None:
    bench.write_conf(("dongle0", bench.path("ttyUSB2"), bench.path("ttyUSB1"), IMEI_A))
    sim = StickSim(IMEI_A, IMSI_A, garbage=True, unsolicited=["^RSSI:17", "RING", "^BOOT:1,0"])
    bench.plug(sim, "ttyUSB2", "ttyUSB1")
    fake = make_fake()
    entry = fake.wait_for_state("dongle0", "Free", TIMEOUT)
    assert (entry["IMEIState"], entry["IMSIState"], entry["Model"]) == (IMEI_A, IMSI_A, "E1550")


def test_silent_modem_times_out(bench: Bench, make_fake: Callable[..., FakeAsterisk]) -> None:
    bench.write_conf(("dongle0", bench.path("ttyUSB2"), bench.path("ttyUSB1"), IMEI_A))
    bench.plug(StickSim(IMEI_A, IMSI_A, mute=True), "ttyUSB2", "ttyUSB1")
    fake = make_fake(init_timeout=0.2)
    fake.wait_for(lambda: any("initialization failed" in m for m in fake.log_messages), 2.0)
    assert fake.devices_snapshot()["dongle0"]["State"] in ("Not connected", "Not initialized")
    assert fake.bindings_log == []


def test_dongle_restart_and_start(bench: Bench, make_fake: Callable[..., FakeAsterisk]) -> None:
    one_stick(bench)
    fake = make_fake(interval=30.0)  # no pass during the test: only the actions open ports
    fake.wait_for_state("dongle0", "Free", TIMEOUT)

    async def main() -> None:
        ami = await Ami.connect(fake.port)
        await ami.login()
        reply = await ami.action("DongleRestart", Device="dongle0", When="now")
        assert reply["Response"] == "Success"
        await ami.event(status("dongle0", "Disconnect"))
        await ami.event(status("dongle0", "Initialize"))
        await ami.action("DongleStop", Device="dongle0", When="gracefully")
        await ami.event(status("dongle0", "Disconnect"))
        assert fake.devices_snapshot()["dongle0"]["State"] == "Stopped"
        reply = await ami.action("DongleStart", Device="dongle0")
        assert reply["Response"] == "Success"
        await ami.event(status("dongle0", "Initialize"))
        await ami.close()

    asyncio.run(main())
    assert len(fake.bindings_log) == 3
    # DongleRestart of a device that has its tty open re-opens it as it closes: modelled as
    # the stop-then-start hazard below (dongled never sends it; it stops, waits, starts).
    assert any("re-opened as its monitor closes" in h for h in fake.hazards)


@pytest.mark.parametrize("again", ["DongleStart", "DongleReload"])
def test_a_port_reopened_while_its_device_is_still_closing_crashes_asterisk(
    bench: Bench, make_fake: Callable[..., FakeAsterisk], again: str
) -> None:
    """Seen on a real Asterisk: DongleStop answers Success before chan_dongle lets go of the
    tty; a re-open a few ms later takes the closing device's last `OK` as its own, every
    reply shifts by one, and the last one meets an empty command queue: segfault."""
    one_stick(bench)
    fake = make_fake(interval=30.0, close_delay=0.2)
    fake.wait_for_state("dongle0", "Free", TIMEOUT)

    async def main() -> None:
        ami = await Ami.connect(fake.port)
        await ami.login(events="off")
        assert (await ami.action("DongleStop", Device="dongle0", When="now"))["Response"] == (
            "Success"
        )
        fake.wait_for(
            lambda: fake.devices_snapshot()["dongle0"]["DesiredDeviceState"] == "stop",
            0.1,
            what="the stop to be taken",
        )
        entry = fake.devices_snapshot()["dongle0"]  # the stop was answered: still closing
        assert (entry["State"], entry["CurrentDeviceState"], entry["DesiredDeviceState"]) == (
            "Free",
            "start",
            "stop",
        )
        assert len(os.listdir(bench.locks)) == 2  # data and audio still locked
        headers = {"Device": "dongle0"} if again == "DongleStart" else {"When": "now"}
        assert (await ami.action(again, **headers))["Response"] == "Success"
        await ami.close()

    asyncio.run(main())
    fake.wait_for(lambda: bool(fake.crashes), 5.0, what="the crash")
    assert "empty command queue" in fake.crashes[0]


def test_a_port_reopened_after_its_device_let_go_is_safe(
    bench: Bench, make_fake: Callable[..., FakeAsterisk]
) -> None:
    one_stick(bench)
    fake = make_fake(interval=30.0, close_delay=0.2)
    fake.wait_for_state("dongle0", "Free", TIMEOUT)

    async def main() -> None:
        ami = await Ami.connect(fake.port)
        await ami.login(events="off")
        await ami.action("DongleStop", Device="dongle0", When="now")
        # What dongled waits for: listed as stopped, no port open, lock files gone. DataState
        # shows the configured path again, as the real chan_dongle's does.
        fake.wait_for(
            lambda: fake.devices_snapshot()["dongle0"]["CurrentDeviceState"] == "stop", 2.0
        )
        entry = fake.devices_snapshot()["dongle0"]
        assert (entry["State"], entry["DataState"]) == ("Stopped", entry["DataSetting"])
        assert os.listdir(bench.locks) == []
        await ami.action("DongleStart", Device="dongle0")
        await ami.close()

    asyncio.run(main())
    fake.wait_for_state("dongle0", "Free", TIMEOUT)
    assert fake.devices_snapshot()["dongle0"]["IMEIState"] == IMEI_A
    assert fake.crashes == [] and fake.hazards == []


def test_cli_commands_stop_start_and_show(
    bench: Bench, make_fake: Callable[..., FakeAsterisk]
) -> None:
    one_stick(bench)
    fake = make_fake(interval=30.0, write_classes=("command",))
    fake.wait_for_state("dongle0", "Free", TIMEOUT)

    async def command(text: str) -> list[str]:
        ami = await Ami.connect(fake.port)
        await ami.login(events="off")
        reply = await ami.action("Command", Command=text)
        await ami.close()
        assert (reply["Response"], reply["Message"]) == ("Success", "Command output follows")
        return reply.get_all("Output")

    asyncio.run(command("dongle stop now dongle0"))
    fake.wait_for_state("dongle0", "Stopped", 1.0)
    table = asyncio.run(command("dongle show devices"))
    assert table[0].split()[:3] == ["ID", "Group", "State"]
    assert table[1].split()[:3] == ["dongle0", "0", "Stopped"]
    asyncio.run(command("dongle start dongle0"))
    fake.wait_for_state("dongle0", "Free", TIMEOUT, imei=IMEI_A)
    asyncio.run(command("module reload chan_dongle.so"))
    fake.wait_for(lambda: fake.reload_count == 1, 1.0)


def test_one_of_data_audio_skipped_and_bad_imei_dropped(
    bench: Bench, make_fake: Callable[..., FakeAsterisk]
) -> None:
    bench.conf.write_text(
        "[dongle0]\ndata=/dev/null/a\n\n[dongle1]\ndata=/dev/null/b\naudio=/dev/null/c\n"
        "imei=12345\n"
    )
    fake = make_fake()
    snapshot = fake.devices_snapshot()
    assert list(snapshot) == ["dongle1"]
    assert snapshot["dongle1"]["IMEISetting"] == ""
    assert any("should use together" in m for m in fake.log_messages)


# --- Asterisk as a whole --------------------------------------------------------------------


def test_restart_drops_sessions_and_reopens_devices_per_file(
    bench: Bench, make_fake: Callable[..., FakeAsterisk]
) -> None:
    fake = stick_pulled(bench, make_fake)

    async def main() -> None:
        ami = await Ami.connect(fake.port)
        await ami.login(events="off")
        await ami.action("DongleStop", Device="dongle0", When="now")
        fake.wait_for_state("dongle0", "Stopped", 1.0)
        bench.plug(StickSim(IMEI_B, IMSI_B), "ttyUSB2", "ttyUSB1")
        # a restart forgets the DongleStop: the foreign stick at the old path is bound at once
        fake.restart()
        assert await ami.read() is None  # the session was dropped
        await ami.close()

    asyncio.run(main())
    fake.wait_for_state("dongle0", "Free", TIMEOUT, imei=IMEI_B)
    assert fake.restart_count == 1
    assert len(fake.foreign_bindings) == 1


def test_go_down_and_come_up_on_the_same_port(
    bench: Bench, make_fake: Callable[..., FakeAsterisk]
) -> None:
    bench.write_conf()
    fake = make_fake()
    port = fake.port

    async def main() -> None:
        ami = await Ami.connect(port)
        await ami.login(events="off")
        fake.go_down()
        assert await ami.read() is None
        await ami.close()
        with pytest.raises(ConnectionRefusedError):
            await Ami.connect(port)
        fake.come_up()
        again = await Ami.connect(port)
        assert (await again.login())["Response"] == "Success"
        await again.close()

    asyncio.run(main())
    assert fake.port == port


def test_never_answer_and_garbage_modes(
    bench: Bench, make_fake: Callable[..., FakeAsterisk]
) -> None:
    bench.write_conf()
    fake = make_fake()

    async def main() -> None:
        fake.never_answer = True
        reader, writer = await asyncio.open_connection("127.0.0.1", fake.port)
        writer.write(b"Action: Login\r\nUsername: dongled\r\nSecret: s3cret\r\n\r\n")
        await writer.drain()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(1), 0.3)
        writer.close()
        await writer.wait_closed()
        fake.never_answer = False
        fake.garbage_mode = True
        reader, writer = await asyncio.open_connection("127.0.0.1", fake.port)
        junk = await asyncio.wait_for(reader.read(100), TIMEOUT)
        assert not junk.startswith(b"Asterisk Call Manager")
        assert b"\xff" in junk
        writer.close()
        await writer.wait_closed()

    asyncio.run(main())
    assert [a[1] for a in fake.actions] == []  # never_answer does not even parse


def test_stop_leaves_no_thread_fd_or_lock(bench: Bench) -> None:
    one_stick(bench)
    server_thread()  # modemsim's own thread: started before counting
    threads = set(threading.enumerate())
    fds = set(os.listdir("/proc/self/fd"))
    fake = FakeAsterisk(str(bench.conf), lock_dir=str(bench.locks), interval=INTERVAL)
    fake.start()
    fake.wait_for_state("dongle0", "Free", TIMEOUT)

    async def connect() -> None:
        ami = await Ami.connect(fake.port)
        await ami.login(events="off")
        fake.stop()
        assert await ami.read() is None
        await ami.close()

    asyncio.run(connect())
    assert set(threading.enumerate()) == threads
    assert set(os.listdir("/proc/self/fd")) == fds
    assert os.listdir(bench.locks) == []
    fake.stop()  # idempotent


# --- the config parser ----------------------------------------------------------------------


def test_parser_templates_first_match_append_and_include(tmp_path: Path) -> None:
    (tmp_path / "extra.conf").write_text("[dongle1]\ndata => /dev/ttyUSB7 ; arrow\n")
    conf = tmp_path / "dongle.conf"
    conf.write_text(
        ";-- a block\n[not]\n;-- nested --;\nstill comment --;\n"
        "[general]\ninterval=15 ; trailing\n"
        "[tpl](!)\ndata=/dev/ttyTPL\ncontext=from-tpl\n"
        "[dongle0](tpl)\ndata=/dev/ttyUSB2\naudio=/dev/ttyUSB1\ncontext=own\nexten=a\\;b\n"
        "exten+=c\n"
        "[dongle0](+)\nimei=351234567890123\n"
        "#include extra.conf\n"
        "#tryinclude missing.conf\n"
        "a line without equals\n"
    )
    parsed = parse_conf(str(conf))
    assert [s.name for s in parsed.sections] == ["general", "tpl", "dongle0", "dongle1"]
    dongle0 = parsed.find("dongle0")
    assert dongle0 is not None
    assert dongle0.first("data") == "/dev/ttyTPL"  # the template's data= wins
    assert dongle0.last("context") == "own"
    assert dongle0.last("exten") == "a;bc"
    assert dongle0.first("imei") == "351234567890123"
    dongle1 = parsed.find("dongle1")
    assert dongle1 is not None
    assert dongle1.first("data") == "/dev/ttyUSB7"
    assert any("no '='" in w for w in parsed.warnings)


@pytest.mark.parametrize(
    "text",
    [
        "[dongle0\ndata=x\n",
        "data=x\n[dongle0]\n",
        "[dongle0](tpl\n",
        "[dongle0](+)\n",
        "[dongle0](nosuch)\n",
        "[dongle0]\n#include nosuch.conf\n",
    ],
)
def test_parser_rejects_what_asterisk_rejects(tmp_path: Path, text: str) -> None:
    conf = tmp_path / "dongle.conf"
    conf.write_text(text)
    with pytest.raises(ConfParseError):
        parse_conf(str(conf))


def test_unparsable_conf_at_start_loads_no_device(
    bench: Bench, make_fake: Callable[..., FakeAsterisk]
) -> None:
    bench.conf.write_text("data=/dev/ttyUSB2\n")
    fake = make_fake()
    assert fake.devices_snapshot() == {}
    assert len(fake.hazards) == 1
