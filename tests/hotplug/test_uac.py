"""USB audio (UAC) sections of chan_quectel: `alsadev=` follows the module's own sound card.

The pure parts: which sections use USB audio (the driver's switch), what the plan writes for
them (the card under the verified module's USB device, or the parked name), and the config
edit (data=/alsadev= only, byte for byte elsewhere). The card discovery itself runs against a
umockdev testbed: real sysfs, real uevents."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import pyudev
from hypothesis import example, given
from hypothesis import strategies as st

from dongled.asterisk.device import DeviceEntry
from dongled.conf import alsadev
from dongled.conf.dongleconf import DeviceSection, DongleConf
from dongled.conf.parked import PARKED_ALSADEV, PARKED_DATA
from dongled.config.settings import Settings
from dongled.core.errors import ConfError
from dongled.drivers.chan_dongle import CHAN_DONGLE
from dongled.drivers.chan_quectel import QUECTEL_IM, QUECTEL_RE
from dongled.hotplug import soundcards as alsa
from dongled.hotplug.fleet import FleetHealth
from dongled.hotplug.registry import RegistryHooks, StickRegistry
from dongled.hotplug.sticks import Located, Stick
from dongled.hotplug.udev import SoundEvent, list_sound_cards, read_card, sound_card
from dongled.modem.fences import Fences
from dongled.modem.identity import Identity
from dongled.reconcile.driverports import file_ports
from dongled.reconcile.plan import PARKED_UAC, Plan, choose, plan
from dongled.telemetry.metrics import Metrics
from tests.support.marks import needs_umockdev
from tests.support.modemsim import EC25_UAC_USB, EC25Uac
from tests.support.testbed import Testbed

A, B = "351234567890124", "356938035643809"
LA = Located(imei=A, data="/dev/ttyUSB2", audio="/dev/ttyUSB1", card="Android")
LB = Located(imei=B, data="/dev/ttyUSB6", audio="/dev/ttyUSB5", card="Android_1")
IM_UAC = QUECTEL_IM.uses_uac

CONF = b"""\
[general]
interval=15

[quectel0]
imei=351234567890124   ; city 0
data=/dev/ttyUSB6      ; AT port
quec_uac=1             ; voice over the module's sound card
alsadev = hw:CARD=Android_1 ; its card
context=city-0

[quectel1]
imei=356938035643809
data=/dev/ttyUSB2
quec_uac=1
context=city-1
"""


def uac_section(name: str, imei: str, data: str | None, card: str | None) -> DeviceSection:
    return DeviceSection(
        name=name,
        imei=imei,
        imsi=None,
        data=data,
        audio=None,
        data_inherited=False,
        audio_inherited=False,
        path="/etc/asterisk/quectel.conf",
        line=1,
        alsadev=card,
        switches=(("quec_uac", "1"),),
    )


def running(name: str, data: str, alsadev: str, imei: str) -> DeviceEntry:
    """A device IM runs with USB audio: its listing shows the ALSA name as AudioSetting."""
    return DeviceEntry(
        device=name,
        data_setting=data,
        audio_setting=alsadev,
        imei_setting="",
        state="Free",
        data_state=data,
        audio_state=alsadev,
        imei_state=imei,
        imsi_state="",
        model="EC25",
        calls="0",
        current_state="start",
        desired_state="start",
    )


# ---- which sections use USB audio ---------------------------------------------------------


def test_the_driver_says_which_switch_turns_usb_audio_on() -> None:
    conf = DongleConf.parse({"/q.conf": CONF}, "/q.conf")
    sec = conf.devices()["quectel0"]
    assert (sec.alsadev, sec.switches) == ("hw:CARD=Android_1", (("quec_uac", "1"),))
    assert IM_UAC(sec) and not CHAN_DONGLE.uses_uac(sec)
    # IM reads USB audio only for exactly 1; the other fork's uac=on means nothing to it.
    for switches in ((("quec_uac", "0"),), (("uac", "on"),), ()):
        assert not IM_UAC(dataclasses.replace(sec, switches=switches))


# ---- the plan -------------------------------------------------------------------------------


def test_each_section_gets_its_own_modules_card_after_renumbering() -> None:
    """The cards swapped ids (the modules enumerated the other way round): each section
    follows its module's card, not the name it had."""
    sections = {
        "quectel0": uac_section("quectel0", A, "/dev/ttyUSB6", "hw:CARD=Android_1"),
        "quectel1": uac_section("quectel1", B, "/dev/ttyUSB2", "hw:CARD=Android"),
    }
    p = plan(sections, [LA, LB], None, uac=IM_UAC)
    assert p.port_changes == {
        "quectel0": ("/dev/ttyUSB2", "hw:CARD=Android"),
        "quectel1": ("/dev/ttyUSB6", "hw:CARD=Android_1"),
    }
    assert p.alsa == {"quectel0", "quectel1"}


