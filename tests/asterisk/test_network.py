"""A line's registration and signal, read from every string the drivers print for them
(chan_dongle 2bd3fc2 and chan_quectel IM e8ea515: GSM_regstate2str() and rssi2dBm(); RE
5552c36: the State and RSSI columns of `quectel show devices`)."""

from __future__ import annotations

import pytest

from dongled.asterisk.device import DeviceEntry
from dongled.asterisk.network import (
    REGISTRATION_TEXTS,
    Registration,
    csq_dbm,
    registration_from_state,
    registration_of,
    rssi_dbm,
)
from dongled.drivers.quectel_cli import STATES, CliDevice

R = Registration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Not registered, not searching", R.NOT_REGISTERED),  # +CREG status 0
        ("Registered, home network", R.REGISTERED),  # 1
        ("Not registered, but searching", R.NOT_REGISTERED),  # 2
        ("Registration denied", R.DENIED),  # 3
        ("Unknown", R.UNKNOWN),  # 4, and -1: not connected or not asked yet
        ("Registered, roaming", R.REGISTERED),  # 5
        ("", R.UNKNOWN),  # an entry without the field
        ("Registered for SMS only", R.UNKNOWN),  # not a chan_dongle/IM string: no guess
    ],
)
def test_registration_of_the_ami_field(text: str, expected: Registration) -> None:
    assert registration_of(text) is expected


def test_the_table_holds_exactly_the_drivers_six_names() -> None:
    assert len(REGISTRATION_TEXTS) == 6


@pytest.mark.parametrize(
    ("text", "dbm"),
    [
        ("0, <= -113 dBm", -113),  # the floor, and the value after a disconnect
        ("1, -111 dBm", -111),
        ("17, -79 dBm", -79),
        ("20, -73 dBm", -73),
        ("30, -53 dBm", -53),
        ("31, >= -51 dBm", -51),  # the ceiling
        ("99, unknown or unmeasurable", None),  # the modem could not measure
        ("32, unknown or unmeasurable", None),
        ("", None),
        ("unknown", None),
    ],
)
def test_rssi_of_the_ami_field(text: str, dbm: int | None) -> None:
    assert rssi_dbm(text) == dbm


def test_the_dbm_of_every_csq_value_is_the_one_the_drivers_print() -> None:
    for n in range(0, 32):
        printed = "<= -113 dBm" if n == 0 else ">= -51 dBm" if n == 31 else f"{2 * n - 113} dBm"
        assert str(csq_dbm(n)) == printed.split()[-2], n
    assert csq_dbm(99) is None


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("Stopped", R.UNKNOWN),
        ("Not connected", R.UNKNOWN),
        ("Not initialized", R.UNKNOWN),
        ("GSM not registered", R.NOT_REGISTERED),
        *((s, R.REGISTERED) for s in STATES[4:]),  # Ring ... Free: RE took it for registered
        ("Something new", R.UNKNOWN),
    ],
)
def test_registration_derived_from_re_s_state(state: str, expected: Registration) -> None:
    assert registration_from_state(state) is expected


def _ami(state: str, reg: str, rssi: str) -> DeviceEntry:
    return DeviceEntry.from_fields(
        {"Device": "dongle0", "State": state, "GSMRegistrationStatus": reg, "RSSI": rssi}
    )


def test_a_device_entry_carries_what_the_driver_said() -> None:
    up = _ami("Free", "Registered, home network", "20, -73 dBm")
    assert (up.registration, up.registration_text, up.rssi_dbm) == (
        R.REGISTERED,
        "Registered, home network",
        -73,
    )
    searching = _ami("GSM not registered", "Not registered, but searching", "17, -79 dBm")
    assert (searching.registration, searching.rssi_dbm) == (R.NOT_REGISTERED, -79)
    # A disconnected device shows the driver's reset values: no reading, not -113 dBm.
    gone = _ami("Not connected", "Unknown", "0, <= -113 dBm")
    assert (gone.registration, gone.rssi_dbm) == (R.UNKNOWN, None)
    starting = _ami("Not initialized", "Unknown", "0, <= -113 dBm")  # no AT+CSQ asked yet
    assert (starting.registration, starting.rssi_dbm) == (R.UNKNOWN, None)
    floor = _ami("Free", "Registered, roaming", "0, <= -113 dBm")  # a reading: the floor
    assert (floor.registration, floor.rssi_dbm) == (R.REGISTERED, -113)


def _row(state: str, rssi: int) -> CliDevice:
    return CliDevice(
        device="dongle0",
        group=0,
        state=state,
        rssi=rssi,
        mode=0,
        provider="",
        model="EC25",
        firmware="",
        imei="",
        imsi="",
        number="",
    )


def test_a_cli_row_carries_the_registration_derived_from_its_state() -> None:
    free = DeviceEntry.from_cli(_row("Free", 20), "dongle0", None)
    assert (free.registration, free.registration_text, free.rssi_dbm) == (
        R.REGISTERED,
        "Free",
        -73,
    )
    down = DeviceEntry.from_cli(_row("GSM not registered", 99), "dongle0", None)
    assert (down.registration, down.rssi_dbm) == (R.NOT_REGISTERED, None)
    for state in ("Not connected", "Stopped", "Not initialized"):
        gone = DeviceEntry.from_cli(_row(state, 0), "dongle0", None)
        assert (gone.registration, gone.rssi_dbm) == (R.UNKNOWN, None), state
