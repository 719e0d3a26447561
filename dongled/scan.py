"""One-shot runs without the daemon: `dongled scan` and `dongled adopt`.

scan: list the sticks plugged in now, identify each (from Asterisk's IMEIState where chan_dongle
holds the port, else by the same harmless probe the daemon uses), and compute with the daemon's
own `reconcile.plan` what it would write and ask Asterisk. The result is a unified diff; applying
it writes atomically, sends the Asterisk actions and checks the outcome over AMI.

adopt: for sections that name data=/audio= but no imei=, learn which stick each one runs (from
Asterisk's IMEIState on the port the section names, or a probe where the port is free) and add
the imei= lines, so dongled can manage them from then on.

Both refuse to write while the daemon runs: it owns the file then.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from dongled.asterisk.ami import AmiClient
from dongled.asterisk.control import control_for
from dongled.asterisk.device import DeviceControl, DeviceEntry
from dongled.conf.atomicfile import replace_atomically
from dongled.conf.dongleconf import DeviceSection, DongleConf
from dongled.config.settings import Settings, conf_path
from dongled.core.errors import AmiError, ConfError, PortBusyError, ProbeError
from dongled.drivers.base import Driver
from dongled.drivers.known import drivers_for
from dongled.hotplug.prober import Found, identify
from dongled.hotplug.soundcards import SoundCard, card_of
from dongled.hotplug.sticks import Located, Stick, located
from dongled.hotplug.udev import TtyInfo, list_sound_cards, list_ttys
from dongled.modem import models
from dongled.modem.conversation import ProbeTimeouts
from dongled.modem.fences import Fences
from dongled.modem.identity import valid_imei
from dongled.modem.lte import Family
from dongled.modem.probe import identify_port
from dongled.reconcile.driverports import file_ports
from dongled.reconcile.executor import PassExecutor, PassHooks, driver_plan, file_imeis
from dongled.reconcile.plan import Plan
from dongled.telemetry.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(slots=True, kw_only=True)
class Asterisk:
    """What AMI said, or why it could not be asked."""

    client: AmiClient
    control: DeviceControl  # the driver's, over `client`
    devices: dict[str, DeviceEntry] | None = None
    error: str = ""


@dataclass(slots=True, kw_only=True)
class Change:
    """A proposed edit of a driver's file (dongle.conf, quectel.conf): the new bytes of each
    file it touches, as a diff."""

    conf: DongleConf
    files: dict[str, bytes]
    before: dict[str, bytes]  # what each file held when read: a file edited since is not written
    diff: str


@dataclass(slots=True, kw_only=True)
class ScanResult:
    sticks: list[Stick]
    located: list[Located]
    plan: Plan
    change: Change
    sections: dict[str, DeviceSection] = field(default_factory=dict)  # as read, before it


@dataclass(slots=True, kw_only=True)
class AdoptResult:
    learned: dict[str, tuple[str, str]]  # section -> (IMEI, "asterisk" | "probe")
    skipped: dict[str, str]  # section -> why not
    change: Change


# ---- helpers ---------------------------------------------------------------------------------


def unified_diff(old: Mapping[str, bytes], new: Mapping[str, bytes]) -> str:
    """A unified diff of the changed files (decoded for display only; never written back)."""
    out: list[str] = []
    for path in sorted(new):
        a = old.get(path, b"").decode("utf-8", "replace").splitlines(keepends=True)
        b = new[path].decode("utf-8", "replace").splitlines(keepends=True)
        for line in difflib.unified_diff(a, b, fromfile=path, tofile=path):
            out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def _change(before: DongleConf, after: DongleConf) -> Change:
    old, new = before.render(), after.render()
    files = {path: data for path, data in new.items() if old.get(path) != data}
    return Change(conf=after, files=files, before=old, diff=unified_diff(old, files))


def write_change(change: Change) -> None:
    """Replace every changed file atomically (raises ConfError; an unchanged file is kept)."""
    for path, data in change.files.items():
        replace_atomically(path, data, expected=change.before[path])


def imeis_named_elsewhere(settings: Settings, driver: Driver) -> set[str]:
    """IMEIs the other drivers' files name (a box with chan_dongle beside chan_quectel): a
    stick one of them names is not "unbound" for this one. An unreadable file names none."""
    named: set[str] = set()
    for other in drivers_for(settings.driver):
        if other is not driver:
            named |= file_imeis(conf_path(settings, other))
    return named


async def connect_asterisk(settings: Settings, driver: Driver) -> Asterisk:
    path = conf_path(settings, driver)
    client = AmiClient(settings.ami)
    control = control_for(client, driver, lambda: file_ports(path, driver))
    out = Asterisk(client=client, control=control)
    try:
        await client.connect()
        out.devices = await control.show_devices()
    except AmiError as exc:
        out.error = str(exc)
        await client.close()
    return out


def _timeouts(settings: Settings) -> ProbeTimeouts:
    return ProbeTimeouts(first=min(1.0, settings.at_timeout), command=settings.at_timeout)


def _group(ttys: list[TtyInfo], cards: list[SoundCard]) -> list[Stick]:
    sticks: dict[str, Stick] = {}
    for info in ttys:
        stick = sticks.setdefault(
            info.usb_device,
            Stick(usb_device=info.usb_device, usb_port=info.usb_port, vid=info.vid, pid=info.pid),
        )
        stick.add(info)
    for stick in sticks.values():
        card = card_of(stick.usb_device, cards)
        stick.card = card.id if card is not None else None
    return sorted(sticks.values(), key=lambda s: s.usb_port)


async def _identify(stick: Stick, settings: Settings, asterisk: Asterisk) -> None:
    """The daemon's prober: a port another process holds is never probed; chan_dongle's
    IMEIState, from a listing asked for afresh, names the stick it runs there."""

    async def listing() -> dict[str, DeviceEntry] | None:
        if asterisk.devices is None:
            return None
        with contextlib.suppress(AmiError):
            asterisk.devices = await asterisk.control.show_devices()
        return asterisk.devices

    result = await identify(
        stick.ports,
        models.candidates(stick.vid, stick.pid, frozenset(stick.ports)),
        lock_dir=settings.lock_dir,
        timeouts=_timeouts(settings),
        probe_timeout=settings.probe_timeout,
        listing=listing,
        family=models.family(stick.vid, stick.pid),
        lock_files=all(d.lock_files for d in drivers_for(settings.driver)),
    )
    if isinstance(result, Found):
        stick.identity, stick.data, stick.audio = result.identity, result.data, result.audio
        stick.source = result.source
    else:
        stick.error = result.error


# ---- scan ------------------------------------------------------------------------------------


async def scan(settings: Settings, asterisk: Asterisk, driver: Driver) -> ScanResult:
    """Find and identify the sticks, and what the daemon would do about them for `driver`'s
    file (no writes)."""
    conf = DongleConf.load(conf_path(settings, driver))
    cards = await asyncio.to_thread(list_sound_cards) if driver.uac_key is not None else []
    sticks = _group(await asyncio.to_thread(list_ttys), cards)
    await asyncio.gather(*(_identify(st, settings, asterisk) for st in sticks))
    found = located(sticks)
    sections = conf.devices()
    p = driver_plan(driver, sections, found, asterisk.devices)
    elsewhere = imeis_named_elsewhere(settings, driver)
    p.unbound[:] = [imei for imei in p.unbound if imei not in elsewhere]
    after, _ = (
        conf.with_ports(p.port_changes, alsa=p.alsa, data_only=p.data_only)
        if p.port_changes
        else (conf, {})
    )
    return ScanResult(
        sticks=sticks, located=found, plan=p, change=_change(conf, after), sections=sections
    )


class _Found:
    """scan's sticks, as the pass executor asks for them (identified once, by scan)."""

    def __init__(self, sticks: list[Stick]) -> None:
        self._sticks = sticks

    def located(self) -> list[Located]:
        return located(self._sticks)

    def learn_from_asterisk(self, entries: Mapping[str, DeviceEntry]) -> None:
        pass  # each stick was identified just now, from a fresh listing where chan_dongle runs it

    def stick_with(self, imei: str) -> Stick | None:
        return next((s for s in self._sticks if s.identity and s.identity.imei == imei), None)

    def back(self, imei: str) -> float | None:
        return None


