"""The section line status: one case per word, and its precedence."""

from __future__ import annotations

import pytest

from dongled.asterisk.device import DeviceEntry
from dongled.conf.dongleconf import DeviceSection
from dongled.hotplug.sticks import Located
from dongled.reconcile.plan import choose
from dongled.status.linestatus import Line, LineStatus, line_status

A, B = "351234567890124", "356938035643809"
IMSI1, IMSI2 = "250010000000001", "250010000000002"
PA = ("/dev/ttyUSB2", "/dev/ttyUSB1")
PB = ("/dev/ttyUSB5", "/dev/ttyUSB4")
STICK_A = Located(imei=A, imsi=IMSI1, data=PA[0], audio=PA[1])


def sec(imei: str | None = A, imsi: str | None = None) -> DeviceSection:
    return DeviceSection(
        name="d0",
        imei=imei,
        imsi=imsi,
        data=PA[0],
        audio=PA[1],
        data_inherited=False,
        audio_inherited=False,
        path="/x",
        line=1,
    )


def running(imei: str, data: str = PA[0], imsi: str = IMSI1, state: str = "Free") -> DeviceEntry:
    return DeviceEntry(
        device="d0",
        data_setting=PA[0],
        audio_setting=PA[1],
        imei_setting="",
        state=state,
        data_state=data,
        audio_state="",
        imei_state=imei,
        imsi_state=imsi,
        model="",
        calls="0",
        current_state="start",
        desired_state="start",
    )


def status(
    s: DeviceSection,
    located: list[Located],
    entry: DeviceEntry | None,
    *,
    ami_up: bool,
    given_up: str = "",
) -> Line:
    """As the daemon and `dongled status` are meant to call it: after reconcile.choose."""
    return line_status(s, choose(s, s.imei or "", located), entry, ami_up=ami_up, given_up=given_up)


def test_ok_is_verified_on_the_named_data_port() -> None:
    line = status(sec(), [STICK_A], running(A), ami_up=True)
    assert (line.status, line.verified, line.stick, line.detail) == (
        LineStatus.OK,
        True,
        STICK_A,
        "",
    )


def test_running_on_another_port_than_the_file_names_is_pending() -> None:
    line = status(sec(), [STICK_A], running(A, data=PB[0]), ami_up=True)
    assert line.status is LineStatus.PENDING and not line.verified


def test_absent_and_ami_down() -> None:
    assert status(sec(), [], None, ami_up=True).status is LineStatus.ABSENT
    down = status(sec(), [STICK_A], None, ami_up=False)
    assert down.status is LineStatus.PENDING and "no connection" in down.detail


@pytest.mark.parametrize("imei", [None, "123", "35123456789012a"])
def test_without_a_15_digit_imei_the_section_is_unmanaged(imei: str | None) -> None:
    line = status(sec(imei), [STICK_A], running(A), ami_up=True)
    assert line.status is LineStatus.UNMANAGED and line.status.fine
    assert "dongled leaves it alone" in line.detail


def test_a_wrong_check_digit_is_managed_by_its_exact_digits() -> None:
    rewritten = "351234567890125"  # 15 digits, Luhn check digit wrong
    line = status(sec(rewritten), [], running(A), ami_up=True)
    assert line.status is LineStatus.MISMATCH  # managed: A is not those exact digits


def test_foreign_imei_or_a_clones_sim_is_a_mismatch_even_with_the_stick_absent() -> None:
    assert status(sec(), [], running(B), ami_up=True).status is LineStatus.MISMATCH
    clone = status(sec(imsi=IMSI2), [STICK_A], running(A, imsi=IMSI1), ami_up=True)
    assert clone.status is LineStatus.MISMATCH and clone.running == A


def test_clones_without_imsi_are_ambiguous_and_imsi_tells_them_apart() -> None:
    other = Located(imei=A, imsi=IMSI2, data=PB[0], audio=PB[1])
    line = status(sec(), [STICK_A, other], None, ami_up=True)
    assert line.status is LineStatus.AMBIGUOUS and "imsi=" in line.detail and line.stick is None
    told = status(sec(imsi=IMSI2), [STICK_A, other], None, ami_up=True)
    assert told.status is LineStatus.PENDING and told.stick == other


def test_given_up_only_where_the_stick_is_there_and_unverified() -> None:
    why = "still failing after 2 rounds of recovery"
    assert status(sec(), [STICK_A], None, ami_up=True, given_up=why).status is (LineStatus.GIVEN_UP)
    # verified wins: the stick works, whatever the ladder last thought
    assert status(sec(), [STICK_A], running(A), ami_up=True, given_up=why).status is (LineStatus.OK)


def test_which_lines_let_status_exit_0() -> None:
    # a monitoring check: a managed line not verified on its own stick (absent too) is not fine
    fine = {s for s in LineStatus if s.fine}
    assert fine == {LineStatus.OK, LineStatus.UNMANAGED}


def test_schema_1_keeps_its_words() -> None:
    words = {s.schema1 for s in LineStatus}
    assert words == {"ok", "absent", "unmanaged", "pending", "mismatch", "ambiguous"}
    assert LineStatus.GIVEN_UP.schema1 == "pending" and not LineStatus.GIVEN_UP.fine


def test_absent_says_whether_the_section_is_really_parked() -> None:
    """Parked only when the file says so: a failed write leaves the old port in it."""
    from dataclasses import replace

    from dongled.conf.parked import PARKED_AUDIO, PARKED_DATA

    parked = replace(sec(), data=PARKED_DATA, audio=PARKED_AUDIO)
    assert status(parked, [], None, ami_up=True).detail == (
        "its stick is not plugged in; the section is parked"
    )
    assert status(sec(), [], None, ami_up=True).detail == (
        f"its stick is not plugged in; the section is not parked yet (it still names {PA[0]})"
    )
    failed = line_status(sec(), None, None, ami_up=True, file_problem="/x: not replaced")
    assert failed.status is LineStatus.ABSENT
    assert failed.detail == (
        f"its stick is not plugged in, but the section is NOT parked: it still names {PA[0]}; "
        "the file was not written: /x: not replaced"
    )


def test_absent_with_unidentified_sticks_does_not_say_its_stick_is_not_plugged_in() -> None:
    """Replayed on a fresh box (issue 22): the README's step 1 (imei= added) before step 2 (the
    AMI user), with both sticks held by Asterisk, so dongled could identify neither. Status
    said "its stick is not plugged in" for both sections, beside two plugged `busy` sticks."""
    from dataclasses import replace

    from dongled.conf.parked import PARKED_AUDIO, PARKED_DATA

    parked = replace(sec(), data=PARKED_DATA, audio=PARKED_AUDIO)
    two = line_status(parked, None, None, ami_up=False, unidentified=2)
    assert two.status is LineStatus.ABSENT
    assert two.detail == (
        "no plugged stick is known to carry it (2 not identified: see their rows); "
        "the section is parked"
    )
    one = line_status(sec(), None, None, ami_up=True, unidentified=1)
    assert one.detail == (
        "no plugged stick is known to carry it (1 not identified: see its row); the section "
        f"is not parked yet (it still names {PA[0]})"
    )
    # every plugged stick identified: then it really is not plugged in
    assert line_status(parked, None, None, ami_up=True).detail == (
        "its stick is not plugged in; the section is parked"
    )
