"""The umockdev testbed shows fake sticks to pyudev and pyserial like real ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
import pyudev
import serial

from tests.support.marks import needs_umockdev
from tests.support.modemsim import (
    CDROM_MODE_USB,
    E171_LAYOUT_21_USB,
    E171_LAYOUT_32_USB,
    E173,
    E173_USB,
    E1550,
    E1550_USB,
    E171Layout21,
    E171Layout32,
    Role,
    StickSim,
)
from tests.support.testbed import FakeStick, Testbed

pytestmark = [
    pytest.mark.umockdev,
    needs_umockdev,
]

IMSI = "250011234567890"


def imei(n: int) -> str:
    return f"3567890123{n:05d}"


@pytest.fixture
def testbed() -> Iterator[Testbed]:
    with Testbed() as tb:
        yield tb


@pytest.fixture
def monitor() -> pyudev.Monitor:
    mon = pyudev.Monitor.from_netlink(pyudev.Context())
    mon.start()
    return mon


def drain(mon: pyudev.Monitor, timeout: float = 0.3) -> list[tuple[str, str, str]]:
    events: list[tuple[str, str, str]] = []
    while (dev := mon.poll(timeout)) is not None:
        events.append((dev.action, dev.subsystem, dev.sys_name))
    return events


def talk(path: str, *commands: bytes) -> list[bytes]:
    with serial.Serial(path, 115200, timeout=1.0) as port:
        answers = []
        for command in commands:
            port.write(command + b"\r")
            answers.append(port.read_until(b"OK\r\n"))
        return answers


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_add_stick_emits_add_events_tty_last_per_interface(
    testbed: Testbed, monitor: pyudev.Monitor
) -> None:
    testbed.add_stick(E1550_USB, E1550(imei(1), IMSI), [0, 1, 2], usb_port="2")
    events = drain(monitor)
    assert events[0] == ("add", "usb", "1-1.2")
    per_interface = [
        event
        for n in range(3)
        for event in (
            ("add", "usb", f"1-1.2:1.{n}"),
            ("add", "usb-serial", f"ttyUSB{n}"),
            ("add", "tty", f"ttyUSB{n}"),
        )
    ]
    assert events[1:] == per_interface


def test_enumeration_and_sysfs_identity(testbed: Testbed) -> None:
    stick = testbed.add_stick(E173_USB, E173(imei(2), IMSI), [3, 4, 5, 6, 7], usb_port="4")
    ctx = pyudev.Context()
    ttys = sorted(ctx.list_devices(subsystem="tty"), key=lambda d: d.sys_name)
    assert [d.device_node for d in ttys] == [f"/dev/ttyUSB{n}" for n in range(3, 8)]
    for n, dev in enumerate(ttys):
        iface = dev.find_parent("usb", "usb_interface")
        usb = dev.find_parent("usb", "usb_device")
        assert iface is not None
        assert usb is not None
        assert iface.attributes.asstring("bInterfaceNumber") == f"{n:02x}"
        assert usb.attributes.asstring("idVendor") == "12d1"
        assert usb.attributes.asstring("idProduct") == "1436"
        assert usb.sys_path == stick.sys_path
        assert "serial" not in usb.attributes.available_attributes
    assert stick.data_port.devnode == "/dev/ttyUSB7"
    assert stick.audio_port.devnode == "/dev/ttyUSB6"
    assert stick.audio_port.role is Role.SILENT


def test_pyserial_talks_at_to_the_data_port(testbed: Testbed) -> None:
    stick = testbed.add_stick(E1550_USB, E1550(imei(3), IMSI), [0, 1, 2], usb_port="1")
    ate0, cgsn = talk(stick.data_port.devnode, b"ATE0", b"AT+CGSN")
    assert ate0 == b"ATE0\r\r\nOK\r\n"
    assert cgsn == f"\r\n{imei(3)}\r\n\r\nOK\r\n".encode()
    with serial.Serial(stick.data_port.devnode, 115200, timeout=0.2) as port:
        assert port.in_waiting == 0  # ioctls work on testbed nodes
        port.reset_input_buffer()
    assert stick.data_port.received == b"ATE0\rAT+CGSN\r"
    assert stick.audio_port.received == b""
    assert stick.sim.violations == []


def test_e171_layouts_share_vid_pid_but_not_the_data_port(testbed: Testbed) -> None:
    a = testbed.add_stick(E171_LAYOUT_32_USB, E171Layout32(imei(4)), [0, 1, 2, 3], usb_port="1")
    b = testbed.add_stick(E171_LAYOUT_21_USB, E171Layout21(imei(5)), [4, 5, 6], usb_port="2")
    assert (a.data_port.tty_number, a.audio_port.tty_number) == (3, 2)
    assert (b.data_port.tty_number, b.audio_port.tty_number) == (6, 5)
    assert talk("/dev/ttyUSB3", b"ATE0")[0].endswith(b"OK\r\n")
    assert talk("/dev/ttyUSB6", b"ATE0")[0].endswith(b"OK\r\n")


def test_unplug_removes_children_first_and_hangs_up_openers(
    testbed: Testbed, monitor: pyudev.Monitor
) -> None:
    stick = testbed.add_stick(E1550_USB, E1550(imei(6), IMSI), [0, 1, 2], usb_port="3")
    drain(monitor)
    port = serial.Serial("/dev/ttyUSB2", 115200, timeout=1.0)
    try:
        testbed.unplug(stick)
        with pytest.raises(serial.SerialException):
            port.read(10)
    finally:
        port.close()
    events = drain(monitor)
    assert events[:3] == [
        ("remove", "tty", "ttyUSB2"),
        ("remove", "usb-serial", "ttyUSB2"),
        ("remove", "usb", "1-1.3:1.2"),
    ]
    assert events[-1] == ("remove", "usb", "1-1.3")
    assert len(events) == 10
    assert list(pyudev.Context().list_devices(subsystem="tty")) == []
    assert not os.path.lexists(os.path.join(testbed.root_dir, "dev", "ttyUSB2"))
    assert not stick.plugged


def test_replug_same_and_new_numbers_many_times_without_leaking(
    testbed: Testbed, monitor: pyudev.Monitor
) -> None:
    sim = E1550(imei(7), IMSI, echo=False)
    stick = testbed.add_stick(E1550_USB, sim, [0, 1, 2], usb_port="5")
    other = testbed.add_stick(E1550_USB, E1550(imei(8), IMSI), [3, 4, 5], usb_port="6")
    before = fd_count()
    for cycle in range(150):
        numbers = [0, 1, 2] if cycle % 2 else [6, 7, 8]
        testbed.replug(stick, numbers)
        drain(monitor, 0)  # a monitor 1024 events behind makes umockdev abort()
        assert stick.sim is sim
        assert stick.usb_port == "5"
        if cycle % 25 == 0:
            assert talk(stick.data_port.devnode, b"AT+CGSN")[0].startswith(
                f"\r\n{imei(7)}".encode()
            )
    drain(monitor, 0.05)
    assert fd_count() == before
    assert other.plugged
    ttys = {d.sys_name for d in pyudev.Context().list_devices(subsystem="tty")}
    assert ttys == {"ttyUSB0", "ttyUSB1", "ttyUSB2", "ttyUSB3", "ttyUSB4", "ttyUSB5"}


def test_twenty_sticks(testbed: Testbed) -> None:
    sticks: list[FakeStick] = []
    tty = 0
    for n in range(20):
        model, cls = (E173_USB, E173) if n % 2 else (E1550_USB, E1550)
        count = len(model.interfaces)
        sim = cls(imei(100 + n), IMSI, echo=False, answer_delay=0.03)
        sticks.append(testbed.add_stick(model, sim, range(tty, tty + count), usb_port=str(n + 1)))
        tty += count
    assert len(list(pyudev.Context().list_devices(subsystem="tty"))) == tty == 80
    ports = [serial.Serial(s.data_port.devnode, 115200, timeout=1.0) for s in sticks]
    try:
        for port in ports:
            port.write(b"AT+CGSN\r")
        answers = [port.read_until(b"OK\r\n") for port in ports]
    finally:
        for port in ports:
            port.close()
    assert [a.split(b"\r\n")[1].decode() for a in answers] == [s.sim.imei for s in sticks]


def test_cdrom_mode_device_has_no_tty(testbed: Testbed, monitor: pyudev.Monitor) -> None:
    dev = testbed.add_cdrom(usb_port="7")
    assert drain(monitor) == [("add", "usb", "1-1.7"), ("add", "usb", "1-1.7:1.0")]
    usb = pyudev.Devices.from_sys_path(pyudev.Context(), dev.sys_path)
    assert usb.attributes.asstring("idProduct") == CDROM_MODE_USB.pid == "1446"
    assert list(pyudev.Context().list_devices(subsystem="tty")) == []
    testbed.unplug(dev)
    assert drain(monitor) == [("remove", "usb", "1-1.7:1.0"), ("remove", "usb", "1-1.7")]


def test_subprocess_under_wrapper_sees_the_testbed(testbed: Testbed) -> None:
    sim = StickSim(imei(9), IMSI)
    testbed.add_stick(E1550_USB, sim, [0, 1, 2], usb_port="8")
    script = textwrap.dedent(
        """
        import json, pyudev, serial
        ctx = pyudev.Context()
        out = []
        for d in sorted(ctx.list_devices(subsystem="tty"), key=lambda d: d.sys_name):
            i = d.find_parent("usb", "usb_interface")
            out.append([d.device_node, i.attributes.asstring("bInterfaceNumber")])
        with serial.Serial("/dev/ttyUSB2", 115200, timeout=2) as p:
            p.write(b"ATE0\\r"); p.read_until(b"OK\\r\\n")
            p.write(b"AT+CGSN\\r")
            out.append(p.read_until(b"OK\\r\\n").decode())
        print(json.dumps(out))
        """
    )
    result = subprocess.run(
        ["umockdev-wrapper", sys.executable, "-c", script],
        env=testbed.env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out[:3] == [["/dev/ttyUSB0", "00"], ["/dev/ttyUSB1", "01"], ["/dev/ttyUSB2", "02"]]
    assert out[3] == f"\r\n{imei(9)}\r\n\r\nOK\r\n"
    assert sim.ports[2].commands == ["ATE0", "AT+CGSN"]