def test_an_absent_module_parks_data_and_the_card() -> None:
    sections = {"quectel0": uac_section("quectel0", A, "/dev/ttyUSB2", "hw:CARD=Android")}
    p = plan(sections, [LB], {}, uac=IM_UAC)
    assert p.port_changes == {"quectel0": PARKED_UAC}
    assert PARKED_UAC == (PARKED_DATA, PARKED_ALSADEV)
    assert not p.reload and not p.expect


def test_a_module_without_its_own_card_is_not_chosen() -> None:
    """Its ttys answer with the right IMEI, but no card sits under its USB device (USB audio
    off, or the card not registered yet): nothing safe to name, so the section stays parked."""
    sec = uac_section("quectel0", A, PARKED_DATA, PARKED_ALSADEV)
    bare = dataclasses.replace(LA, card=None)
    why = choose(sec, A, [bare], uac=True)
    assert isinstance(why, str) and "sound card" in why
    assert choose(sec, A, [bare]) == bare  # a serial-voice section does not need one
    p = plan({"quectel0": sec}, [bare], {}, uac=IM_UAC)
    assert p.port_changes == {} and p.ambiguous == {"quectel0": why} and not p.expect


def test_a_new_card_id_alone_is_written_and_reloaded() -> None:
    sections = {"quectel0": uac_section("quectel0", A, "/dev/ttyUSB2", "hw:CARD=Android_1")}
    now = {"quectel0": running("quectel0", "/dev/ttyUSB2", "hw:CARD=Android_1", A)}
    p = plan(sections, [LA], now, uac=IM_UAC)
    assert p.port_changes == {"quectel0": ("/dev/ttyUSB2", "hw:CARD=Android")}
    assert p.reload and p.expect["quectel0"].imei == A


def test_a_device_running_its_own_card_is_left_alone() -> None:
    sections = {"quectel0": uac_section("quectel0", A, "/dev/ttyUSB2", "hw:CARD=Android")}
    now = {"quectel0": running("quectel0", "/dev/ttyUSB2", "hw:CARD=Android", A)}
    p = plan(sections, [LA], now, uac=IM_UAC)
    assert (p.port_changes, p.reload, p.start, p.stop) == ({}, False, [], [])
    # A listing that does not show the ALSA name (unverified for the real forks) is no reason
    # to reload: the file is what Asterisk read.
    quiet = {"quectel0": dataclasses.replace(now["quectel0"], audio_setting="")}
    assert not plan(sections, [LA], quiet, uac=IM_UAC).reload


def test_an_alsadev_from_a_template_is_not_edited() -> None:
    sec = dataclasses.replace(
        uac_section("quectel0", A, "/dev/ttyUSB2", "hw:CARD=Android_1"), alsadev_inherited=True
    )
    p = plan({"quectel0": sec}, [LA], {}, uac=IM_UAC)
    assert p.port_changes == {} and p.inherited == ["quectel0"] and not p.expect


# ---- the edit -------------------------------------------------------------------------------


