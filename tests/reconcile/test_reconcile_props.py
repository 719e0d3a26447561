"""The safety rule of `reconcile.plan`, as properties over random situations.

Sections (valid and invalid `imei=`, `imsi=` for clones, ports inherited from a template,
USB-audio sections whose voice is their module's ALSA card, in either fork's switch, and RE's
`uac=ext` sections whose voice is a card outside the module), located sticks (clones sharing
an IMEI, sections whose stick is absent, modules with or without a sound card of their own)
and Asterisk's view (None while AMI is down; devices in any state, running foreign IMEIs or
stopped). Whatever the draw, the plan never makes the file name an unverified port or card
(nor writes the voice of a section on an external card),
never starts or reloads without something to verify, and stops every device running a SIM
that is not its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hypothesis import event, given, settings
from hypothesis import strategies as st

from dongled.asterisk.device import DeviceEntry
from dongled.conf.alsadev import alsadev_for
from dongled.conf.dongleconf import DeviceSection
from dongled.conf.parked import PARKED_DATA
from dongled.drivers.chan_quectel import QUECTEL_IM, QUECTEL_RE
from dongled.hotplug.sticks import Located
from dongled.modem.identity import valid_imei
from dongled.reconcile.plan import PARKED, PARKED_UAC, Plan, plan

# Valid (Luhn) IMEIs: a small pool, so clones and foreign IMEIs come up often.
IMEIS = ("351234567890124", "356938035643809", "490154203237518", "352099001761481")
INVALID = ("123", "351234567890125", "000000000000000", "35123456789012x")  # bad Luhn, zeros
IMSIS = ("250010000000001", "250010000000002", "250020000000003")
PORTS = tuple(f"/dev/ttyUSB{n}" for n in range(10))
STATES = ("Free", "Not connected", "Stopped", "Dialing", "Ring", "GSM not registered")
NAMES = ("d0", "d1", "d2", "d3")
CARDS = ("Android", "Android_1", "Android_2", "dq0123456789012")  # ALSA card ids
# The switches that make a section's voice its module's ALSA card (IM's, RE's), a card
# outside the module (RE's uac=ext), or neither. One section carries one fork's switch, so
# the plan can be asked with both forks' predicates at once.
UAC = ((("quec_uac", "1"),), (("uac", "on"),), (("uac", "Yes"),))
EXT = (("uac", "ext"),)
SERIAL = ((), (("quec_uac", "0"),), (("uac", "off"),))
PARKED_EXT = (PARKED_DATA, "")


def uses_uac(sec: DeviceSection) -> bool:
    return QUECTEL_IM.uses_uac(sec) or QUECTEL_RE.uses_uac(sec)


uses_ext = QUECTEL_RE.uses_ext_uac

# Examples per property; derandomized by the suite's "gate" profile (tests/conftest.py).
EXAMPLES = 1000


@dataclass(frozen=True, slots=True)
class World:
    sections: dict[str, DeviceSection]
    located: list[Located]
    asterisk: dict[str, DeviceEntry] | None


port_pair = st.tuples(st.sampled_from(PORTS), st.sampled_from(PORTS))
card_pair = st.tuples(st.sampled_from(PORTS), st.sampled_from(CARDS).map(alsadev_for))
rarely = st.integers(min_value=0, max_value=7).map(lambda n: n == 0)  # ports from a template


@st.composite
def worlds(draw: st.DrawFn, *, settled: bool = False) -> World:
    """`settled`: the file and Asterisk already name each section's stick (a state dongled
    left behind), so what remains is mostly DongleStart or nothing."""
    # Plugged sticks each own two distinct ports, and a module often a card of its own (each
    # card sits under one USB device); several may share an IMEI (clones).
    free = draw(st.permutations(PORTS))
    cards = draw(st.permutations(CARDS))
    located = [
        Located(
            imei=draw(st.sampled_from(IMEIS)),
            imsi=draw(st.one_of(st.none(), st.sampled_from(IMSIS))),
            data=free[2 * i],
            audio=free[2 * i + 1],
            card=draw(st.sampled_from((cards[i], cards[i], None))),
        )
        for i in range(draw(st.integers(min_value=0, max_value=4)))
    ]
    sticks = [(loc.data, loc.audio) for loc in located]
    modules = [(loc.data, alsadev_for(loc.card)) for loc in located if loc.card]
    # Sections name no ports, parked ones, any ports, or (often) a plugged stick's; USB-audio
    # sections name data= and a card the same ways.
    ports_of = st.one_of(st.none(), st.just(PARKED), port_pair, *sticks_of(sticks))
    cards_of = st.one_of(st.none(), st.just(PARKED_UAC), card_pair, *sticks_of(modules))
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=len(NAMES)))
    # dongle.conf refuses one IMEI in two sections (ConfError): distinct imei= values.
    imeis = draw(st.lists(st.sampled_from(IMEIS * 3 + INVALID), unique=True, min_size=len(names)))
    sections = {}
    for name, imei in zip(names, imeis, strict=False):
        kind = draw(st.sampled_from(("serial", "uac", "ext")))
        uac = kind == "uac"
        ports = draw(cards_of if uac else ports_of)
        if settled:
            mine = (
                (c.data, alsadev_for(c.card) if c.card else PARKED_UAC[1])
                if uac
                else (c.data, c.audio)
                for c in located
                if c.imei == imei
            )
            ports = next(mine, ports)
        sections[name] = DeviceSection(
            name=name,
            imei=draw(st.sampled_from((imei, imei, imei, None))),
            imsi=draw(st.one_of(st.none(), st.sampled_from(IMSIS))),
            data=ports[0] if ports else None,
            audio=draw(st.one_of(st.none(), st.sampled_from(PORTS)))
            if kind != "serial"
            else ports[1]
            if ports
            else None,
            data_inherited=draw(rarely),
            audio_inherited=draw(rarely),
            path="/etc/asterisk/quectel.conf",
            line=1,
            # a USB-audio section may keep an old audio= line: it is not read, nor edited
            # an external card's alsadev= is the admin's: anything, or RE's default
            alsadev=(ports[1] if ports else None)
            if uac
            else draw(st.sampled_from((None, "hw:CARD=Headset", "hw:0")))
            if kind == "ext"
            else None,
            alsadev_inherited=draw(rarely) if kind != "serial" else False,
            switches=draw(st.sampled_from(UAC if uac else (EXT,) if kind == "ext" else SERIAL)),
        )
    if draw(st.booleans()) and draw(st.booleans()):
        return World(sections, located, None)  # AMI down
    # Most sections have a device; devices the file does not know may run too.
    devices = [n for n in names if draw(st.integers(min_value=0, max_value=3)) > 0]
    devices += draw(st.lists(st.sampled_from([n for n in NAMES if n not in names] or NAMES)))
    asterisk = {}
    for name in dict.fromkeys(devices):
        sec = sections.get(name)
        has = _has(sec) if sec is not None else (None, None)
        own = [(has[0], has[1])] if has[0] and has[1] is not None else []
        # Often what the file says: only then can a plain DongleStart (no reload) fit. IM
        # lists a USB-audio device's ALSA name as its AudioSetting.
        setting = (
            own[0]
            if settled and own
            else draw(
                st.one_of(
                    st.sampled_from([PARKED, PARKED_UAC, PARKED_EXT, *own, *sticks, *modules]),
                    port_pair,
                    card_pair,
                )
            )
        )
        stopped = draw(st.booleans())
        asterisk[name] = DeviceEntry(
            device=name,
            data_setting=setting[0],
            audio_setting=setting[1],
            imei_setting="",
            state=draw(st.sampled_from(STATES)),
            data_state=draw(st.sampled_from(("", *setting))),
            audio_state="",
            imei_state=draw(st.sampled_from(("", *IMEIS))),
            imsi_state=draw(st.sampled_from(("", *IMSIS))),
            model="E1550",
            calls="0",
            current_state="stop" if stopped else draw(st.sampled_from(("start", "stop"))),
            desired_state="stop" if stopped else draw(st.sampled_from(("start", "stop"))),
        )
    return World(sections, located, asterisk)


def sticks_of(sticks: list[tuple[str, str]]) -> list[st.SearchStrategy[tuple[str, str]]]:
    return [st.sampled_from(sticks)] if sticks else []


def _managed(sec: DeviceSection) -> bool:
    return valid_imei(sec.imei or "")


def _has(sec: DeviceSection) -> tuple[str | None, str | None]:
    """What the section names: (data, audio), or (data, alsadev) with USB audio, or (data, "")
    with an external card (its voice is not dongled's)."""
    if uses_ext(sec):
        return (sec.data, "")
    return (sec.data, sec.alsadev if uses_uac(sec) else sec.audio)


def _editable(sec: DeviceSection) -> bool:
    voice = sec.alsadev_inherited if uses_uac(sec) else sec.audio_inherited
    if uses_ext(sec):
        voice = False  # neither its alsadev= nor its audio= is ever edited
    return _managed(sec) and not (sec.data_inherited or voice)


def _parked(sec: DeviceSection) -> tuple[str, str]:
    return PARKED_UAC if uses_uac(sec) else PARKED_EXT if uses_ext(sec) else PARKED


def _verified_ports(sec: DeviceSection, located: Sequence[Located]) -> set[tuple[str, str]]:
    """The ports a section may name: its IMEI's stick, and among clones only its IMSI's; with
    USB audio, that module's data port and the card under its own USB device."""
    same = [loc for loc in located if loc.imei == sec.imei]
    if len(same) > 1:
        same = [loc for loc in same if sec.imsi and loc.imsi == sec.imsi]
    if uses_uac(sec):
        return {(loc.data, alsadev_for(loc.card)) for loc in same if loc.card}
    if uses_ext(sec):
        return {(loc.data, "") for loc in same}  # any module: its card is not the module's
    return {(loc.data, loc.audio) for loc in same}


def _after(sec: DeviceSection, p: Plan) -> tuple[str | None, str | None]:
    return p.port_changes.get(sec.name, _has(sec))


def _foreign(sec: DeviceSection, entry: DeviceEntry) -> bool:
    return bool(entry.imei_state) and (
        entry.imei_state != sec.imei or bool(sec.imsi and entry.imsi_state != sec.imsi)
    )


def _check(w: World, p: Plan) -> None:
    secs: Mapping[str, DeviceSection] = w.sections
    # Every port the plan writes is parked or verified for that section's IMEI (and IMSI).
    # With USB audio: every alsadev= written is parked or the card under that IMEI's module.
    for name, ports in p.port_changes.items():
        sec = secs[name]
        assert _editable(sec)
        assert ports == _parked(sec) or ports in _verified_ports(sec, w.located), (name, ports)
    # The plan says which edits are data=/alsadev= rather than data=/audio=.
    assert p.alsa == {n for n, sec in secs.items() if _managed(sec) and uses_uac(sec)}
    assert p.data_only == {n for n, sec in secs.items() if _managed(sec) and uses_ext(sec)}
    # After the write, every section dongled manages (and may edit) names only such ports.
    for sec in secs.values():
        if _editable(sec):
            after = _after(sec, p)
            assert after == _parked(sec) or after in _verified_ports(sec, w.located), sec.name
    if w.asterisk is None:
        assert not (p.stop or p.reload or p.start or p.expect)  # nothing asked of a down Asterisk
        return
    # Every start or reload has something to verify, matching the section's identity.
    assert all(name in p.expect for name in p.start)
    assert not p.reload or p.expect
    for name, want in p.expect.items():
        sec = secs[name]
        assert want.imei == sec.imei and want.imsi == (sec.imsi or None)
        assert _after(sec, p) in _verified_ports(sec, w.located), name
    # No started or expected device is parked.
    for name in (*p.start, *p.expect):
        assert _after(secs[name], p) != _parked(secs[name]), name
    # Every device running a foreign IMEI (or a clone's SIM) is stopped.
    for name, entry in w.asterisk.items():
        owner = secs.get(name)
        if owner is not None and _managed(owner) and _foreign(owner, entry):
            assert name in p.stop and p.mismatched[name] == entry.imei_state, name
    assert len(set(p.stop)) == len(p.stop)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.one_of(worlds(), worlds(settled=True)))
