"""The decision function, exhaustively over the situations a real Asterisk 20 with chan_dongle
was seen in (see docs/design.md, "What a real Asterisk does")."""

from __future__ import annotations

import dataclasses

from dongled.asterisk.device import DeviceEntry
from dongled.conf.dongleconf import DeviceSection
from dongled.conf.parked import PARKED_AUDIO, PARKED_DATA
from dongled.hotplug.sticks import Located
from dongled.reconcile.plan import (
    PARKED,
    Expect,
    check_digit_message,
    foreign_running,
    plan,
    unmanaged_message,
)

A, B = "351234567890124", "356938035643809"
PA = ("/dev/ttyUSB2", "/dev/ttyUSB1")
PB = ("/dev/ttyUSB5", "/dev/ttyUSB4")


def section(name: str, imei: str | None, ports: tuple[str, str] | None) -> DeviceSection:
    data, audio = ports if ports else (None, None)
    return DeviceSection(
        name=name,
        imei=imei,
        imsi=None,
        data=data,
        audio=audio,
        data_inherited=False,
        audio_inherited=False,
        path="/x",
        line=1,
    )


def template_ports(sec: DeviceSection) -> DeviceSection:
    """The same section, its data= inherited from a template (dongled never edits those)."""
    return dataclasses.replace(sec, data_inherited=True)


def entry(
    name: str,
    setting: tuple[str, str],
    *,
    imei: str = "",
    running: str | None = None,
    stopped: bool = False,
) -> DeviceEntry:
    state = "Stopped" if stopped else ("Free" if imei else "Not connected")
    return DeviceEntry(
        device=name,
        data_setting=setting[0],
        audio_setting=setting[1],
        imei_setting="",
        state=state,
        data_state=running or "",
        audio_state="",
        imei_state=imei,
        imsi_state="",
        model="",
        calls="0",
        current_state="stop" if stopped or not imei else "start",
        desired_state="stop" if stopped else "start",
    )


def test_parked_paths_cannot_exist() -> None:
    assert PARKED == (PARKED_DATA, PARKED_AUDIO)
    assert all(p.startswith("/dev/null/") for p in PARKED)


def test_everything_right_means_nothing_to_do() -> None:
    secs = {"d0": section("d0", A, PA)}
    ast = {"d0": entry("d0", PA, imei=A, running=PA[0])}
    p = plan(secs, [Located(imei=A, data=PA[0], audio=PA[1])], ast)
    assert not (p.port_changes or p.stop or p.reload or p.start)
    assert p.expect == {"d0": Expect(imei=A)}


def test_gone_stick_is_parked_and_stopped() -> None:
    secs = {"d0": section("d0", A, PA)}
    p = plan(secs, [], {"d0": entry("d0", PA)})
    assert p.port_changes == {"d0": PARKED}
    assert p.stop == ["d0"] and not p.reload and not p.start


def test_gone_stick_already_stopped_is_not_stopped_again() -> None:
    p = plan({"d0": section("d0", A, PARKED)}, [], {"d0": entry("d0", PARKED, stopped=True)})
    assert not p.port_changes and not p.stop


def test_returned_on_new_ports_rewrites_and_reloads() -> None:
    secs = {"d0": section("d0", A, PARKED)}
    ast = {"d0": entry("d0", PARKED, stopped=True)}
    p = plan(secs, [Located(imei=A, data=PB[0], audio=PB[1])], ast)
    assert p.port_changes == {"d0": PB} and p.reload and p.expect == {"d0": Expect(imei=A)}


def test_same_paths_not_running_gets_dongle_start() -> None:
    secs = {"d0": section("d0", A, PA)}
    ast = {"d0": entry("d0", PA, stopped=True)}
    p = plan(secs, [Located(imei=A, data=PA[0], audio=PA[1])], ast)
    assert not p.port_changes and not p.reload and p.start == ["d0"]


def test_swapped_sticks_foreign_device_is_stopped_then_reloaded() -> None:
    # chan_dongle re-grabbed old paths: d0 runs B's stick, d1 runs A's stick.
    secs = {"d0": section("d0", A, PA), "d1": section("d1", B, PB)}
    ast = {
        "d0": entry("d0", PA, imei=B, running=PA[0]),
        "d1": entry("d1", PB, imei=A, running=PB[0]),
    }
    located = [
        Located(imei=B, data=PA[0], audio=PA[1]),
        Located(imei=A, data=PB[0], audio=PB[1]),
    ]
    p = plan(secs, located, ast)
    assert p.mismatched == {"d0": B, "d1": A}
    assert sorted(p.stop) == ["d0", "d1"]
    assert p.port_changes == {"d0": PB, "d1": PA} and p.reload


def test_without_asterisk_only_the_file_is_made_safe() -> None:
    secs = {"d0": section("d0", A, PA), "d1": section("d1", B, PB)}
    p = plan(secs, [Located(imei=A, data=PB[0], audio=PB[1])], None)
    assert p.port_changes == {"d0": PB, "d1": PARKED}
    assert not (p.stop or p.reload or p.start or p.expect)


def test_unmanaged_and_unbound_are_reported() -> None:
    secs = {"old": section("old", None, PA), "bad": section("bad", "123", PB)}
    p = plan(secs, [Located(imei=A, data=PA[0], audio=PA[1])], None)
    assert p.unmanaged == ["bad", "old"] and p.unbound == [A] and not p.port_changes