def test_only_data_and_alsadev_values_change() -> None:
    conf = DongleConf.parse({"/q.conf": CONF}, "/q.conf")
    changes = {
        "quectel0": ("/dev/ttyUSB2", "hw:CARD=Android"),
        "quectel1": ("/dev/ttyUSB6", "hw:CARD=Android_1"),
    }
    after, files = conf.with_ports(changes, alsa={"quectel0", "quectel1"})
    # Values replaced in place (comments and spacing kept); a missing alsadev= is added
    # after the section's last setting, as a missing audio= is.
    want = (
        CONF.replace(b"data=/dev/ttyUSB6      ;", b"data=/dev/ttyUSB2      ;")
        .replace(b"alsadev = hw:CARD=Android_1 ;", b"alsadev = hw:CARD=Android ;")
        .replace(b"data=/dev/ttyUSB2\n", b"data=/dev/ttyUSB6\n")
        .replace(b"context=city-1\n", b"context=city-1\nalsadev=hw:CARD=Android_1\n")
    )
    assert files["/q.conf"] == want
    assert {n: (d.data, d.alsadev, d.audio) for n, d in after.devices().items()} == {
        "quectel0": ("/dev/ttyUSB2", "hw:CARD=Android", None),
        "quectel1": ("/dev/ttyUSB6", "hw:CARD=Android_1", None),
    }
    parked, _ = conf.with_ports({"quectel0": PARKED_UAC}, alsa={"quectel0"})
    assert parked.devices()["quectel0"].alsadev == PARKED_ALSADEV


@pytest.mark.parametrize(
    "value",
    ["hw:Android", "hw:0", "plughw:CARD=Android", "hw:CARD=", "hw:CARD=a--", "hw:CARD=x;y",
     "hw:CARD=" + "A" * 16, "hw:CARD=Andr oid", "/dev/ttyUSB1"],
)  # fmt: skip
def test_an_alsadev_that_is_not_a_card_id_is_never_written(value: str) -> None:
    conf = DongleConf.parse({"/q.conf": CONF}, "/q.conf")
    assert not alsadev.writable(value)
    with pytest.raises(ValueError, match="alsadev"):
        conf.with_ports({"quectel0": ("/dev/ttyUSB2", value)}, alsa={"quectel0"})


@given(st.from_regex(r"\A[A-Za-z0-9_-]{1,16}\Z") | st.from_regex(r"\A[\x21-\x7e]{0,17}\Z"))
@example("Android-")
def test_every_card_id_sysfs_yields_can_be_written(card_id: str) -> None:
    """Discovery and the edit agree: a card sysfs gives dongled always goes into the file
    (one that could not would stop every other section's edit with it), and reads back."""
    found = alsa.cards_from_sysfs(
        {"/sys/devices/x/1-1.1:1.5/sound/card3": {"id": card_id, "number": "3"}}
    )
    if not found:
        return
    value = alsadev.alsadev_for(found[0].id)
    assert alsadev.writable(value)
    conf = DongleConf.parse({"/q.conf": CONF}, "/q.conf")
    after, _ = conf.with_ports({"quectel0": ("/dev/ttyUSB2", value)}, alsa={"quectel0"})
    assert after.devices()["quectel0"].alsadev == value


def test_a_card_path_is_never_taken_for_a_tty() -> None:
    conf = DongleConf.parse({"/q.conf": CONF}, "/q.conf")
    with pytest.raises(ValueError, match="port"):
        conf.with_ports({"quectel0": ("/dev/ttyUSB2", "hw:CARD=Android")})  # not in alsa


def test_an_alsadev_with_a_comment_inside_is_refused() -> None:
    text = CONF.replace(b"alsadev = hw:CARD=Android_1 ;", b"alsadev = hw:CARD=\\;Android_1 ;")
    conf = DongleConf.parse({"/q.conf": text}, "/q.conf")
    with pytest.raises(ConfError, match="comment or escape"):
        conf.with_ports({"quectel0": ("/dev/ttyUSB6", "hw:CARD=Android")}, alsa={"quectel0"})


# ---- the cards in sysfs (umockdev) ----------------------------------------------------------


