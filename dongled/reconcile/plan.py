"""The decisions, as a pure function of (config sections, located sticks, Asterisk's state).

The safety rule: whenever dongled writes the config or asks Asterisk to reload or start
anything, no section names a port that dongled has not verified, at that moment, to carry
that section's IMEI. A section whose stick is not located names parked paths that cannot
be opened, and its device is stopped, because a reload or an Asterisk restart would start it
on whatever the file names.

A section whose voice is a USB sound card (chan_quectel's UAC: `alsadev=` instead of `audio=`)
is held to the same rule for its card: `alsadev=` names the card found under the verified
module's USB device, or the parked name. Its plan entries carry (data, alsadev) where the
others carry (data, audio); `Plan.alsa` says which. A section whose voice is a card outside
its module (RE's `uac=ext`) has nothing in sysfs to tie that card to an IMEI: only its data=
is held to the rule (parked when the module is absent), its voice keys are never written, and
its entries carry (data, ""); `Plan.data_only` says which.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dongled.conf.alsadev import alsadev_for
from dongled.conf.parked import PARKED_ALSADEV, PARKED_AUDIO, PARKED_DATA
from dongled.hotplug.sticks import Located
from dongled.modem.identity import imei_problem, luhn_ok, valid_imei

if TYPE_CHECKING:  # `dongled status` imports this module and must stay light (no panoramisk)
    from dongled.asterisk.device import DeviceEntry
    from dongled.conf.dongleconf import DeviceSection

PARKED = (PARKED_DATA, PARKED_AUDIO)
PARKED_UAC = (PARKED_DATA, PARKED_ALSADEV)


@dataclass(frozen=True, slots=True, kw_only=True)
class Expect:
    """What a verified device must report through AMI."""

    imei: str
    imsi: str | None = None  # checked too where the section names imsi= (clone sticks)

    def matches(self, imei_state: str, imsi_state: str) -> bool:
        return imei_state == self.imei and (self.imsi is None or imsi_state == self.imsi)


@dataclass(slots=True, kw_only=True)
class Plan:
    port_changes: dict[str, tuple[str, str]] = field(default_factory=dict)  # file edits
    stop: list[str] = field(default_factory=list)  # DongleStop now (before anything else)
    reload: bool = False
    start: list[str] = field(default_factory=list)  # DongleStart (paths unchanged)
    expect: dict[str, Expect] = field(default_factory=dict)  # device -> what to verify
    mismatched: dict[str, str] = field(default_factory=dict)  # device -> foreign IMEI running
    unmanaged: list[str] = field(default_factory=list)  # sections without a valid imei=
    unbound: list[str] = field(default_factory=list)  # located IMEIs no section names
    inherited: list[str] = field(default_factory=list)  # data/audio from a template: not edited
    ambiguous: dict[str, str] = field(default_factory=dict)  # device -> why no stick is chosen
    check_digit: list[str] = field(default_factory=list)  # managed, imei= fails the Luhn check
    alsa: set[str] = field(default_factory=set)  # USB-audio sections: (data, alsadev) above
    data_only: set[str] = field(default_factory=set)  # external card: (data, "") above


def choose(
    sec: DeviceSection, imei: str, located: Sequence[Located], *, uac: bool = False
) -> Located | str | None:
    """The stick for a section; a string says why none can be chosen safely. (`dongled
    status` asks this too, so it shows what the daemon decides.) `uac`: the section's voice
    is the module's sound card, so a module without exactly one card cannot carry it."""
    choice = _choose(sec, imei, located)
    if uac and isinstance(choice, Located) and choice.card is None:
        return (
            f"the module with IMEI {imei} has no sound card of its own in sysfs (USB audio "
            "off, or its card not there yet); USB audio needs one"
        )
    return choice


def _choose(sec: DeviceSection, imei: str, located: Sequence[Located]) -> Located | str | None:
    same = [loc for loc in located if loc.imei == imei]
    if len(same) <= 1:
        return same[0] if same else None
    if not sec.imsi:
        return (
            f"{len(same)} sticks report IMEI {imei} (clones); add imsi= to [{sec.name}] "
            "so dongled can tell them apart"
        )
    by_imsi = [loc for loc in same if loc.imsi == sec.imsi]
    if len(by_imsi) == 1:
        return by_imsi[0]
    return f"{len(same)} sticks report IMEI {imei} and {len(by_imsi)} of them IMSI {sec.imsi}"


def _mismatch(expect: Expect, entry: DeviceEntry | None) -> bool:
    return (
        entry is not None
        and bool(entry.imei_state)
        and not expect.matches(entry.imei_state, entry.imsi_state)
    )


def foreign_running(
    sections: Mapping[str, DeviceSection], entries: Mapping[str, DeviceEntry]
) -> dict[str, str]:
    """The devices Asterisk runs on another stick than their section's imei= (and imsi=)
    names: device -> the IMEI it runs. A section without a valid imei= is not dongled's; a
    stopped or disconnected device runs nothing (a listing may still show its last IMEI)."""
    out: dict[str, str] = {}
    for name, entry in entries.items():
        sec = sections.get(name)
        if sec is None or not valid_imei(sec.imei or "") or not entry.connected:
            continue
        if _mismatch(Expect(imei=sec.imei or "", imsi=sec.imsi or None), entry):
            out[name] = entry.imei_state
    return out


