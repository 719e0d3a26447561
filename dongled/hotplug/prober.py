"""Identifying one stick: the prober the daemon and `dongled scan` share.

A stick's candidate AT ports (from the model table, confirmed by an answer) are probed with
the harmless conversation in `probe`. A port another live process holds is never probed: if
it is chan_dongle's, Asterisk's own `IMEIState` for it, from a listing asked for afresh, names
the stick instead (a listing from before the stick appeared would describe whatever stick had
those numbers before).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace

from dongled.asterisk.device import DeviceEntry
from dongled.core.errors import PortBusyError, ProbeError, ProbeTimeoutError
from dongled.modem.conversation import ProbeTimeouts
from dongled.modem.identity import Identity, clean_text, valid_imei, valid_imsi
from dongled.modem.lte import Family
from dongled.modem.models import Layout
from dongled.modem.port import held_by_another
from dongled.modem.portlock import holder
from dongled.modem.probe import identify_port

__all__ = [
    "Found",
    "Listing",
    "NotFound",
    "asterisk_holds",
    "completed",
    "holding_entry",
    "identify",
]

# A fresh DongleShowDevices listing, or None when Asterisk cannot be asked.
Listing = Callable[[], Awaitable[Mapping[str, DeviceEntry] | None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Found:
    identity: Identity
    data: str
    audio: str
    source: str  # "probe": our AT conversation; "asterisk": chan_dongle's IMEIState


@dataclass(frozen=True, slots=True, kw_only=True)
class NotFound:
    error: str
    hung: bool = False  # ports there and nobody answering: a reset may help
    busy: bool = False  # another live process owns the AT port


def asterisk_holds(entry: DeviceEntry, lock_dir: str, lock_files: bool = True) -> bool:
    """chan_dongle runs a stick on this entry's port right now: it reports an IMEI and a live
    process other than us holds the port's lock. (A kernel never gives a port that is still
    open to a new stick, so such a port cannot carry a different stick.) A driver without
    lock files (`lock_files` False) holds the port with TIOCEXCL or flock instead."""
    if not (entry.connected and valid_imei(entry.imei_state) and entry.data_state):
        return False
    if not lock_files:
        return held_by_another(entry.data_state)
    owner = holder(lock_dir, entry.data_state)
    return owner is not None and owner != os.getpid()


def holding_entry(
    entries: Mapping[str, DeviceEntry],
    ports: Collection[str],
    lock_dir: str,
    lock_files: bool = True,
) -> DeviceEntry | None:
    """The device chan_dongle runs on one of `ports` right now, if any."""
    for entry in entries.values():
        if entry.data_state in ports and asterisk_holds(entry, lock_dir, lock_files):
            return entry
    return None


def identity_from(entry: DeviceEntry) -> Identity:
    """What chan_dongle's listing says of the stick it runs (IMSI only when plausible)."""
    imsi = entry.imsi_state if entry.imsi_state and valid_imsi(entry.imsi_state) else None
    return Identity(imei=entry.imei_state, imsi=imsi, model=clean_text(entry.model))


def completed(ident: Identity, entry: DeviceEntry) -> Identity:
    """A lean probe's identity with what Asterisk's listing of the device running it says
    (model, voice): status details the probe left out so that the line came back sooner."""
    model = ident.model or clean_text(entry.model)
    voice = ident.voice
    if voice is None and entry.connected and entry.voice in ("Yes", "No"):
        voice = entry.voice == "Yes"
    if (model, voice) == (ident.model, ident.voice):
        return ident
    return replace(ident, model=model, voice=voice)


async def identify(
    ports: Mapping[int, str],
    layouts: Sequence[Layout],
    *,
    lock_dir: str,
    timeouts: ProbeTimeouts,
    probe_timeout: float,
    listing: Listing,
    counted: Callable[[], None] = lambda: None,
    family: Family | None = None,
    lock_files: bool = True,
    lean: bool = False,
) -> Found | NotFound:
    """Probe the stick's candidate AT ports in turn (`counted` is called for each); the first
    that answers names it. `lean`: only the commands binding needs (`probe.identify_port`)."""
    if not layouts:
        return NotFound(error="no candidate AT port")
    error = "no port answered AT"
    for layout in layouts:
        data, audio = ports[layout.data], ports[layout.audio]
        counted()
        try:
            async with asyncio.timeout(probe_timeout):
                ident = await identify_port(data, lock_dir, timeouts, family, lean=lean)
        except PortBusyError as exc:
            held = holding_entry(await listing() or {}, ports.values(), lock_dir, lock_files)
            if held is not None:
                return Found(
                    identity=identity_from(held),
                    data=held.data_state,
                    audio=held.audio_state,
                    source="asterisk",
                )
            return NotFound(error=str(exc), busy=True)
        except ProbeTimeoutError as exc:
            error = str(exc)
            continue  # a silent port: try the next layout
        except TimeoutError:
            return NotFound(error=f"{data}: whole probe took over {probe_timeout:g} s", hung=True)
        except ProbeError as exc:  # it answered, but not well (or vanished): no reset helps
            return NotFound(error=str(exc))
        return Found(identity=ident, data=data, audio=audio, source="probe")
    return NotFound(error=error, hung=True)
