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

from hypothesis import event, given, settings
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
rarely = st.integers(min_value=0, max_value=7).map(lambda n: n == 0)  # ports from a template


@st.composite
def worlds(draw: st.DrawFn, *, settled: bool = False) -> World:
    """`settled`: the file and Asterisk already name each section's stick (a state dongled
    left behind), so what remains is mostly DongleStart or nothing."""
    # Plugged sticks each own two distinct ports; several may share an IMEI (clones).
    free = draw(st.permutations(PORTS))
    located = [
        Located(
            imei=draw(st.sampled_from(IMEIS)),
            imsi=draw(st.one_of(st.none(), st.sampled_from(IMSIS))),
            data=free[2 * i],
            audio=free[2 * i + 1],
        )
        for i in range(draw(st.integers(min_value=0, max_value=4)))
    ]
    sticks = [(loc.data, loc.audio) for loc in located]
    # Sections name no ports, parked ones, any ports, or (often) a plugged stick's.
    ports_of = st.one_of(st.none(), st.just(PARKED), port_pair, *sticks_of(sticks))
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=len(NAMES)))
    # dongle.conf refuses one IMEI in two sections (ConfError): distinct imei= values.
    imeis = draw(st.lists(st.sampled_from(IMEIS * 3 + INVALID), unique=True, min_size=len(names)))
    sections = {}
    for name, imei in zip(names, imeis, strict=False):
        ports = draw(ports_of)
        if settled:
            ports = next(((c.data, c.audio) for c in located if c.imei == imei), ports)
        sections[name] = DeviceSection(
            name=name,
            imei=draw(st.sampled_from((imei, imei, imei, None))),
            imsi=draw(st.one_of(st.none(), st.sampled_from(IMSIS))),
            data=ports[0] if ports else None,
            audio=ports[1] if ports else None,
            data_inherited=draw(rarely),
            audio_inherited=draw(rarely),
            path="/etc/asterisk/dongle.conf",
            line=1,
        )
    if draw(st.booleans()) and draw(st.booleans()):
        return World(sections, located, None)  # AMI down
    # Most sections have a device; devices the file does not know may run too.
    devices = [n for n in names if draw(st.integers(min_value=0, max_value=3)) > 0]
    devices += draw(st.lists(st.sampled_from([n for n in NAMES if n not in names] or NAMES)))
    asterisk = {}
    for name in dict.fromkeys(devices):
        sec = sections.get(name)
        own = [(sec.data, sec.audio)] if sec is not None and sec.data and sec.audio else []
        # Often what the file says: only then can a plain DongleStart (no reload) fit.
        setting = (
            own[0]
            if settled and own
            else draw(st.one_of(st.sampled_from([PARKED, *own, *sticks]), port_pair))
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
@given(st.one_of(worlds(), worlds(settled=True)))
def test_the_safety_rule_holds_for_any_situation(w: World) -> None:
    p = plan(w.sections, w.located, w.asterisk)
    # What the draw covered (shown by --hypothesis-show-statistics).
    imeis = [loc.imei for loc in w.located]
    event("clones" if len(set(imeis)) < len(imeis) else "no clones")
    event("AMI down" if w.asterisk is None else "AMI up")
    event("foreign IMEI stopped" if p.mismatched else "no foreign IMEI")
    event("reload" if p.reload else "no reload")
    event("DongleStart" if p.start else "no DongleStart")
    event("parks a section" if PARKED in p.port_changes.values() else "parks none")
    _check(w, p)


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