def _no_uac(sec: DeviceSection) -> bool:
    return False


def plan(
    sections: Mapping[str, DeviceSection],
    located: Sequence[Located],
    asterisk: Mapping[str, DeviceEntry] | None,
    parked: tuple[str, str] = PARKED,
    *,
    uac: Callable[[DeviceSection], bool] = _no_uac,
    ext: Callable[[DeviceSection], bool] = _no_uac,
) -> Plan:
    """What to write and what to ask Asterisk; `asterisk` is None while AMI is unreachable
    (then only the file is made safe, and Asterisk is dealt with once it is back). `parked`
    is the channel driver's (data, audio) of a section whose stick is absent; `uac` tells
    the sections whose voice is their module's USB sound card (`Driver.uses_uac`), `ext` those
    whose voice is a card outside the module (`Driver.uses_ext_uac`)."""
    out = Plan()
    named: set[str] = set()
    for name in sorted(sections):
        sec = sections[name]
        imei = sec.imei or ""
        if not valid_imei(imei):
            out.unmanaged.append(name)
            continue
        named.add(imei)
        if not luhn_ok(imei):
            out.check_digit.append(name)
        usb_audio = uac(sec)
        external = not usb_audio and ext(sec)
        choice = choose(sec, imei, located, uac=usb_audio)
        if isinstance(choice, str):
            out.ambiguous[name] = choice
            choice = None
        stick = choice
        expect = Expect(imei=imei, imsi=sec.imsi or None)
        if usb_audio:
            # The card found under the verified module's USB device at this pass, or parked.
            out.alsa.add(name)
            has = (sec.data, sec.alsadev)
            want = (stick.data, alsadev_for(stick.card)) if stick and stick.card else PARKED_UAC
            blocked = sec.data_inherited or sec.alsadev_inherited
        elif external:
            # The admin's card, whichever module answers: only data= follows the IMEI (a
            # parked data= keeps the device from opening anything, its card included).
            out.data_only.add(name)
            has = (sec.data, "")
            want = (stick.data if stick is not None else parked[0], "")
            blocked = sec.data_inherited
        else:
            has = (sec.data, sec.audio)
            want = (stick.data, stick.audio) if stick is not None else parked
            blocked = sec.data_inherited or sec.audio_inherited
        if blocked:
            out.inherited.append(name)  # editing a template would move other devices too
        elif has != want:
            out.port_changes[name] = want
        if asterisk is None:
            continue
        entry = asterisk.get(name)
        if entry is not None and _mismatch(expect, entry):
            out.mismatched[name] = entry.imei_state
            out.stop.append(name)  # a foreign SIM stops whatever else holds (template too)
        if stick is None:
            if entry is not None and not entry.stopped and name not in out.mismatched:
                out.stop.append(name)
            continue
        if blocked and has != want:
            continue  # cannot point it at its stick; never start it on the template's paths
        out.expect[name] = expect
        edited = name in out.port_changes
        if entry is None or _runs_other(entry, want, usb_audio or external, edited):
            out.reload = True  # Asterisk runs other paths than the file will name
        elif (
            name in out.mismatched
            or entry.desired_state == "stop"  # stopped, or still closing (a restart's stop)
            or not (entry.connected and entry.data_state == want[0])
        ):
            if name in out.mismatched:
                out.reload = True  # restarts the stopped device on its right paths
            elif entry.desired_state == "stop" or entry.state in ("Not connected", "Stopped"):
                out.start.append(name)
    out.unbound = sorted({loc.imei for loc in located} - named)
    return out


def _runs_other(entry: DeviceEntry, want: tuple[str, str], alsa: bool, edited: bool) -> bool:
    """Asterisk runs other settings than the file will name. For a device whose voice is an
    ALSA card the listing's AudioSetting may not show alsadev= (unverified for the real
    forks): an edit of the file is then what says its card changed. An external card is
    the admin's (want[1] is ""): only the data port counts."""
    if not alsa:
        return (entry.data_setting, entry.audio_setting) != want
    if not want[1]:
        return edited or entry.data_setting != want[0]
    return edited or entry.data_setting != want[0] or entry.audio_setting not in ("", want[1])


def check_digit_message(sec: DeviceSection) -> str:
    """The one warning for a section whose imei= fails the Luhn check (file and line)."""
    return (
        f"{sec.imei_where}: [{sec.name}] imei={sec.imei}: check digit wrong; managed "
        "anyway (some operators rewrite IMEIs so), bound only to a stick that reports exactly "
        "these 15 digits: if it is a typo, the line stays parked"
    )


def unmanaged_message(sec: DeviceSection) -> str:
    """Why a section is left alone (file and line)."""
    if not sec.imei:
        return f"{sec.path}:{sec.line}: [{sec.name}] has no imei=: left alone (see `dongled adopt`)"
    return (
        f"{sec.imei_where}: [{sec.name}] imei={sec.imei}: {imei_problem(sec.imei)}: "
        "left alone until it names a stick's 15-digit IMEI"
    )
