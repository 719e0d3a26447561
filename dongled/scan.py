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
from collections.abc import Mapping
from dataclasses import dataclass, field

from dongled import models
from dongled.ami import AmiClient, DeviceEntry
from dongled.atomicfile import replace_atomically
from dongled.devicepoll import device_polls
from dongled.dongleconf import PARKED_AUDIO, PARKED_DATA, DongleConf
from dongled.errors import AmiError, ConfError, PortBusyError, ProbeError, ProbeTimeoutError
from dongled.hotplug import TtyInfo, list_ttys
from dongled.identity import Identity, clean_text, valid_imei
from dongled.probe import ProbeTimeouts, identify_port
from dongled.reconcile import Expect, Located, Plan, plan
from dongled.settings import Settings

log = logging.getLogger(__name__)


@dataclass(slots=True, kw_only=True)
class FoundStick:
    usb_port: str
    vid: str
    pid: str
    ports: dict[int, str] = field(default_factory=dict)  # bInterfaceNumber -> devnode
    identity: Identity | None = None
    data: str | None = None
    audio: str | None = None
    source: str = ""  # "asterisk" or "probe"
    error: str = ""

    @property
    def model(self) -> str:
        known = models.model_for(self.vid, self.pid)
        ident = self.identity.model if self.identity is not None else ""
        return ident or (known.name if known is not None else f"{self.vid}:{self.pid}")


@dataclass(slots=True, kw_only=True)
class Asterisk:
    """What AMI said, or why it could not be asked."""

    client: AmiClient
    devices: dict[str, DeviceEntry] | None = None
    error: str = ""


@dataclass(slots=True, kw_only=True)
class Change:
    """A proposed edit of dongle.conf: the new bytes of each file it touches, as a diff."""

    conf: DongleConf
    files: dict[str, bytes]
    before: dict[str, bytes]  # what each file held when read: a file edited since is not written
    diff: str


@dataclass(slots=True, kw_only=True)
class ScanResult:
    sticks: list[FoundStick]
    located: list[Located]
    plan: Plan
    change: Change


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


async def connect_asterisk(s: Settings) -> Asterisk:
    client = AmiClient(s.ami)
    out = Asterisk(client=client)
    try:
        await client.connect()
        out.devices = await client.show_devices()
    except AmiError as exc:
        out.error = str(exc)
        await client.close()
    return out


def _timeouts(s: Settings) -> ProbeTimeouts:
    return ProbeTimeouts(first=min(1.0, s.at_timeout), command=s.at_timeout)


def _group(ttys: list[TtyInfo]) -> list[FoundStick]:
    sticks: dict[str, FoundStick] = {}
    for info in ttys:
        stick = sticks.setdefault(
            info.usb_device, FoundStick(usb_port=info.usb_port, vid=info.vid, pid=info.pid)
        )
        stick.ports[info.interface] = info.devnode
    return sorted(sticks.values(), key=lambda s: s.usb_port)


async def _identify(stick: FoundStick, s: Settings, asterisk: Mapping[str, DeviceEntry]) -> None:
    for entry in asterisk.values():  # a port chan_dongle holds is never probed
        if (
            entry.connected
            and valid_imei(entry.imei_state)
            and entry.data_state in stick.ports.values()
        ):
            stick.identity = Identity(imei=entry.imei_state, model=clean_text(entry.model))
            stick.data, stick.audio = entry.data_state, entry.audio_state
            stick.source = "asterisk"
            return
    layouts = models.candidates(stick.vid, stick.pid, frozenset(stick.ports))
    stick.error = "no candidate AT port" if not layouts else "no port answered AT"
    for layout in layouts:
        data, audio = stick.ports[layout.data], stick.ports[layout.audio]
        try:
            async with asyncio.timeout(s.probe_timeout):
                ident = await identify_port(data, s.lock_dir, _timeouts(s))
        except ProbeTimeoutError as exc:
            stick.error = str(exc)
            continue  # a silent port: try the next layout
        except TimeoutError:
            stick.error = f"{data}: whole probe took over {s.probe_timeout:g} s"
            return
        except ProbeError as exc:  # PortBusyError included: never pushed past
            stick.error = str(exc)
            return
        stick.identity, stick.data, stick.audio, stick.source = ident, data, audio, "probe"
        stick.error = ""
        return