@needs_umockdev
def test_cards_are_read_from_sysfs_and_their_ids_re_read() -> None:
    with Testbed() as tb:
        first = tb.add_stick(EC25_UAC_USB, EC25Uac(A), [0, 1, 2, 3], usb_port="1")
        second = tb.add_stick(EC25_UAC_USB, EC25Uac(B), [4, 5, 6, 7], usb_port="2")
        cards = list_sound_cards()
        assert [(c.number, c.id) for c in cards] == [(0, "Android"), (1, "Android_1")]
        mine = alsa.card_of(second.sys_path, cards)
        assert mine is not None and mine.id == "Android_1"
        assert alsa.card_of(first.sys_path, cards) == cards[0]
        device = pyudev.Devices.from_sys_path(pyudev.Context(), cards[0].sys_path)
        assert sound_card(device) == cards[0]
        assert read_card(cards[0]) == cards[0]
        tb.unplug(first)
        assert read_card(cards[0]) is None


def registry(tmp_path: Path, requests: list[bool]) -> StickRegistry:
    """The daemon's registry, with hooks that record the passes it asks for."""

    async def no_listing() -> None:
        return None

    hooks = RegistryHooks(
        request=requests.append,
        wake=lambda: None,
        failing=lambda *_: None,
        spawn=lambda *_: None,
        listing=no_listing,
    )
    fleet = FleetHealth(60.0, lambda _: None, lambda: None)
    return StickRegistry(
        Settings(lock_dir=str(tmp_path)), hooks, fences=Fences(str(tmp_path)), fleet=fleet,
        metrics=Metrics(), counters={"probes": 0},
    )  # fmt: skip


@needs_umockdev
def test_the_registry_gives_each_module_its_own_card(tmp_path: Path) -> None:
    """Cards come and go by uevent, in either order with the ttys; a card that arrives or
    leaves for an identified module asks for a pass (at once when it leaves); a pass plans
    with the ids as sysfs has them then."""
    requests: list[bool] = []
    reg = registry(tmp_path, requests)
    with Testbed() as tb:
        mods = [
            tb.add_stick(EC25_UAC_USB, EC25Uac(imei), ttys, usb_port=port)
            for imei, ttys, port in ((A, [0, 1, 2, 3], "1"), (B, [4, 5, 6, 7], "2"))
        ]
        first, second = list_sound_cards()
        reg.on_sound_event(SoundEvent(action="add", sys_path=first.sys_path, card=first))
        assert requests == []  # no stick yet: nothing to plan
        sticks = [
            Stick(
                usb_device=m.sys_path, usb_port=m.name, vid="2c7c", pid="0125",
                identity=Identity(imei=imei), data=m.data_port.devnode, audio="/dev/ttyUSB1",
            )
            for m, imei in zip(mods, (A, B), strict=True)
        ]  # fmt: skip
        reg.sticks = {s.usb_device: s for s in sticks}
        reg.on_sound_event(SoundEvent(action="add", sys_path=second.sys_path, card=second))
        assert [s.card for s in sticks] == ["Android", "Android_1"] and requests == [False]
        reg.on_sound_event(SoundEvent(action="add", sys_path=second.sys_path, card=second))
        assert requests == [False]  # the same card again (a bind, a change of nothing)
        tb.rename_card(mods[0], "dq0123456789012")  # no uevent: the next pass reads it
        assert {loc.imei: loc.card for loc in reg.located()} == {
            A: "dq0123456789012",
            B: "Android_1",
        }
        reg.on_sound_event(SoundEvent(action="remove", sys_path=second.sys_path, card=None))
        assert sticks[1].card is None and requests == [False, True]


