"""One pass executor ("lane") per channel driver, seen as one by the rest of the daemon.

A box runs chan_dongle, or one chan_quectel fork, or chan_dongle beside one fork. Each driver
has its own file, its own devices in Asterisk and its own release records; the sticks, the
fences and the AMI connection are shared. Two things make several lanes more than a loop:

- In one Asterisk process a tty one driver's device is still closing is as busy for the other
  driver (the same pid in its lock file). So a pass runs every lane's stops before any lane
  writes or reloads, and a lane about to open ttys also waits for the other lanes' stopped
  devices on them.
- Section names are one namespace for status and recovery: the first lane's section wins a
  name both files use, and dongled says so once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import TypeVar

from dongled.asterisk.device import DeviceEntry
from dongled.conf.atomicfile import write_problem
from dongled.conf.dongleconf import DeviceSection
from dongled.core.errors import RecoveryError
from dongled.reconcile.executor import PassExecutor, file_imeis
from dongled.reconcile.plan import Expect
from dongled.telemetry.eventlog import Event, emit

log = logging.getLogger(__name__)

V = TypeVar("V")
_SHARED = (
    "section [{}] is in both {} and {}: give one another name "
    "(dongled status and recovery see only the first)"
)


def _merged(per_lane: Iterable[Mapping[str, V]]) -> dict[str, V]:
    """One mapping of the lanes' (in lane order): the first lane's wins a shared name."""
    out: dict[str, V] = {}
    for mapping in reversed(list(per_lane)):
        out.update(mapping)
    return out


class Lanes:
    """The lanes of a box (one `PassExecutor` per channel driver it runs), in settings order;
    the first is the only one on a box with one driver."""

    def __init__(self) -> None:
        self._lanes: list[PassExecutor] = []
        self._warned_shared: set[str] = set()
        self._warned_unwritable: dict[str, str] = {}

    def add(self, lane: PassExecutor) -> None:
        self._lanes.append(lane)

    def __iter__(self) -> Iterator[PassExecutor]:
        return iter(self._lanes)

    def __len__(self) -> int:
        return len(self._lanes)

    @property
    def first(self) -> PassExecutor:
        return self._lanes[0]

    # ---- the merged view (what recovery and status read) ------------------------------

    @property
    def sections(self) -> dict[str, DeviceSection]:
        return _merged(lane.seen.sections for lane in self._lanes)

    @property
    def asterisk(self) -> dict[str, DeviceEntry] | None:
        """Every lane's devices as Asterisk last listed them; None while AMI is down."""
        listed = [lane.seen.asterisk for lane in self._lanes]
        return None if None in listed else _merged(x or {} for x in listed)

    @property
    def verified(self) -> dict[str, str]:
        return _merged(lane.verifier.verified for lane in self._lanes)

    @property
    def conf_error(self) -> str:
        return "; ".join(lane.conf_error for lane in self._lanes if lane.conf_error)

    @property
    def conf_files(self) -> dict[str, str]:
        return {lane.driver.name: lane.conf_path for lane in self._lanes}

    @property
    def last_change(self) -> str:
        # "<device> -> <tty> HH:MM:SS": the latest of the lanes', by when it happened (the
        # text's clock time starts over at midnight)
        writers = [lane.writer for lane in self._lanes]
        latest = max(writers, key=lambda writer: writer.last_change_at, default=None)
        return latest.last_change if latest is not None else ""

    def lane_of(self, section: str) -> PassExecutor:
        """The lane whose file holds `section`; LookupError if none does (never a guess:
        another driver's device of that name would be stopped or started)."""
        for lane in self._lanes:
            if section in lane.seen.sections:
                return lane
        if len(self._lanes) == 1:
            return self._lanes[0]  # one driver: its file is the only one there is
        raise LookupError(f"no driver's file has a section [{section}]")

    # ---- a pass over every lane ---------------------------------------------------------

    async def apply(self) -> bool:
        """One pass of every lane: all their stops before any lane writes or reloads."""
        prepared = [await lane.prepare() for lane in self._lanes]
        self._say_shared_names()
        self._say_write_problems()
        ok = True
        for lane, half in zip(self._lanes, prepared, strict=True):
            ok = await lane.finish(half) and ok
        return ok

    async def listing(self) -> dict[str, DeviceEntry] | None:
        """A fresh listing of every lane's devices, or None when Asterisk cannot be asked."""
        listed = []
        for lane in self._lanes:
            entries = await lane.teller.listing()
            if entries is None:
                return None
            listed.append(entries)
        return _merged(listed)

    async def refresh(self) -> None:
        for lane in self._lanes:
            await lane.teller.refresh()

    def ami_lost(self) -> None:
        for lane in self._lanes:
            lane.seen.asterisk = None

    async def restart_device(self, name: str) -> None:
        try:
            lane = self.lane_of(name)
        except LookupError as exc:  # its section left the files meanwhile
            raise RecoveryError(f"device {name} not restarted: {exc}") from None
        await lane.teller.restart_device(name)

    async def verify(self, expect: dict[str, Expect]) -> None:
        """Each lane verifies its own devices, all at once, as one lane verifies several."""
        by_lane: dict[PassExecutor, dict[str, Expect]] = {}
        for name, want in expect.items():
            try:
                lane = self.lane_of(name)
            except LookupError as exc:
                log.warning("%s: not verified", exc)
                continue
            by_lane.setdefault(lane, {})[name] = want
        await asyncio.gather(*(lane.verifier.verify(mine) for lane, mine in by_lane.items()))

    # ---- what one lane asks about the others (its PassHooks) -----------------------------

    async def named_elsewhere(self, lane: PassExecutor) -> set[str]:
        """IMEIs the other lanes' files name: their sticks are not "unbound" for `lane` (a
        file is read now, in a thread, if its lane has not run its first pass yet)."""
        named: set[str] = set()
        for other in self._lanes:
            if other is lane:
                continue
            if other.seen.sections:
                named.update(sec.imei for sec in other.seen.sections.values() if sec.imei)
            else:
                named |= await asyncio.to_thread(file_imeis, other.conf_path)
        return named

    async def settle_elsewhere(self, lane: PassExecutor, ttys: Collection[str]) -> str | None:
        """Before `lane` opens `ttys`: wait for the other drivers' devices stopped on them."""
        for other in self._lanes:
            if other is not lane:
                why = await other.teller.released(ttys)
                if why is not None:
                    return why
        return None

    def _shared_names(self) -> dict[str, tuple[str, str]]:
        """Section names two files use: name -> (the file that wins, the other)."""
        seen: dict[str, str] = {}
        shared: dict[str, tuple[str, str]] = {}
        for lane in self._lanes:
            for name in lane.seen.sections:
                if name in seen:
                    shared.setdefault(name, (seen[name], lane.conf_path))
                seen.setdefault(name, lane.conf_path)
        return shared

    @property
    def conf_warnings(self) -> list[str]:
        """What status shows under its table (the journal has each once): a file dongled
        cannot replace (its owner, its directory), names both files use."""
        return [*self._write_problems().values()] + [
            _SHARED.format(name, first, other)
            for name, (first, other) in sorted(self._shared_names().items())
        ]

    def _write_problems(self) -> dict[str, str]:
        out = {}
        for lane in self._lanes:
            problem = write_problem(lane.conf_path)
            if problem is not None:
                out[lane.conf_path] = f"{lane.conf_path} cannot be written by dongled: {problem}"
        return out

    def _say_write_problems(self) -> None:
        """Said at start (the first pass), and again only when it changes: not at a write
        that may be hours away, when a stick moves."""
        problems = self._write_problems()
        for path, said in problems.items():
            if self._warned_unwritable.get(path) != said:
                emit(Event.CONF_ERROR, "%s", said)
        self._warned_unwritable = problems

    def _say_shared_names(self) -> None:
        shared = self._shared_names()
        for name, (first, other) in sorted(shared.items()):
            if name not in self._warned_shared:
                emit(Event.CONF_ERROR, _SHARED.replace("{}", "%s"), name, first, other, device=name)
        self._warned_shared = set(shared)