async def apply_scan(
    settings: Settings, result: ScanResult, asterisk: Asterisk, driver: Driver
) -> tuple[bool, list[str]]:
    """The daemon's own pass, once, over the sticks found: stop, write, tell Asterisk (never
    re-opening a tty a stopped device may still be closing), verify. Returns whether
    dongle.conf was written, and the problems (empty: all done)."""
    tasks: list[asyncio.Task[None]] = []
    again: list[bool] = []
    fences = Fences(settings.lock_dir)
    executor = PassExecutor(
        settings,
        asterisk.control,
        _Found(result.sticks),
        PassHooks(
            publish=lambda: None,
            request=again.append,
            spawn=lambda coro, _name: tasks.append(asyncio.ensure_future(coro)),
            recovered=lambda _port: None,
            failing=lambda *_why: None,
            named_elsewhere=lambda: asyncio.to_thread(imeis_named_elsewhere, settings, driver),
        ),
        fences=fences,
        metrics=Metrics(),
        counters={"conf_writes": 0, "reloads": 0, "probes": 0},
        driver=driver,
    )
    try:
        ok = await executor.apply()
        await asyncio.gather(*tasks)
    finally:
        fences.close()
    wrote = executor.counters["conf_writes"] > 0
    path = executor.conf_path
    problems = [f"not written: {executor.conf_error}"] if executor.conf_error else []
    if executor.seen.asterisk is None:
        # The file is safe now, but a device Asterisk runs keeps its old ports (possibly
        # another stick's) until Asterisk is told: not done.
        problems.append(
            f"Asterisk was NOT told (not reachable: {asterisk.error or 'lost'}); it runs on the "
            f"old ports until it reloads {path}: run `dongled scan --apply` again once it "
            "is up"
        )
        return wrote, problems
    if not ok:
        return wrote, [*problems, "Asterisk did not take the change (see the messages above)"]
    for name, want in sorted(result.plan.expect.items()):
        if executor.verifier.verified.get(name) != want.imei:
            entry = executor.seen.asterisk.get(name)
            state = f"{entry.state}, IMEI {entry.imei_state or '-'}" if entry else "no such device"
            problems.append(f"{name} is not running IMEI {want.imei} ({state})")
    if again and not problems:
        problems.append(f"{path} changed meanwhile or a device is still wrong: run scan again")
    return wrote, problems


