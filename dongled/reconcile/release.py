"""Letting chan_dongle finish with a stopped device before any of its ttys is opened again.

A real chan_dongle answers `DongleStop` before its monitor thread has let go of the device's
ttys. A reload sent a few ms after the stop re-opened such a tty while the stopped device was
still closing: the new opener took the closing device's last `OK` as its own, every reply
after it shifted by one, and the reply that met an empty command queue crashed Asterisk (2 of 3
runs). So dongled remembers each device it stopped while it had ttys open, and before it asks
Asterisk to open ttys (a reload or a start) it waits, for each such device whose ttys would be
opened, until:

- the listing shows the device stopped (`CurrentDeviceState: stop`), or no longer lists it.
  The real chan_dongle and chan_quectel IM close the ttys and remove their lock files before
  they set the state to stop, and then copy the *configured* paths back into
  `DataState`/`AudioState`: those fields are never empty for a stopped device, so they say
  nothing about an open tty (waiting for them to empty never ended on a real Asterisk);
- no live process but dongled holds a UUCP lock on those ttys (chan_dongle removes its locks
  as it closes);
- its data tty is quiet: dongled holds it under its own lock and reads, sending nothing, until
  no byte has come for `quiet` seconds (a reply still in flight is drained, not handed to
  chan_dongle).

The stop itself is never delayed (the safety rule wants a foreign device stopped at once);
only the return waits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from dongled.asterisk.device import DeviceControl, DeviceEntry
from dongled.asterisk.devicepoll import device_polls
from dongled.conf.dongleconf import DeviceSection
from dongled.modem.port import line_quiet
from dongled.modem.portlock import holder
from dongled.reconcile.plan import Plan

log = logging.getLogger(__name__)

QUIET_LIMIT = 3.0  # a tty that keeps talking this long is not quiet: try again later
# A driver can show a device stopped a moment before its thread has closed the tty (RE's
# TIOCEXCL/flock still on it): a port found held is looked at again, this often, this long,
# before the pass gives up (and retries only after its backoff, 0.5 s at first).
HELD_RETRY, HELD_GRACE = 0.05, 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Stopped:
    """A device dongled stopped while chan_dongle had these ttys open."""

    device: str
    data: str
    audio: str
    at: float

    @property
    def ttys(self) -> frozenset[str]:
        return frozenset(t for t in (self.data, self.audio) if t)


def ttys_open(entry: DeviceEntry | None, parked: tuple[str, str]) -> tuple[str, str]:
    """The (data, audio) ttys chan_dongle may have open for a device; empty strings for none.
    A stopped device has none (its DataState shows the configured paths, not open ones); one
    that is not stopped may be opening its configured ttys right now."""
    if entry is None or entry.current_state == "stop":
        return "", ""
    data = entry.data_state or entry.data_setting
    audio = entry.audio_state or entry.audio_setting
    return ("" if data in parked else data), ("" if audio in parked else audio)


def let_go(entry: DeviceEntry | None, ttys: frozenset[str] = frozenset()) -> bool:
    """chan_dongle lists the device as stopped (its ttys closed before it says so) or not at
    all, or running again on other ttys than `ttys` (a reload restarted it elsewhere: it
    closed these first)."""
    if entry is None or entry.current_state == "stop":
        return True
    now = {_same_tty(t) for t in (entry.data_state, entry.audio_state) if t}
    return bool(ttys) and bool(now) and not now & ttys


def blocking(stopped: Mapping[str, Stopped], opening: Collection[str]) -> dict[str, Stopped]:
    """The stopped devices holding a tty that the next reload or start would open."""
    return {name: st for name, st in stopped.items() if st.ttys & frozenset(opening)}


def opening(sections: Mapping[str, DeviceSection], p: Plan, parked: tuple[str, str]) -> set[str]:
    """The ttys Asterisk may open once the plan is written: a reload opens every section's
    (it restarts changed and stopped devices alike), a start only that device's."""
    names = sections if p.reload else p.start
    ports: set[str] = set()
    for name in names:
        sec = sections.get(name)
        if sec is not None:
            ports.update(p.port_changes.get(name) or (sec.data or "", sec.audio or ""))
    return {port for port in ports if port and port not in parked}


def _same_tty(path: str) -> str:
    return os.path.realpath(path) if path else ""


