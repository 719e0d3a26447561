"""Stick models and udev translation: pure tests, then every model end to end under umockdev."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dongled.hotplug.udev import tty_info_from
from dongled.modem import models
from tests.support.marks import needs_umockdev
from tests.support.modemsim import (
    E171_LAYOUT_21_USB,
    E171_LAYOUT_32_USB,
    E173_USB,
    E1550_USB,
    K3765_USB,
    UsbModel,
)
from tests.support.rig import rig

USB = "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1.4"


def test_tty_info_from_sysfs_attributes() -> None:
    info = tty_info_from(
        "/dev/ttyUSB7",
        USB + "/1-1.4:1.2/ttyUSB7/tty/ttyUSB7",
        {"bInterfaceNumber": "02"},
        USB,
        {"idVendor": "12D1", "idProduct": "1001"},
    )
    assert info is not None
    assert (info.interface, info.vid, info.pid, info.usb_port) == (2, "12d1", "1001", "1-1.4")


@pytest.mark.parametrize(
    "devnode", ["/dev/ttyUSB1\ndata=/dev/x", "/dev/tty USB1", "/dev/../etc/passwd", "/dev/a;b"]
)
def test_unsafe_device_names_never_become_ports(devnode: str) -> None:
    iface = {"bInterfaceNumber": "02"}
    usb = {"idVendor": "12d1", "idProduct": "1001"}
    assert tty_info_from(devnode, "/sys/x", iface, USB, usb) is None


def test_not_usb_serial_is_ignored() -> None:
    assert tty_info_from("/dev/ttyS0", "/sys/x", None, None, None) is None


def test_candidates_follow_the_interfaces_present() -> None:
    e171 = models.candidates("12d1", "1506", frozenset({0, 1, 2, 3}))
    assert [(c.data, c.audio) for c in e171] == [(3, 2), (2, 1)]
    e171b = models.candidates("12d1", "1506", frozenset({0, 1, 2}))
    assert [(c.data, c.audio) for c in e171b] == [(2, 1)]
    unknown = models.candidates("1234", "5678", frozenset({0, 1, 2}))
    assert [(c.data, c.audio) for c in unknown] == [(2, 1), (1, 0)]


def test_completeness_waits_for_all_ports_of_a_known_model() -> None:
    assert not models.complete("12d1", "1001", frozenset({0, 2}))
    assert models.complete("12d1", "1001", frozenset({0, 1, 2}))
    assert not models.complete("1234", "5678", frozenset({0, 1, 2}))  # unknown: settle time


@needs_umockdev
@pytest.mark.parametrize(
    "model",
    [E1550_USB, E173_USB, E171_LAYOUT_32_USB, E171_LAYOUT_21_USB, K3765_USB],
    ids=lambda m: m.name,
)
def test_each_model_is_found_on_its_at_port(tmp_path: Path, model: UsbModel) -> None:
    with rig(tmp_path, 2, model=model) as r:
        r.wait_all_right(timeout=10)
        r.unplug(0, 1)  # before dongled runs: the file is stale when it starts
        r.replug(1)
        r.replug(0)
        time.sleep(0.2)
        r.start_daemon()
        r.wait_all_right()
        r.assert_never_foreign()
        r.assert_only_ports_changed()
        for stick in r.sticks:  # the E1550's modem port answers AT too: never probed
            silent = [p for p in stick.ports.values() if p.interface != model.data_interface]
            assert all(p.received == b"" for p in silent), model.name
            for cmd in stick.data_port.sim_port.commands:
                assert not cmd.upper().startswith(("ATZ", "AT+CFUN", "AT^CURC", "AT^U2DIAG"))
