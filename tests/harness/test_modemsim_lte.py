"""The fake LTE modules (Quectel EC25, SIMCom SIM7600) answer and enumerate like the real ones.

Identity answers follow what the chan_quectel forks send and parse (docs/chan_quectel.md); the
USB layouts are the module table's. The testbed half needs umockdev-wrapper.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import pyudev

from tests.support.at_wire import at, opener
from tests.support.marks import needs_umockdev
from tests.support.modemsim import (
    EC25,
    EC25_UAC_USB,
    EC25_USB,
    SIM7600,
    SIM7600_USB,
    EC25Uac,
    Role,
    StickSim,
    pty_modem,
)
from tests.support.testbed import Testbed

IMEI = "866758041234567"
IMSI = "250011234567890"
ICCID = "89701012345678901234"


def answer(sim: StickSim, command: str) -> bytes:
    with pty_modem(sim) as pm:
        fd = opener(pm.path)
        try:
            return at(fd, command)
        finally:
            os.close(fd)


def ok(*lines: str) -> bytes:
    return b"".join(f"\r\n{line}\r\n".encode() for line in (*lines, "OK"))


@pytest.mark.parametrize(
    ("command", "ec25", "sim7600"),
    [
        ("AT+CGSN", ok(IMEI), ok(IMEI)),
        ("AT+GSN", ok(IMEI), ok(IMEI)),
        ("AT+CIMI", ok(IMSI), ok(IMSI)),
        ("AT+CGMI", ok("Quectel"), ok("SIMCOM INCORPORATED")),
        ("AT+CGMM", ok("EC25"), ok("SIMCOM_SIM7600E-H")),
        ("AT+CGMR", ok("EC25EFAR06A06M4G"), ok("+CGMR: LE20B04SIM7600M22")),
        ("AT+QCCID", ok(f"+QCCID: {ICCID}"), b"\r\nERROR\r\n"),
        ("AT+CICCID", b"\r\nERROR\r\n", ok(f"+ICCID: {ICCID}")),
        ("AT+CCID", b"\r\nERROR\r\n", ok(ICCID)),
        ("AT+QPCMV?", ok("+QPCMV: 1,0"), b"\r\nERROR\r\n"),
        ("AT+CPCMREG?", b"\r\nERROR\r\n", ok("+CPCMREG: 0")),
        ("AT^CVOICE?", b"\r\nERROR\r\n", b"\r\nERROR\r\n"),
        ("AT+CEREG?", ok("+CEREG: 0,1"), ok("+CEREG: 0,1")),
        ("AT+CREG?", ok("+CREG: 0,1"), ok("+CREG: 0,1")),
    ],
)
def test_identity_answers(command: str, ec25: bytes, sim7600: bytes) -> None:
    assert answer(EC25(IMEI, IMSI, iccid=ICCID, echo=False), command) == ec25
    assert answer(SIM7600(IMEI, IMSI, iccid=ICCID, echo=False), command) == sim7600


def test_quectel_ati_has_no_imei_simcom_ati_has() -> None:
    assert answer(EC25(IMEI, IMSI, echo=False), "ATI") == ok(
        "Quectel\r\nEC25\r\nRevision: EC25EFAR06A06M4G"
    )
    simcom = answer(SIM7600(IMEI, IMSI, echo=False), "ATI")
    assert simcom.startswith(b"\r\nManufacturer: SIMCOM INCORPORATED\r\n")
    assert f"\r\nIMEI: {IMEI}\r\n".encode() in simcom


def test_uac_variant_reports_the_usb_sound_card_port() -> None:
    assert answer(EC25Uac(IMEI, IMSI, echo=False), "AT+QPCMV?") == ok("+QPCMV: 1,2")


def test_lte_only_and_no_sim_quirks() -> None:
    lte = EC25(IMEI, IMSI, echo=False, lte_only=True)
    assert answer(lte, "AT+CREG?") == ok("+CREG: 0,2")
    assert answer(lte, "AT+CEREG?") == ok("+CEREG: 0,1")
    bare = SIM7600(IMEI, None, echo=False)
    assert answer(bare, "AT+CICCID") == b"\r\n+CME ERROR: 10\r\n"
    assert answer(bare, "AT+CEREG?") == ok("+CEREG: 0,0")


def test_atz_from_anyone_is_recorded_as_a_violation() -> None:
    sim = EC25(IMEI, IMSI, echo=False)
    assert answer(sim, "ATZ") == b"\r\nOK\r\n"
    assert [v.command for v in sim.violations] == ["ATZ"]


# --- USB layouts in the umockdev testbed -------------------------------------------------------


@pytest.fixture
def testbed() -> Iterator[Testbed]:
    with Testbed() as tb:
        yield tb


@pytest.mark.umockdev
@needs_umockdev
def test_lte_layouts_vid_pid_and_ports(testbed: Testbed) -> None:
    ec25 = testbed.add_stick(EC25_USB, EC25(IMEI, IMSI), [0, 1, 2, 3], usb_port="1")
    simcom = testbed.add_stick(SIM7600_USB, SIM7600(IMEI, IMSI), [4, 5, 6, 7, 8], usb_port="2")
    ctx = pyudev.Context()
    seen = {}
    for dev in ctx.list_devices(subsystem="tty"):
        usb = dev.find_parent("usb", "usb_device")
        iface = dev.find_parent("usb", "usb_interface")
        assert usb is not None
        assert iface is not None
        seen[dev.device_node] = (
            usb.attributes.asstring("idVendor") + ":" + usb.attributes.asstring("idProduct"),
            usb.attributes.asstring("manufacturer"),
            int(iface.attributes.asstring("bInterfaceNumber"), 16),
        )
    assert seen == {
        **{f"/dev/ttyUSB{n}": ("2c7c:0125", "Android", n) for n in range(4)},
        **{f"/dev/ttyUSB{n + 4}": ("1e0e:9001", "SimTech, Incorporated", n) for n in range(5)},
    }
    assert (ec25.data_port.devnode, ec25.audio_port.devnode) == ("/dev/ttyUSB2", "/dev/ttyUSB1")
    assert (simcom.data_port.devnode, simcom.audio_port.devnode) == (
        "/dev/ttyUSB6",
        "/dev/ttyUSB8",
    )
    assert ec25.ports[3].role is Role.MODEM  # the second AT port answers AT too
    assert ec25.sound_card is None
    assert not list(ctx.list_devices(subsystem="sound"))


@pytest.mark.umockdev
@needs_umockdev
def test_uac_modules_get_alsa_cards_under_their_usb_device(testbed: Testbed) -> None:
    first = testbed.add_stick(EC25_UAC_USB, EC25Uac(IMEI), [0, 1, 2, 3], usb_port="1")
    second = testbed.add_stick(EC25_UAC_USB, EC25Uac("866758049999999"), [4, 5, 6, 7], usb_port="2")
    cards = {
        d.sys_path: (d.attributes.asstring("id"), d.attributes.asstring("number"))
        for d in pyudev.Context().list_devices(subsystem="sound")
    }
    assert first.sound_card is not None
    assert second.sound_card is not None
    assert cards == {
        first.sound_card.sys_path: ("Android", "0"),
        second.sound_card.sys_path: ("Android_1", "1"),
    }
    assert first.sound_card.sys_path.startswith(first.sys_path + "/")
    assert second.sound_card.alsa_name == "hw:Android_1"
    # The first module goes: the second keeps its names; a module plugged now takes the
    # free number 0 and the free id "Android" (what "hw:Android" then means has changed).
    testbed.unplug(first)
    third = testbed.add_stick(EC25_UAC_USB, EC25Uac("866758047777777"), [0, 1, 2, 3], usb_port="3")
    assert third.sound_card is not None
    assert (third.sound_card.number, third.sound_card.id) == (0, "Android")
    ids = {d.attributes.asstring("id") for d in pyudev.Context().list_devices(subsystem="sound")}
    assert ids == {"Android", "Android_1"}
