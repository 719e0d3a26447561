"""The test Asterisk's chan_quectel forks behave as docs/chan_quectel.md says the real ones do.

Transcripts are checked with the minimal AMI client of test_fake_asterisk (not dongled's).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dongled.drivers.quectel_cli import parse_show_devices
from tests.support.ami_client import TIMEOUT, Ami, Msg
from tests.support.fake_asterisk import FakeAsterisk
from tests.support.fake_asterisk_quectel import (
    PERSONALITIES,
    FakeAsteriskQuectel,
    make_fake_asterisk,
)
from tests.support.fake_bench import (
    IMEI_A,
    IMEI_B,
    IMSI_A,
    QBench,
    command,
    held,
    one_module,
    output,
    write_classes,
)
from tests.support.modemsim import EC25, SIM7600, EC25Uac, StickSim

# --- choosing the personality -------------------------------------------------------------------


def test_personalities_and_the_forks_exclude_each_other(tmp_path: Path) -> None:
    assert "quectel-im+quectel-re" not in PERSONALITIES
    with pytest.raises(ValueError, match="cannot be loaded together"):
        make_fake_asterisk("quectel-im+quectel-re", lock_dir=str(tmp_path), quectel_conf="x")
    with pytest.raises(ValueError, match="needs dongle_conf"):
        make_fake_asterisk("chan_dongle+quectel-re", lock_dir=str(tmp_path), quectel_conf="x")


@pytest.mark.parametrize(
    ("personality", "answered"),
    [
        ("quectel-im", {"QuectelShowDevices"}),
        ("quectel-re", set()),
        ("chan_dongle+quectel-im", {"QuectelShowDevices", "DongleShowDevices"}),
        ("chan_dongle+quectel-re", {"DongleShowDevices"}),
    ],
)
def test_which_show_devices_actions_exist(
    qbench: QBench, make_q: Callable[..., FakeAsterisk], personality: str, answered: set[str]
) -> None:
    qbench.write_qconf()
    fake = make_q(personality)

    async def main() -> set[str]:
        ami = await Ami.connect(fake.port)
        await ami.login(events="off")
        ok = set()
        for action in ("QuectelShowDevices", "DongleShowDevices"):
            reply = await ami.action(action)
            if reply["Response"] == "Success":
                ok.add(action)
                while (await ami.read() or Msg([])).get("EventList") != "Complete":
                    pass
            else:
                assert reply["Message"] == "Invalid/unknown command"
        await ami.close()
        return ok

    assert asyncio.run(main()) == answered


# --- IM: chan_dongle renamed --------------------------------------------------------------------


def test_im_connects_at_load_with_its_conversation_and_lock_file(
    qbench: QBench, make_q: Callable[..., FakeAsterisk]
) -> None:
    one_module(qbench, EC25(IMEI_A, IMSI_A))
    fake = make_q("quectel-im", quectel_interval=30.0)  # no interval pass needed
    entry = fake.wait_for_state("quectel0", "Free", TIMEOUT, imei=IMEI_A)
    assert (entry["Manufacturer"], entry["Model"]) == ("Quectel", "EC25")
    data = qbench.path("ttyUSB2")
    port = next(p for p in qbench._plugged if p.data.path == os.path.realpath(data)).data
    assert port.commands[:10] == [
        "AT",
        "AT^DSCI=1",
        "ATE0",
        "AT+CGMI",
        "AT+CGMM",
        "AT+CGMR",
        "AT+CMEE=0",
        "AT+CGSN",
        "AT+CIMI",
        "AT+CPIN?",
    ]
    assert "ATZ" not in port.commands
    lock = qbench.locks / ("LCK.." + os.path.basename(os.path.realpath(data)))
    assert lock.read_text().split()[0] == str(os.getpid())


def test_im_ami_transcript(qbench: QBench, make_q: Callable[..., FakeAsterisk]) -> None:
    one_module(qbench, EC25(IMEI_A, IMSI_A))
    fake = make_q("quectel-im", **write_classes())
    fake.wait_for_state("quectel0", "Free", TIMEOUT)

    async def main() -> None:
        ami = await Ami.connect(fake.port)
        await ami.login(events="on")
        listing = await ami.list_action("QuectelShowDevices")
        assert listing[0]["Message"] == "Device status list will follow"
        assert listing[0]["EventList"] == "start"
        entry, done = listing[1], listing[2]
        assert entry["Event"] == "QuectelDeviceEntry"
        assert (entry["Device"], entry["State"], entry["IMEIState"]) == ("quectel0", "Free", IMEI_A)
        assert entry["IMEISetting"] == IMEI_A
        assert entry.get("ResetQuectel") == "Yes"
        assert entry.get("ResetDongle") is None
        # chan_dongle's words for the +CREG status and the +CSQ value (EC25: 17)
        assert entry["GSMRegistrationStatus"] == "Registered, home network"
        assert entry["RSSI"] == "17, -79 dBm"
        assert (done["Event"], done["ListItems"]) == ("QuectelShowDevicesComplete", "1")

        reply = await ami.action("QuectelStop", Device="quectel0", When="soon")
        assert (reply["Response"], reply["Message"]) == ("Error", "Invalid value of When")
        reply = await ami.action("QuectelStop", Device="nope", When="now")
        assert (reply["Response"], reply["Message"]) == ("Error", "[nope] Device not found")
        reply = await ami.action("QuectelStop", When="now")
        assert reply["Message"] == "Device not specified"
        reply = await ami.action("QuectelStop", Device="quectel0", When="now")
        assert (reply["Response"], reply["Message"]) == ("Success", "[quectel0] Stop scheduled")
        await ami.event(
            lambda m: m.get("Event") == "QuectelStatus" and m.get("Status") == "Disconnect"
        )
        fake.wait_for_state("quectel0", "Stopped", 1.0)
        reply = await ami.action("QuectelReload", When="now")
        assert (reply["Response"], reply["Message"]) == ("Success", "reload scheduled")
        await ami.event(
            lambda m: m.get("Event") == "QuectelStatus" and m.get("Status") == "Initialize"
        )
        await ami.close()

    asyncio.run(main())
    assert fake.reload_count == 1
    fake.wait_for_state("quectel0", "Free", TIMEOUT)
    assert fake.hazards == []


def test_im_disconnects_on_init_errors_and_retries(
    qbench: QBench, make_q: Callable[..., FakeAsterisk]
) -> None:
    one_module(qbench, EC25(IMEI_A, None))  # no SIM: AT+CIMI fails
    fake = make_q("quectel-im")
    fake.wait_for(lambda: len([m for m in fake.log_messages if "init failed" in m]) >= 2, 3.0)
    assert fake.devices_snapshot()["quectel0"]["State"] == "Not connected"


def test_im_uac_needs_both_keys_and_opens_no_audio_tty(
    qbench: QBench, make_q: Callable[..., FakeAsterisk]
) -> None:
    qbench.write_qconf(
        qbench.section("half", "data=/dev/null/x", "quec_uac=1"),
        qbench.section("uac", f"data={qbench.path('ttyUSB2')}", "quec_uac=1", "alsadev=hw:Android"),
    )
    plugged = qbench.plug(EC25Uac(IMEI_A, IMSI_A), "ttyUSB2", "ttyUSB1")
    fake = make_q("quectel-im")
    assert isinstance(fake, FakeAsteriskQuectel)
    fake.alsa_cards["Android"] = IMEI_A
    entry = fake.wait_for_state("uac", "Free", TIMEOUT)
    assert list(fake.devices_snapshot()) == ["uac"]
    assert any("alsa device must" in m for m in fake.log_messages)
    assert fake.alsa_opens == [("uac", "hw:Android")]
    assert entry["DataSetting"] == qbench.path("ttyUSB2")
    assert plugged.audio.received == b""


# --- RE: the rewrite ----------------------------------------------------------------------------


def first_command_at(qbench: QBench) -> float:
    return min(c.time for p in qbench._plugged for c in p.data.chunks)


def test_re_connects_one_interval_after_load_and_sends_atz(
    qbench: QBench, make_q: Callable[..., FakeAsterisk]
) -> None:
    one_module(qbench, EC25(IMEI_A, IMSI_A))
    loaded = time.monotonic()
    fake = make_q("quectel-re", quectel_interval=0.6)
    fake.wait_for_state("quectel0", "Free", TIMEOUT, imei=IMEI_A)
    assert first_command_at(qbench) - loaded >= 0.55
    port = qbench._plugged[0].data
    assert port.commands[:5] == ["AT", "ATZ", "ATE0", 'AT+CSCS="UCS2"', "AT+CGMI"]
    quectel_stage = port.commands[port.commands.index("AT+VTD=1") + 1 :]
    assert quectel_stage[:4] == ["AT+QCCID", "AT+QTONEDET=1", "AT+QPCMV?", "AT^DSCI=0"]
    # the answer to the last AT queues AT+CSQ: the RSSI column has a reading from then on
    assert quectel_stage[-4:] == ["AT+QTONEDET=0", "AT+CEREG=2", "AT", "AT+CSQ"]
    assert [v.command for v in qbench._plugged[0].sim.violations] == ["ATZ"]
    assert fake.events == []  # RE raises no AMI events


def test_re_locks_the_tty_itself_and_writes_no_lock_file(
    qbench: QBench, make_q: Callable[..., FakeAsterisk]
) -> None:
    one_module(qbench, EC25(IMEI_A, IMSI_A))
    fake = make_q("quectel-re", **write_classes())
    fake.wait_for_state("quectel0", "Free", TIMEOUT)
    assert list(qbench.locks.iterdir()) == []
    assert held(qbench.path("ttyUSB2")) == (True, True)  # TIOCEXCL, flock
    assert output(fake, "quectel stop now quectel0") == ["[quectel0] Stop scheduled"]
    fake.wait_for_state("quectel0", "Stopped", 1.0)
    assert held(qbench.path("ttyUSB2")) == (False, False)  # released with the close


def test_re_refuses_a_tty_someone_holds_exclusively(
    qbench: QBench, make_q: Callable[..., FakeAsterisk]
) -> None:
    one_module(qbench, EC25(IMEI_A, IMSI_A))
    fd = os.open(qbench.path("ttyUSB2"), os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a probe holding the port
        fake = make_q("quectel-re")
        fake.wait_for(lambda: any("Unable to flock" in m for m in fake.log_messages), 2.0)
        assert fake.devices_snapshot()["quectel0"]["State"] == "Not connected"
        fcntl.ioctl(fd, 0x540C)  # TIOCEXCL
        fake.wait_for(lambda: any("locked." in m for m in fake.log_messages), 2.0)
    finally:
        fcntl.ioctl(fd, 0x540D)  # TIOCNXCL
        os.close(fd)
    fake.wait_for_state("quectel0", "Free", TIMEOUT)


def test_re_show_devices_has_the_real_misaligned_format(
    qbench: QBench, make_q: Callable[..., FakeAsterisk]
) -> None:
    one_module(qbench, EC25(IMEI_A, IMSI_A))
    fake = make_q("quectel-re", **write_classes())
    fake.wait_for_state("quectel0", "Free", TIMEOUT)
    lines = output(fake, "quectel show devices")  # (the test client strips each line)
    assert lines[0] == (
        "ID           Group State      RSSI Mode Provide Model          Firmware          Number"
    )
    row = lines[1]
    assert row.startswith("quectel0     0     Free       17   0            EC25           ")
    assert row.split() == [  # RSSI: the raw +CSQ value
        *("quectel0", "0", "Free", "17", "0", "EC25", "EC25EFAR06A06M4G", IMEI_A, IMSI_A)
    ]
    assert row[lines[0].index("Number") :].startswith(IMEI_A)  # "Number" heads the IMEIs
    assert output(fake, "simcom show devices") == lines  # RE's alias
    reply = asyncio.run(command(fake, "dongle show devices"))
    assert reply is not None
    assert reply["Response"] == "Error"


def test_re_ignores_imei_keys_and_binds_whatever_is_there(
    qbench: QBench, make_q: Callable[..., FakeAsterisk]
) -> None:
    one_module(qbench, EC25(IMEI_B, IMSI_A), imei=IMEI_A)
    fake = make_q("quectel-re")
    fake.wait_for_state("quectel0", "Free", TIMEOUT, imei=IMEI_B)
    about_keys = [m for m in fake.log_messages if "imei" in m.lower() and "bound to" not in m]
    assert about_keys == []  # (the "bound to" line is the fake's own oracle, not RE's)
    assert [b[3] for b in fake.foreign_bindings] == [IMEI_B]


def test_re_show_device_state_crashes_asterisk_before_registration(
    qbench: QBench, make_q: Callable[..., FakeAsterisk]
) -> None:
    one_module(qbench, EC25(IMEI_A, None))  # no SIM: stays Not initialized, never registers
    fake = make_q("quectel-re", **write_classes())
    assert isinstance(fake, FakeAsteriskQuectel)
    fake.wait_for_state("quectel0", "Not initialized", TIMEOUT)
    assert output(fake, "quectel show device state nope") == ["Device nope not found"]
    assert asyncio.run(command(fake, "quectel show device state quectel0")) is None
    fake.wait_for(lambda: fake.devices_snapshot() == {}, 2.0)
    assert len(fake.crashes) == 1
    with pytest.raises(ConnectionRefusedError):
        asyncio.run(Ami.connect(fake.port))
    assert held(qbench.path("ttyUSB2")) == (False, False)  # the dead Asterisk holds nothing
    fake.restart()  # systemd starts it again
    fake.come_up()
    fake.wait_for_state("quectel0", "Not initialized", TIMEOUT)


def test_re_show_device_state_is_safe_once_registered(
    qbench: QBench, make_q: Callable[..., FakeAsterisk]
) -> None:
    one_module(qbench, EC25(IMEI_A, IMSI_A))
    fake = make_q("quectel-re", **write_classes())
    assert isinstance(fake, FakeAsteriskQuectel)
    fake.wait_for_state("quectel0", "Free", TIMEOUT)
    lines = output(fake, "quectel show device state quectel0")
    assert lines[0] == "-------------- Status -------------"
    assert f"IMEI                    : {IMEI_A}" in lines
    assert fake.crashes == []


@pytest.mark.parametrize(
    ("sim", "state"),
    [
        (EC25(IMEI_A, IMSI_A, lte_only=True), "GSM not registered"),
        (SIM7600(IMEI_A, IMSI_A, lte_only=True), "Free"),  # its stage asks AT+CEREG?
        (SIM7600(IMEI_A, IMSI_A), "Free"),
    ],
)
def test_re_registration_by_module_family(
    qbench: QBench, make_q: Callable[..., FakeAsterisk], sim: StickSim, state: str
) -> None:
    one_module(qbench, sim)
    fake = make_q("quectel-re")
    fake.wait_for_state("quectel0", state, TIMEOUT, imei=IMEI_A)


def test_re_cli_stop_start_reload(qbench: QBench, make_q: Callable[..., FakeAsterisk]) -> None:
    one_module(qbench, EC25(IMEI_A, IMSI_A))
    fake = make_q("quectel-re", **write_classes())
    fake.wait_for_state("quectel0", "Free", TIMEOUT)
    assert output(fake, "quectel stop now nope") == ["[nope] Device not found"]
    assert output(fake, "quectel stop when convenient quectel0") == ["[quectel0] Stop scheduled"]
    fake.wait_for_state("quectel0", "Stopped", 1.0)
    assert output(fake, "quectel start quectel0") == ["[quectel0] Start scheduled"]
    fake.wait_for_state("quectel0", "Free", TIMEOUT)
    assert output(fake, "quectel stop now quectel0") == ["[quectel0] Stop scheduled"]
    fake.wait_for_state("quectel0", "Stopped", 1.0)
    assert output(fake, "quectel reload now") == [""]
    fake.wait_for_state("quectel0", "Free", TIMEOUT)  # a reload starts stopped devices
    assert fake.reload_count == 1


def test_re_uac_defaults_to_hw_android_and_flags_another_modules_card(
    qbench: QBench, make_q: Callable[..., FakeAsterisk]
) -> None:
    one_module(qbench, EC25Uac(IMEI_A, IMSI_A), "uac=on")
    fake = make_q("quectel-re")
    assert isinstance(fake, FakeAsteriskQuectel)
    fake.alsa_cards["Android"] = IMEI_B  # the other module enumerated first
    fake.wait_for_state("quectel0", "Free", TIMEOUT)
    assert fake.alsa_opens == [("quectel0", "hw:Android")]
    assert any("another module's audio" in h for h in fake.hazards)
    assert qbench._plugged[0].audio.received == b""


def test_re_uac_ext_opens_an_external_card_and_rejects_values_it_does_not_know(
    qbench: QBench, make_q: Callable[..., FakeAsterisk]
) -> None:
    """uac=ext takes hw:0 by default, a card of no module: no hazard, no audio tty. RE reads
    on/true/yes (any case) as on; a value it does not know ("1") is warned about and read as
    off: serial voice on audio=."""
    one_module(qbench, EC25Uac(IMEI_A, IMSI_A), "uac=EXT")
    fake = make_q("quectel-re")
    assert isinstance(fake, FakeAsteriskQuectel)
    fake.alsa_cards["0"] = ""  # a headset's card
    fake.wait_for_state("quectel0", "Free", TIMEOUT)
    assert fake.alsa_opens == [("quectel0", "hw:0")] and fake.hazards == []
    assert qbench._plugged[0].audio.received == b""
    fake.alsa_cards["0"] = IMEI_B  # the same name on another module's card: its audio
    qbench.write_qconf(
        qbench.section(
            "quectel0", f"data={qbench.path('ttyUSB2')}", f"audio={qbench.path('ttyUSB1')}",
            "uac=ext", "alsadev=hw:CARD=0",
        )
    )  # fmt: skip
    fake.admin_reload()
    fake.wait_for(lambda: len(fake.alsa_opens) == 2, TIMEOUT, what="re-opened")
    fake.wait_for_state("quectel0", "Free", TIMEOUT)
    assert any("another module's audio" in h for h in fake.hazards)
    audio = qbench.path("ttyUSB1")
    assert held(audio) == (False, False)  # no audio tty with a card
    qbench.write_qconf(
        qbench.section(
            "quectel0", f"data={qbench.path('ttyUSB2')}", f"audio={qbench.path('ttyUSB1')}",
            "uac=1",
        )
    )  # fmt: skip
    fake.admin_reload()
    fake.wait_for(
        lambda: any("Ignore invalid value of UAC mode '1'" in m for m in fake.log_messages),
        TIMEOUT,
        what="the warning",
    )
    fake.wait_for(lambda: held(audio) == (True, True), TIMEOUT, what="the voice tty held")
    assert len(fake.alsa_opens) == 2  # serial voice now: no card opened


def test_chan_dongle_beside_re(qbench: QBench, make_q: Callable[..., FakeAsterisk]) -> None:
    qbench.write_conf(("dongle0", qbench.path("ttyUSB5"), qbench.path("ttyUSB4"), IMEI_B))
    qbench.plug(StickSim(IMEI_B, IMSI_A), "ttyUSB5", "ttyUSB4")
    one_module(qbench, SIM7600(IMEI_A, IMSI_A))
    fake = make_q("chan_dongle+quectel-re", **write_classes())
    fake.wait_for_state("dongle0", "Free", TIMEOUT, imei=IMEI_B)
    fake.wait_for_state("quectel0", "Free", TIMEOUT, imei=IMEI_A)
    assert output(fake, "dongle show devices")[1].split()[0] == "dongle0"
    assert output(fake, "quectel show devices")[1].split()[0] == "quectel0"
    # only chan_dongle's: Connect, Register, Initialize
    assert [e[1] for e in fake.events] == ["DongleStatus"] * 3


def test_dongled_reads_the_listing_back_through_ami(
    qbench: QBench, make_q: Callable[..., FakeAsterisk]
) -> None:
    imei = "866758041234564"  # dongled checks the Luhn digit
    qbench.write_qconf(
        qbench.section("quectel-modem-one", f"data={qbench.path('ttyUSB2')}", "audio=/dev/null/x"),
        qbench.section("q2", "data=/dev/null/absent", "audio=/dev/null/y"),
    )
    qbench.plug(SIM7600(imei, IMSI_A), "ttyUSB2", "ttyUSB1")
    fake = make_q("quectel-re", **write_classes())
    fake.wait_for(lambda: any("unable to open /dev/null/absent" in m for m in fake.log_messages))
    listing = parse_show_devices(output(fake, "quectel show devices"))
    assert listing.header_seen
    assert listing.unparsed == ()
    assert [(d.device, d.state) for d in listing.devices] == [
        ("quectel-mode", "Not connected"),
        ("q2", "Not connected"),
    ]


def test_im_show_devices_is_chan_dongles_table(
    qbench: QBench, make_q: Callable[..., FakeAsterisk]
) -> None:
    one_module(qbench, EC25(IMEI_A, IMSI_A))
    fake = make_q("quectel-im", **write_classes())
    assert isinstance(fake, FakeAsteriskQuectel)
    fake.wait_for_state("quectel0", "Free", TIMEOUT)
    header, row = output(fake, "quectel show devices")
    assert header.split()[:6] == ["ID", "Group", "State", "RSSI", "Mode", "Submode"]
    assert row[header.index("IMEI") :].startswith(IMEI_A)
    assert row[header.index("State") :].startswith("Free")
    assert output(fake, "quectel show device state quectel0")[0].startswith("-----")
    assert fake.crashes == []  # IM prints it


def test_im_restart_start_and_unmodelled_actions(
    qbench: QBench, make_q: Callable[..., FakeAsterisk]
) -> None:
    one_module(qbench, EC25(IMEI_A, IMSI_A))
    fake = make_q("quectel-im", write_classes=("system", "config", "call"))
    fake.wait_for_state("quectel0", "Free", TIMEOUT)

    async def main() -> list[tuple[str, str]]:
        ami = await Ami.connect(fake.port)
        await ami.login(events="off")
        replies = []
        for action, headers in (
            ("QuectelRestart", {"Device": "quectel0", "When": "when convenient"}),
            ("QuectelStart", {"Device": "quectel0"}),
            ("QuectelSendSMS", {"Device": "quectel0", "Number": "1", "Message": "x"}),
        ):
            reply = await ami.action(action, **headers)
            replies.append((reply["Response"], reply["Message"]))
        await ami.close()
        return replies

    assert asyncio.run(main()) == [
        ("Success", "[quectel0] Restart scheduled"),
        ("Success", "[quectel0] Start scheduled"),
        ("Error", "not modelled by the test Asterisk"),
    ]
    # the restart lets go of the ttys only after close_delay, like a stop
    fake.wait_for(lambda: any("closed (restart)" in m for m in fake.log_messages), TIMEOUT)
    fake.wait_for_state("quectel0", "Free", TIMEOUT)
    restarts = [m for m in fake.log_messages if "closed (restart)" in m]
    assert restarts == ["[quectel0] closed (restart)"]
    assert any(h.startswith("QuectelSendSMS sent") for h in fake.hazards)


def test_chan_dongle_beside_im_each_with_its_own_events(
    qbench: QBench, make_q: Callable[..., FakeAsterisk]
) -> None:
    qbench.write_conf(("dongle0", qbench.path("ttyUSB5"), qbench.path("ttyUSB4"), IMEI_B))
    qbench.plug(StickSim(IMEI_B, IMSI_A), "ttyUSB5", "ttyUSB4")
    one_module(qbench, EC25(IMEI_A, IMSI_A))
    fake = make_q("chan_dongle+quectel-im")
    fake.wait_for_state("dongle0", "Free", TIMEOUT, imei=IMEI_B)
    fake.wait_for_state("quectel0", "Free", TIMEOUT, imei=IMEI_A)
    seen = {(e[1], e[2]["Device"]) for e in fake.events}
    assert seen == {("DongleStatus", "dongle0"), ("QuectelStatus", "quectel0")}


@pytest.mark.parametrize("cli", ["quectel", "simcom"])
def test_re_crash_through_either_cli_name_on_a_never_connected_device(
    qbench: QBench, make_q: Callable[..., FakeAsterisk], cli: str
) -> None:
    qbench.write_qconf(qbench.section("q0", "data=/dev/null/absent"))
    fake = make_q("quectel-re", **write_classes())
    assert isinstance(fake, FakeAsteriskQuectel)
    assert asyncio.run(command(fake, f"{cli} show device state q0")) is None
    [crash] = fake.crashes
    assert crash.startswith(f"'{cli} show device state q0' on a device that never registered")


@pytest.mark.parametrize("fork", ["quectel-im", "quectel-re"])
def test_a_fence_keeps_im_off_a_port_but_not_re(
    qbench: QBench, make_q: Callable[..., FakeAsterisk], fork: str
) -> None:
    """dongled's fence is a UUCP lock on a vanished stick's old port (dongled.modem.portlock.fence),
    held by a live process other than Asterisk. IM honours it, as chan_dongle does; RE, which
    knows only TIOCEXCL and flock, opens the port anyway. The gap this shows: with RE only the
    stop dongled sends at once when a module vanishes keeps its device off the stale path (a
    stopped device is not retried; RE retries a lost one only at its interval tick)."""
    one_module(qbench, EC25(IMEI_A, IMSI_A))
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        data = os.path.realpath(qbench.path("ttyUSB2"))
        lock = qbench.locks / ("LCK.." + os.path.basename(data))
        lock.write_bytes(b"%10d\n" % other.pid)  # portlock.fence's format, another live pid
        fake = make_q(fork, quectel_interval=0.3, **write_classes())
        if fork == "quectel-im":
            fake.wait_for(lambda: any("already used by process" in m for m in fake.log_messages), 3)
            assert fake.devices_snapshot()["quectel0"]["State"] != "Free"
        else:
            fake.wait_for_state("quectel0", "Free", TIMEOUT, imei=IMEI_A)
    finally:
        other.kill()
        other.wait()