def test_the_safety_rule_holds_for_any_situation(w: World) -> None:
    p = plan(w.sections, w.located, w.asterisk, uac=uses_uac, ext=uses_ext)
    # What the draw covered (shown by --hypothesis-show-statistics).
    imeis = [loc.imei for loc in w.located]
    event("clones" if len(set(imeis)) < len(imeis) else "no clones")
    event("AMI down" if w.asterisk is None else "AMI up")
    event("foreign IMEI stopped" if p.mismatched else "no foreign IMEI")
    event("reload" if p.reload else "no reload")
    event("DongleStart" if p.start else "no DongleStart")
    parks = {PARKED, PARKED_UAC} & set(p.port_changes.values())
    event("parks a section" if parks else "parks none")
    event("writes a card" if p.alsa & p.port_changes.keys() else "writes no card")
    event("external card" if p.data_only & p.port_changes.keys() else "no external card edit")
    _check(w, p)


@settings(max_examples=EXAMPLES // 5, deadline=None)
@given(worlds())
def test_a_second_pass_over_its_own_result_writes_nothing(w: World) -> None:
    """Plans converge: once the file says what the plan wrote, no further edit follows."""
    first = plan(w.sections, w.located, None, uac=uses_uac, ext=uses_ext)
    rewritten = {name: _rewritten(sec, _after(sec, first)) for name, sec in w.sections.items()}
    assert plan(rewritten, w.located, None, uac=uses_uac, ext=uses_ext).port_changes == {}


def _rewritten(sec: DeviceSection, ports: tuple[str | None, str | None]) -> DeviceSection:
    if uses_ext(sec):
        return dataclasses.replace(sec, data=ports[0])  # the voice keys stay as they were
    if uses_uac(sec):
        return dataclasses.replace(sec, data=ports[0], alsadev=ports[1])
    return dataclasses.replace(sec, data=ports[0], audio=ports[1])