# ---- adopt -----------------------------------------------------------------------------------


def _dialect(path: str, ports: Mapping[str, tuple[str, str]]) -> tuple[Family | None, bool]:
    """The AT dialect of the stick at `path` by udev's (vid, pid) of its tty, and whether
    the path exists at all."""
    vid, pid = ports.get(os.path.realpath(path), ("", ""))
    return models.family(vid, pid), os.path.exists(path)


async def adopt(settings: Settings, asterisk: Asterisk, driver: Driver) -> AdoptResult:
    """Learn the IMEI of each section without imei= and propose the imei= lines (no writes)."""
    conf = DongleConf.load(conf_path(settings, driver))
    sections = conf.devices()
    devices = asterisk.devices or {}
    named = {sec.imei: n for n, sec in sections.items() if sec.imei and valid_imei(sec.imei)}
    learned: dict[str, tuple[str, str]] = {}
    skipped: dict[str, str] = {}
    ports = {info.devnode: (info.vid, info.pid) for info in await asyncio.to_thread(list_ttys)}
    for name, sec in sorted(sections.items()):
        if sec.imei:
            if not valid_imei(sec.imei):
                skipped[name] = f"imei={sec.imei} is not a valid IMEI: fix it by hand"
            continue
        voice = sec.alsadev if driver.uses_uac(sec) else sec.audio  # USB audio: alsadev=
        external = driver.uses_ext_uac(sec)  # its voice is the admin's card: data= is enough
        if not sec.data or not (voice or external):
            skipped[name] = "no data=/audio= (chan_dongle's own discovery): nothing to learn"
            continue
        if sec.data == driver.parked[0]:
            skipped[name] = "parked by dongled: its stick is unknown"
            continue
        entry = devices.get(name)
        if entry is not None and entry.connected and valid_imei(entry.imei_state):
            if entry.data_state != sec.data:
                skipped[name] = (
                    f"Asterisk runs it on {entry.data_state}, the file names {sec.data}: "
                    "reload Asterisk first"
                )
                continue
            learned[name] = (entry.imei_state, "asterisk")
            continue
        # The stick's dialect, from udev's view of the port: never a Huawei `^` command to an
        # LTE module (the daemon's probe asks the same table).
        family, exists = _dialect(sec.data, ports)
        if family is None and driver.lte_only and exists:
            skipped[name] = (
                f"cannot tell which LTE module is at {sec.data} (udev does not list it as a "
                "USB modem's tty): not probed"
            )
            continue
        try:
            async with asyncio.timeout(settings.probe_timeout):
                ident = await identify_port(
                    sec.data, settings.lock_dir, _timeouts(settings), family
                )
        except PortBusyError as exc:
            skipped[name] = f"{exc} (and Asterisk does not run it)"
            continue
        except (ProbeError, TimeoutError) as exc:
            why = str(exc) or f"{sec.data}: whole probe took over {settings.probe_timeout:g} s"
            skipped[name] = f"cannot identify: {why}"
            continue
        learned[name] = (ident.imei, "probe")
    # An IMEI two sections claim, or one that another section already names, is not written.
    claims: dict[str, list[str]] = {}
    for name, (imei, _) in learned.items():
        claims.setdefault(imei, []).append(name)
    for imei, names in claims.items():
        why = ""
        if imei in named:
            why = f"IMEI {imei} is already named by [{named[imei]}]"
        elif len(names) > 1:
            why = f"IMEI {imei} found for {', '.join(names)}: the sections share a stick"
        if why:
            for name in names:
                skipped[name] = why
                del learned[name]
    after = conf
    for name, (imei, _) in sorted(learned.items()):
        try:
            after, _files = after.with_imei(name, imei)
        except (ConfError, ValueError) as exc:
            skipped[name] = str(exc)
    for name in skipped:
        learned.pop(name, None)
    return AdoptResult(learned=learned, skipped=skipped, change=_change(conf, after))


async def close(asterisk: Asterisk) -> None:
    with contextlib.suppress(Exception):
        await asterisk.client.close()
