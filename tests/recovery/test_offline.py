"""Lines that dropped off the network: the pure watch that hands them to the ladder."""

from __future__ import annotations

from dataclasses import replace

from dongled.asterisk.device import DeviceEntry
from dongled.asterisk.network import Registration
from dongled.recovery.offline import OfflineWatch, down

UP = DeviceEntry(
    device="dongle0",
    data_setting="/dev/ttyUSB2",
    audio_setting="/dev/ttyUSB1",
    imei_setting="",
    state="Free",
    data_state="/dev/ttyUSB2",
    audio_state="/dev/ttyUSB1",
    imei_state="356938030000005",
    imsi_state="250010000000000",
    model="E1550",
    calls="0",
    current_state="start",
    desired_state="start",
    registration=Registration.REGISTERED,
    registration_text="Registered, home network",
    rssi_dbm=-73,
)
SEARCHING = replace(
    UP,
    state="GSM not registered",
    registration=Registration.NOT_REGISTERED,
    registration_text="Not registered, but searching",
)
DENIED = replace(
    SEARCHING, registration=Registration.DENIED, registration_text="Registration denied"
)
LOST = replace(UP, state="Not connected", data_state="", audio_state="", imei_state="")
STOPPED = replace(LOST, state="Stopped", current_state="stop", desired_state="stop")
PRESENT = {"dongle0": "1-1.1"}


def test_what_counts_as_down() -> None:
    assert down(UP) is None
    assert down(SEARCHING) == "GSM not registered"
    # the drivers show a refused SIM as `GSM not registered`: the reason names the refusal
    assert down(DENIED) == "GSM not registered (Registration denied)"
    # a state that does not say (still initializing) and a registration that does
    assert down(replace(SEARCHING, state="Not initialized")) == "Not registered, but searching"
    assert down(replace(UP, state="Not initialized", registration=Registration.UNKNOWN)) is None
    assert down(LOST) == "Not connected"
    assert down(STOPPED) is None  # stopped on purpose, by dongled or an admin


def test_handed_once_after_the_limit_and_again_after_a_new_outage() -> None:
    w = OfflineWatch(after=600)
    assert w.update(0, {"dongle0": SEARCHING}, PRESENT) == []
    assert w.update(599, {"dongle0": SEARCHING}, PRESENT) == []
    assert w.update(600, {"dongle0": SEARCHING}, PRESENT) == [
        ("dongle0", "device dongle0 has been 'GSM not registered' for 600 s")
    ]
    assert w.update(900, {"dongle0": SEARCHING}, PRESENT) == []  # once per outage
    assert w.update(901, {"dongle0": UP}, PRESENT) == []  # back: the outage ends
    assert w.update(902, {"dongle0": LOST}, PRESENT) == []
    assert w.update(1502, {"dongle0": LOST}, PRESENT) == [
        ("dongle0", "device dongle0 has been 'Not connected' for 600 s")
    ]


def test_a_stick_that_is_not_plugged_in_or_a_watch_turned_off_hands_nothing() -> None:
    w = OfflineWatch(after=10)
    w.update(0, {"dongle0": LOST}, PRESENT)
    assert w.update(20, {"dongle0": LOST}, {}) == []  # its stick left: parking's business
    assert w.update(40, {"dongle0": LOST}, {}) == []
    off = OfflineWatch(after=0)
    assert off.update(0, {"dongle0": LOST}, PRESENT) == []
    assert off.update(10**6, {"dongle0": LOST}, PRESENT) == []