class Releases:
    """The devices stopped by dongled that chan_dongle may still be closing."""

    def __init__(
        self, lock_dir: str, quiet: float, timeout: float, parked: tuple[str, str]
    ) -> None:
        self._lock_dir = lock_dir
        self._parked = parked
        self._quiet = quiet
        self._timeout = timeout
        self._stopped: dict[str, Stopped] = {}
        # The one drain of each record under way: a second wait for the same device (a pass
        # and the ladder's restart) shares it instead of finding the tty locked by the first.
        self._draining: dict[str, tuple[Stopped, asyncio.Future[bool]]] = {}

    def stopped(self, name: str, entry: DeviceEntry | None) -> None:
        """Remember a device just stopped (after DongleStop answered Success)."""
        data, audio = ttys_open(entry, self._parked)
        if data and os.path.exists(data):  # a vanished stick's tty leaves nothing in flight
            self._stopped[name] = Stopped(
                device=name, data=_same_tty(data), audio=_same_tty(audio), at=time.monotonic()
            )

    def _locks_free(self, st: Stopped) -> bool:
        own = os.getpid()
        return all(holder(self._lock_dir, tty) in (None, own) for tty in st.ttys)

    async def settle(self, ami: DeviceControl, opening: Collection[str]) -> str | None:
        """Wait until no stopped device holds a tty in `opening` (paths a reload or start is
        about to open); None when done, else why not (then nothing may be opened yet).
        AmiError propagates."""
        waiting = blocking(self._stopped, {_same_tty(p) for p in opening})
        if not waiting:
            return None
        start = time.monotonic()
        pending = dict(waiting)
        async for poll in device_polls(ami, pending, self._timeout):
            for name, st in list(pending.items()):
                seen = poll.whole or name in poll.entries
                if seen and let_go(poll.entries.get(name), st.ttys) and self._locks_free(st):
                    del pending[name]
        if pending:
            return (
                f"chan_dongle has not let go of {', '.join(sorted(pending))} "
                f"within {self._timeout:g} s of DongleStop"
            )
        closed = time.monotonic() - start
        grace = time.monotonic() + HELD_GRACE
        while True:
            quiet = await asyncio.gather(*(self._drain(name, st) for name, st in waiting.items()))
            noisy = [name for name, ok in zip(waiting, quiet, strict=True) if not ok]
            if not noisy or time.monotonic() >= grace:
                break
            await asyncio.sleep(HELD_RETRY)
        if noisy:
            return f"the data tty of {', '.join(noisy)} is not quiet yet"
        for name, st in waiting.items():
            self._forget(name, st)
        log.info(
            "stopped device(s) %s let go of their ttys %.3f s after the wait began; quiet "
            "%.3f s later",
            ", ".join(sorted(waiting)),
            closed,
            time.monotonic() - start - closed,
        )
        return None

    def _forget(self, name: str, st: Stopped) -> None:
        """Forget `st`, the record a wait began with: only if it is still the one kept. Another
        wait (or prune) may have forgotten it already, or the device may have been stopped
        again meanwhile; that newer record must be waited for by the next reload."""
        if self._stopped.get(name) is st:
            del self._stopped[name]

    def _drain(self, name: str, st: Stopped) -> asyncio.Future[bool]:
        """The quiet check of `st`'s data tty: the one under way, or a new one."""
        running = self._draining.get(name)
        if running is not None and running[0] is st and not running[1].done():
            return asyncio.shield(running[1])
        task = asyncio.ensure_future(line_quiet(st.data, self._lock_dir, self._quiet, QUIET_LIMIT))
        task.set_name(f"drain {name}")
        self._draining[name] = (st, task)

        def done(_: asyncio.Future[bool]) -> None:
            if self._draining.get(name, (None, None))[1] is task:
                del self._draining[name]

        task.add_done_callback(done)
        return asyncio.shield(task)

    def prune(self, entries: Mapping[str, DeviceEntry]) -> None:
        """Forget devices long let go (a reply in flight has arrived by QUIET_LIMIT), so a
        reload much later does not wait for them."""
        now = time.monotonic()
        for name, st in list(self._stopped.items()):
            let = let_go(entries.get(name), st.ttys)
            if now - st.at > QUIET_LIMIT and let and self._locks_free(st):
                del self._stopped[name]
