"""The safety rule of `reconcile.plan`, as properties over random situations.

Sections (valid and invalid `imei=`, `imsi=` for clones, ports inherited from a template,
USB-audio sections whose voice is an ALSA card), located sticks (clones sharing an IMEI,
sections whose stick is absent, modules with or without a sound card of their own) and
Asterisk's view (None while AMI is down; devices in any state, running foreign IMEIs or
stopped). Whatever the draw, the plan never makes the file name an unverified port or card,
never starts or reloads without something to verify, and stops every device running a SIM
that is not its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hypothesis import event, given, settings
from hypothesis import strategies as st

from dongled.ami import DeviceEntry
from dongled.dongleconf import DeviceSection
from dongled.drivers.alsa import alsadev_for
from dongled.drivers.chan_quectel import QUECTEL_IM
from dongled.identity import valid_imei
from dongled.reconcile import PARKED, PARKED_UAC, Located, Plan, plan

# Valid (Luhn) IMEIs: a small pool, so clones and foreign IMEIs come up often.
IMEIS = ("351234567890124", "356938035643809", "490154203237518", "352099001761481")
INVALID = ("123", "351234567890125", "000000000000000", "35123456789012x")  # bad Luhn, zeros
IMSIS = ("250010000000001", "250010000000002", "250020000000003")
PORTS = tuple(f"/dev/ttyUSB{n}" for n in range(10))
STATES = ("Free", "Not connected", "Stopped", "Dialing", "Ring", "GSM not registered")
NAMES = ("d0", "d1", "d2", "d3")
CARDS = ("Android", "Android_1", "Android_2", "dq0123456789012")  # ALSA card ids
UAC = (("quec_uac", "1"),)  # the IM fork's switch: the section's voice is an ALSA card
uses_uac = QUECTEL_IM.uses_uac

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
        uac = draw(st.booleans())
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
            if uac
            else ports[1]
            if ports
            else None,
            data_inherited=draw(rarely),
            audio_inherited=draw(rarely),
            path="/etc/asterisk/quectel.conf",
            line=1,
            # a USB-audio section may keep an old audio= line: it is not read, nor edited
            alsadev=(ports[1] if ports else None) if uac else None,
            alsadev_inherited=draw(rarely) if uac else False,
            switches=UAC if uac else draw(st.sampled_from(((), (("quec_uac", "0"),)))),
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
        own = [(has[0], has[1])] if has[0] and has[1] else []
        # Often what the file says: only then can a plain DongleStart (no reload) fit. IM
        # lists a USB-audio device's ALSA name as its AudioSetting.
        setting = (
            own[0]
            if settled and own
            else draw(
                st.one_of(
                    st.sampled_from([PARKED, PARKED_UAC, *own, *sticks, *modules]),
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
    """What the section names: (data, audio), or (data, alsadev) with USB audio."""
    return (sec.data, sec.alsadev if uses_uac(sec) else sec.audio)


def _editable(sec: DeviceSection) -> bool:
    voice = sec.alsadev_inherited if uses_uac(sec) else sec.audio_inherited
    return _managed(sec) and not (sec.data_inherited or voice)


def _parked(sec: DeviceSection) -> tuple[str, str]:
    return PARKED_UAC if uses_uac(sec) else PARKED


def _verified_ports(sec: DeviceSection, located: Sequence[Located]) -> set[tuple[str, str]]:
    """The ports a section may name: its IMEI's stick, and among clones only its IMSI's; with
    USB audio, that module's data port and the card under its own USB device."""
    same = [loc for loc in located if loc.imei == sec.imei]
    if len(same) > 1:
        same = [loc for loc in same if sec.imsi and loc.imsi == sec.imsi]
    if uses_uac(sec):
        return {(loc.data, alsadev_for(loc.card)) for loc in same if loc.card}
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
    # After the write, every section dongled manages (and may edit) names only such ports.
    for sec in secs.values():
        if _editable(sec):
            after = _after(sec, p)
            assert after == _parked(sec) or after in _verified_ports(sec, w.located), sec.name
    if w.asterisk is None:
        assert not p.asterisk_actions and not p.expect  # nothing asked of a down Asterisk
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
    p = plan(w.sections, w.located, w.asterisk, uac=uses_uac)
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
    _check(w, p)


@settings(max_examples=EXAMPLES // 5, deadline=None)
@given(worlds())
def test_a_second_pass_over_its_own_result_writes_nothing(w: World) -> None:
    """Plans converge: once the file says what the plan wrote, no further edit follows."""
    first = plan(w.sections, w.located, None, uac=uses_uac)
    rewritten = {name: _rewritten(sec, _after(sec, first)) for name, sec in w.sections.items()}
    assert plan(rewritten, w.located, None, uac=uses_uac).port_changes == {}


def _rewritten(sec: DeviceSection, ports: tuple[str | None, str | None]) -> DeviceSection:
    if uses_uac(sec):
        return dataclasses.replace(sec, data=ports[0], alsadev=ports[1])
    return dataclasses.replace(sec, data=ports[0], audio=ports[1])