def _located(sticks: list[FoundStick]) -> list[Located]:
    """Every identified stick; sticks sharing an IMEI (clones) are sorted out by
    `reconcile.plan`, which never guesses between them."""
    return [
        Located(imei=st.identity.imei, imsi=st.identity.imsi, data=st.data, audio=st.audio)
        for st in sticks
        if st.identity is not None and st.data and st.audio
    ]


# ---- scan ------------------------------------------------------------------------------------


async def scan(s: Settings, asterisk: Asterisk) -> ScanResult:
    """Find and identify the sticks, and what the daemon would do about them (no writes)."""
    conf = DongleConf.load(s.dongle_conf)
    sticks = _group(await asyncio.to_thread(list_ttys))
    devices = asterisk.devices or {}
    await asyncio.gather(*(_identify(st, s, devices) for st in sticks))
    located = _located(sticks)
    p = plan(conf.devices(), located, asterisk.devices)
    after, _ = conf.with_ports(p.port_changes) if p.port_changes else (conf, {})
    return ScanResult(sticks=sticks, located=located, plan=p, change=_change(conf, after))


async def apply_scan(s: Settings, result: ScanResult, asterisk: Asterisk) -> list[str]:
    """Write the file, tell Asterisk, verify; returns the problems (empty: all done)."""
    problems: list[str] = []
    p, client = result.plan, asterisk.client
    connected = asterisk.devices is not None
    if connected:
        for name in p.stop:  # before the file names new ports, as the daemon does
            try:
                await client.stop(name)
            except AmiError as exc:
                problems.append(f"DongleStop {name}: {exc}")
    write_change(result.change)
    if not connected:
        # The file is safe now, but a device Asterisk runs keeps its old ports (possibly
        # another stick's) until Asterisk is told: not done.
        problems.append(
            f"Asterisk was NOT told (not reachable: {asterisk.error}); it runs on the old "
            "ports until it reloads dongle.conf: run `dongled scan --apply` again once it is up"
        )
        return problems
    try:
        if p.reload:
            await client.reload(s.ami.reload_when)
        for name in p.start:
            await client.start(name)
    except AmiError as exc:
        return [*problems, f"Asterisk did not take the change: {exc}"]
    problems += await verify(s, client, p.expect)
    return problems


async def verify(s: Settings, client: AmiClient, expect: Mapping[str, Expect]) -> list[str]:
    """Poll DongleShowDevices until every device runs its own stick (or verify_timeout)."""
    waiting = dict(expect)
    entries: dict[str, DeviceEntry] = {}
    try:
        async for poll in device_polls(client, waiting, s.verify_timeout):
            entries = poll.entries if poll.whole else {**entries, **poll.entries}
            for name, want in list(waiting.items()):
                entry = entries.get(name)
                if entry and entry.connected and want.matches(entry.imei_state, entry.imsi_state):
                    del waiting[name]
    except AmiError as exc:
        return [f"cannot verify: {exc}"]
    out = []
    for name, want in sorted(waiting.items()):
        entry = entries.get(name)
        state = f"{entry.state}, IMEI {entry.imei_state or '-'}" if entry else "no such device"
        out.append(f"{name} is not running IMEI {want.imei} ({state})")
    return out


# ---- adopt -----------------------------------------------------------------------------------


async def adopt(s: Settings, asterisk: Asterisk) -> AdoptResult:
    """Learn the IMEI of each section without imei= and propose the imei= lines (no writes)."""
    conf = DongleConf.load(s.dongle_conf)
    sections = conf.devices()
    devices = asterisk.devices or {}
    named = {sec.imei: n for n, sec in sections.items() if sec.imei and valid_imei(sec.imei)}
    learned: dict[str, tuple[str, str]] = {}
    skipped: dict[str, str] = {}
    for name, sec in sorted(sections.items()):
        if sec.imei:
            if not valid_imei(sec.imei):
                skipped[name] = f"imei={sec.imei} is not a valid IMEI: fix it by hand"
            continue
        if not sec.data or not sec.audio:
            skipped[name] = "no data=/audio= (chan_dongle's own discovery): nothing to learn"
            continue
        if (sec.data, sec.audio) == (PARKED_DATA, PARKED_AUDIO):
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
        try:
            async with asyncio.timeout(s.probe_timeout):
                ident = await identify_port(sec.data, s.lock_dir, _timeouts(s))
        except PortBusyError as exc:
            skipped[name] = f"{exc} (and Asterisk does not run it)"
            continue
        except (ProbeError, TimeoutError) as exc:
            why = str(exc) or f"{sec.data}: whole probe took over {s.probe_timeout:g} s"
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