def test_section_unknown_to_asterisk_needs_reload() -> None:
    p = plan({"d0": section("d0", A, PA)}, [Located(imei=A, data=PA[0], audio=PA[1])], {})
    assert p.reload and not p.port_changes


def test_template_ports_are_never_edited_but_a_gone_stick_is_stopped() -> None:
    inherited = template_ports(section("d0", A, PA))
    p = plan({"d0": inherited}, [], {"d0": entry("d0", PA)})
    assert p.inherited == ["d0"] and not p.port_changes and p.stop == ["d0"]
    moved = plan(
        {"d0": inherited},
        [Located(imei=A, data=PB[0], audio=PB[1])],
        {"d0": entry("d0", PA, stopped=True)},
    )
    assert not moved.port_changes and not moved.reload and not moved.start and not moved.expect


def test_clone_imeis_are_refused_without_imsi_and_told_apart_with_it() -> None:
    clones = [
        Located(imei=A, imsi="250010000000001", data=PA[0], audio=PA[1]),
        Located(imei=A, imsi="250010000000002", data=PB[0], audio=PB[1]),
    ]
    p = plan({"d0": section("d0", A, PA)}, clones, None)
    assert "imsi=" in p.ambiguous["d0"] and p.port_changes == {"d0": PARKED}
    with_imsi = DeviceSection(
        name="d0",
        imei=A,
        imsi="250010000000002",
        data=PA[0],
        audio=PA[1],
        data_inherited=False,
        audio_inherited=False,
        path="/x",
        line=1,
    )
    ast = {"d0": entry("d0", PA, imei=A, running=PA[0])}
    p = plan({"d0": with_imsi}, clones, ast)
    assert p.port_changes == {"d0": PB} and not p.ambiguous
    assert p.expect == {"d0": Expect(imei=A, imsi="250010000000002")}
    # the device runs the right IMEI but the other clone's SIM: that is a mismatch too
    assert p.mismatched == {"d0": A} and "d0" in p.stop


def test_foreign_sim_on_a_template_section_is_stopped() -> None:
    """Found by the property test: a section whose ports come from a template cannot be
    re-pointed, but a device running another stick's IMEI on it must still be stopped."""
    inherited = template_ports(section("d0", A, PA))
    ast = {"d0": entry("d0", PA, imei=B, running=PA[0])}
    p = plan({"d0": inherited}, [Located(imei=A, data=PB[0], audio=PB[1])], ast)
    assert p.mismatched == {"d0": B} and p.stop == ["d0"]
    assert not p.reload and not p.start and not p.expect


def test_a_rewritten_imei_is_managed_by_its_exact_digits_with_a_warning() -> None:
    rewritten = "351234567890126"  # 15 digits, Luhn check digit wrong
    sections = {
        "d": DeviceSection(
            name="d",
            imei=rewritten,
            imsi=None,
            data="/dev/ttyUSB9",
            audio="/dev/ttyUSB8",
            data_inherited=False,
            audio_inherited=False,
            path="/etc/asterisk/dongle.conf",
            line=7,
        ),
        "short": DeviceSection(
            name="short",
            imei="35123456789012",
            imsi=None,
            data="/dev/ttyUSB5",
            audio="/dev/ttyUSB4",
            data_inherited=False,
            audio_inherited=False,
            path="/etc/asterisk/dongle.conf",
            line=12,
        ),
    }
    near = Located(imei="351234567890124", data="/dev/ttyUSB2", audio="/dev/ttyUSB1")
    exact = Located(imei=rewritten, data="/dev/ttyUSB6", audio="/dev/ttyUSB5")
    p = plan(sections, [near, exact], None)
    assert p.port_changes == {"d": ("/dev/ttyUSB6", "/dev/ttyUSB5")}  # the exact digits only
    assert p.check_digit == ["d"] and p.unmanaged == ["short"]
    assert p.unbound == [near.imei]
    said = check_digit_message(sections["d"])
    assert said.startswith("/etc/asterisk/dongle.conf:7: [d] imei=351234567890126: check digit")
    assert unmanaged_message(sections["short"]) == (
        "/etc/asterisk/dongle.conf:12: [short] imei=35123456789012: not 15 digits: "
        "left alone until it names a stick's 15-digit IMEI"
    )
    # no stick reports it: parked like any managed section, never left on stale ports
    assert plan(sections, [near], None).port_changes == {"d": PARKED}


def test_foreign_running_names_each_device_on_another_imei_only() -> None:
    sections = {
        "d0": section("d0", A, PA),
        "d1": section("d1", B, PB),
        "mine": section("mine", None, PA),  # no imei=: not dongled's
    }
    entries = {
        "d0": entry("d0", PA, imei=B, running=PA[0]),  # the other's SIM
        "d1": entry("d1", PB, imei=B, running=PB[0]),  # its own
        "mine": entry("mine", PA, imei=A, running=PA[0]),
        "new": entry("new", PA, imei=A, running=PA[0]),  # no section (yet): not judged
    }
    assert foreign_running(sections, entries) == {"d0": B}


def test_foreign_running_ignores_a_device_that_runs_nothing() -> None:
    """A stopped or disconnected device may still list its last IMEI: it runs nothing."""
    stopped = dataclasses.replace(entry("d0", PA, imei=B, stopped=True))
    gone = dataclasses.replace(entry("d0", PA, imei=B), state="Not connected")
    for e in (stopped, gone):
        assert foreign_running({"d0": section("d0", A, PA)}, {"d0": e}) == {}