def test_a_module_asterisk_runs_with_usb_audio_keeps_its_voice_tty(tmp_path: Path) -> None:
    """Learnt from Asterisk's listing (the fork holds its data port): the listing names the
    ALSA device, or nothing, where a tty would be; the stick still gets the voice tty its
    layout pairs with the data port, so it is located like a probed one."""
    reg = registry(tmp_path, [])
    ports = {0: "/dev/ttyUSB0", 1: "/dev/ttyUSB1", 2: "/dev/ttyUSB2", 3: "/dev/ttyUSB3"}
    usb = "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1.1"
    stick = Stick(usb_device=usb, usb_port="1-1.1", vid="2c7c", pid="0125", ports=dict(ports))
    reg.sticks = {usb: stick}
    (tmp_path / "LCK..ttyUSB2").write_text(f"{os.getppid():10d}\n")  # the fork's lock
    for listed in ("hw:CARD=Android", ""):
        stick.forget_identity()
        reg.learn_from_asterisk({"quectel0": running("quectel0", "/dev/ttyUSB2", listed, A)})
        assert (stick.data, stick.audio, stick.source) == (
            "/dev/ttyUSB2",
            "/dev/ttyUSB1",
            "asterisk",
        )


# ---- RE: uac=on (the module's own card) and uac=ext (a card outside it) ----------------------

RE_CONF = b"""\
[general]
interval=15

[quectel0]
imei=351234567890124   ; city 0
data=/dev/ttyUSB6      ; AT port
uac=On                 ; the module's own card (RE reads the value in any case)
alsadev=hw:CARD=Android_1
context=city-0

[quectel1]
imei=356938035643809
data=/dev/ttyUSB2      ; AT port
audio=/dev/ttyUSB1     ; an old serial line: RE does not read it with uac=ext
uac=ext                ; voice on the desk's USB headset
alsadev=hw:CARD=Headset ; the admin's card
context=city-1

[quectel2]
imei=861234567890127
data=/dev/ttyUSB10
uac=ext                ; RE's default card then: hw:0
"""
LC = Located(imei="861234567890127", data="/dev/ttyUSB10", audio="/dev/ttyUSB9", card=None)


def re_sections() -> dict[str, DeviceSection]:
    return DongleConf.parse({"/q.conf": RE_CONF}, "/q.conf").devices()


def re_plan(located: list[Located], asterisk: dict[str, DeviceEntry] | None) -> Plan:
    return plan(
        re_sections(), located, asterisk, QUECTEL_RE.parked,
        uac=QUECTEL_RE.uses_uac, ext=QUECTEL_RE.uses_ext_uac,
    )  # fmt: skip


def test_re_uac_on_is_managed_like_ims_quec_uac_and_ext_is_not() -> None:
    secs = re_sections()
    assert QUECTEL_RE.uses_uac(secs["quectel0"]) and not QUECTEL_RE.uses_ext_uac(secs["quectel0"])
    for name in ("quectel1", "quectel2"):
        assert QUECTEL_RE.uses_ext_uac(secs[name]) and not QUECTEL_RE.uses_uac(secs[name])
    on = secs["quectel0"]
    for value in ("on", "yes", "TRUE"):  # what RE takes for its module's own card
        assert QUECTEL_RE.uses_uac(dataclasses.replace(on, switches=(("uac", value),)))
    for switches in ((("uac", "off"),), (("uac", "1"),), (("quec_uac", "1"),), ()):
        # off, a value RE rejects (it warns and uses serial voice), the other fork's switch
        sec = dataclasses.replace(on, switches=switches)
        assert not QUECTEL_RE.uses_uac(sec) and not QUECTEL_RE.uses_ext_uac(sec)
    assert not QUECTEL_IM.uses_ext_uac(secs["quectel1"])  # IM has no uac= at all


def test_re_sections_after_renumbering_own_card_followed_external_card_kept() -> None:
    """The modules came back the other way round: uac=on follows its module's card; a
    uac=ext section gets its module's data port and nothing else, whatever card (or none)
    sits under that module, and no audio= is ever written for it."""
    p = re_plan([LA, LB, LC], None)
    assert p.port_changes == {
        "quectel0": ("/dev/ttyUSB2", "hw:CARD=Android"),
        "quectel1": ("/dev/ttyUSB6", ""),
    }
    assert (p.alsa, p.data_only) == ({"quectel0"}, {"quectel1", "quectel2"})
    assert p.ambiguous == {}  # quectel2's module has no card of its own: not needed


