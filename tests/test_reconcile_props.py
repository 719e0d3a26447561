"""The safety rule of `reconcile.plan`, as properties over random situations.

Sections (valid and invalid `imei=`, `imsi=` for clones, ports inherited from a template),
located sticks (clones sharing an IMEI, sections whose stick is absent) and Asterisk's view
(None while AMI is down; devices in any state, running foreign IMEIs or stopped). Whatever
the draw, the plan never makes the file name an unverified port, never starts or reloads
without something to verify, and stops every device running a SIM that is not its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from dongled.ami import DeviceEntry
from dongled.dongleconf import DeviceSection
from dongled.identity import valid_imei
from dongled.reconcile import PARKED, Located, Plan, plan

# Valid (Luhn) IMEIs: a small pool, so clones and foreign IMEIs come up often.
IMEIS = ("351234567890124", "356938035643809", "490154203237518", "352099001761481")
INVALID = ("123", "351234567890125", "000000000000000", "35123456789012x")  # bad Luhn, zeros
IMSIS = ("250010000000001", "250010000000002", "250020000000003")
PORTS = tuple(f"/dev/ttyUSB{n}" for n in range(10))
STATES = ("Free", "Not connected", "Stopped", "Dialing", "Ring", "GSM not registered")
NAMES = ("d0", "d1", "d2", "d3")

# Examples per property; derandomized by the suite's "gate" profile (tests/conftest.py).
EXAMPLES = 1000


@dataclass(frozen=True, slots=True)
class World:
    sections: dict[str, DeviceSection]
    located: list[Located]
    asterisk: dict[str, DeviceEntry] | None


port_pair = st.tuples(st.sampled_from(PORTS), st.sampled_from(PORTS))
maybe_ports = st.one_of(st.none(), st.just(PARKED), port_pair)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=len(NAMES)))
    # dongle.conf refuses one IMEI in two sections (ConfError): distinct imei= values.
    imeis = draw(st.lists(st.sampled_from(IMEIS + INVALID), unique=True, min_size=len(names)))
    sections = {}
    for name, imei in zip(names, imeis, strict=False):
        ports = draw(maybe_ports)
        sections[name] = DeviceSection(
            name=name,
            imei=draw(st.sampled_from((imei, imei, imei, None))),
            imsi=draw(st.one_of(st.none(), st.sampled_from(IMSIS))),
            data=ports[0] if ports else None,
            audio=ports[1] if ports else None,
            data_inherited=draw(st.booleans()),
            audio_inherited=draw(st.booleans()),
            path="/etc/asterisk/dongle.conf",
            line=1,
        )
    # Plugged sticks each own two distinct ports; several may share an IMEI (clones).
    free = list(PORTS)
    located = []
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        data = free.pop(draw(st.integers(min_value=0, max_value=len(free) - 1)))
        audio = free.pop(draw(st.integers(min_value=0, max_value=len(free) - 1)))
        located.append(
            Located(
                imei=draw(st.sampled_from(IMEIS)),
                imsi=draw(st.one_of(st.none(), st.sampled_from(IMSIS))),
                data=data,
                audio=audio,
            )
        )
    if draw(st.booleans()) and draw(st.booleans()):
        return World(sections, located, None)  # AMI down
    asterisk = {}
    for name in draw(st.lists(st.sampled_from(NAMES), unique=True)):
        setting = draw(st.one_of(st.just(PARKED), port_pair))
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


def _managed(sec: DeviceSection) -> bool:
    return valid_imei(sec.imei or "")


def _verified_ports(sec: DeviceSection, located: Sequence[Located]) -> set[tuple[str, str]]:
    """The ports a section may name: its IMEI's stick, and among clones only its IMSI's."""
    same = [loc for loc in located if loc.imei == sec.imei]
    if len(same) > 1:
        same = [loc for loc in same if sec.imsi and loc.imsi == sec.imsi]
    return {(loc.data, loc.audio) for loc in same}


def _after(sec: DeviceSection, p: Plan) -> tuple[str | None, str | None]:
    return p.port_changes.get(sec.name, (sec.data, sec.audio))


def _foreign(sec: DeviceSection, entry: DeviceEntry) -> bool:
    return bool(entry.imei_state) and (
        entry.imei_state != sec.imei or bool(sec.imsi and entry.imsi_state != sec.imsi)
    )


def _check(w: World, p: Plan) -> None:
    secs: Mapping[str, DeviceSection] = w.sections
    # Every port the plan writes is parked or verified for that section's IMEI (and IMSI).
    for name, ports in p.port_changes.items():
        sec = secs[name]
        assert _managed(sec) and not (sec.data_inherited or sec.audio_inherited)
        assert ports == PARKED or ports in _verified_ports(sec, w.located), (name, ports)
    # After the write, every section dongled manages (and may edit) names only such ports.
    for sec in secs.values():
        if _managed(sec) and not (sec.data_inherited or sec.audio_inherited):
            after = _after(sec, p)
            assert after == PARKED or after in _verified_ports(sec, w.located), sec.name
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
        assert _after(secs[name], p) != PARKED, name
    # Every device running a foreign IMEI (or a clone's SIM) is stopped.
    for name, entry in w.asterisk.items():
        owner = secs.get(name)
        if owner is not None and _managed(owner) and _foreign(owner, entry):
            assert name in p.stop and p.mismatched[name] == entry.imei_state, name
    assert len(set(p.stop)) == len(p.stop)


@settings(max_examples=EXAMPLES, deadline=None)
@given(worlds())
def test_the_safety_rule_holds_for_any_situation(w: World) -> None:
    _check(w, plan(w.sections, w.located, w.asterisk))


@settings(max_examples=EXAMPLES // 5, deadline=None)
@given(worlds())
def test_a_second_pass_over_its_own_result_writes_nothing(w: World) -> None:
    """Plans converge: once the file says what the plan wrote, no further edit follows."""
    first = plan(w.sections, w.located, None)
    rewritten = {
        name: DeviceSection(
            name=sec.name,
            imei=sec.imei,
            imsi=sec.imsi,
            data=_after(sec, first)[0],
            audio=_after(sec, first)[1],
            data_inherited=sec.data_inherited,
            audio_inherited=sec.audio_inherited,
            path=sec.path,
            line=sec.line,
        )
        for name, sec in w.sections.items()
    }
    assert plan(rewritten, w.located, None).port_changes == {}