def test_re_absent_modules_park_data_and_only_the_own_card() -> None:
    p = re_plan([], {})
    assert p.port_changes == {
        "quectel0": PARKED_UAC,
        "quectel1": (PARKED_DATA, ""),
        "quectel2": (PARKED_DATA, ""),
    }
    assert not p.reload and not p.expect


def test_re_an_external_card_section_running_right_is_left_alone() -> None:
    """RE's listing has no ports: they are the file's as dongled last reloaded it, and the
    voice of a uac=ext section (its audio= line included) is not compared."""
    secs = re_sections()
    now = {
        n: dataclasses.replace(
            running(n, secs[n].data or "", "", imei), audio_setting=secs[n].audio or ""
        )
        for n, imei in (("quectel1", B), ("quectel2", LC.imei))
    }
    lb = dataclasses.replace(LB, data="/dev/ttyUSB2")
    p = re_plan([lb, LC], now)
    assert "quectel1" not in p.port_changes and "quectel2" not in p.port_changes
    assert (p.reload, p.start, sorted(p.expect)) == (False, [], ["quectel1", "quectel2"])
    moved = dataclasses.replace(now["quectel1"], data_setting="/dev/ttyUSB6")
    assert re_plan([lb, LC], {**now, "quectel1": moved}).reload  # RE read another data=


def test_re_the_edit_touches_data_and_the_own_card_only() -> None:
    conf = DongleConf.parse({"/q.conf": RE_CONF}, "/q.conf")
    p = re_plan([LA, LB], None)
    after, files = conf.with_ports(p.port_changes, alsa=p.alsa, data_only=p.data_only)
    want = (
        RE_CONF.replace(b"data=/dev/ttyUSB6      ;", b"data=/dev/ttyUSB2      ;")
        .replace(b"alsadev=hw:CARD=Android_1\n", b"alsadev=hw:CARD=Android\n")
        .replace(
            b"data=/dev/ttyUSB2      ; AT port\naudio", b"data=/dev/ttyUSB6      ; AT port\naudio"
        )
        .replace(b"data=/dev/ttyUSB10\n", b"data=" + PARKED_DATA.encode() + b"\n")
    )
    assert files["/q.conf"] == want
    got = {n: (d.data, d.audio, d.alsadev) for n, d in after.devices().items()}
    assert got == {
        "quectel0": ("/dev/ttyUSB2", None, "hw:CARD=Android"),
        "quectel1": ("/dev/ttyUSB6", "/dev/ttyUSB1", "hw:CARD=Headset"),
        "quectel2": (PARKED_DATA, None, None),  # no alsadev= added: RE's default stays
    }
    assert re_plan([LA, LB], None).port_changes.keys() == p.port_changes.keys()
    again = plan(
        after.devices(), [LA, LB], None, QUECTEL_RE.parked,
        uac=QUECTEL_RE.uses_uac, ext=QUECTEL_RE.uses_ext_uac,
    )  # fmt: skip
    assert again.port_changes == {}  # written once, right from then on


def test_re_runs_no_audio_tty_for_a_usb_audio_section(tmp_path: Path) -> None:
    """RE's listing names no ports: dongled takes them from the file. A uac=on/ext section's
    audio= line is not read by RE, so it is neither a tty RE holds nor a setting to compare
    (else every pass would find it "running other ports" and reload)."""
    path = tmp_path / "quectel.conf"
    path.write_bytes(RE_CONF.replace(b"uac=On ", b"audio=/dev/ttyUSB5\nuac=On "))
    assert file_ports(str(path), QUECTEL_RE) == {
        "quectel0": ("/dev/ttyUSB6", ""),
        "quectel1": ("/dev/ttyUSB2", ""),
        "quectel2": ("/dev/ttyUSB10", ""),
    }
    assert file_ports(str(path), QUECTEL_IM)["quectel1"] == ("/dev/ttyUSB2", "/dev/ttyUSB1")
