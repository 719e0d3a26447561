"""A pass's write: the plan's port changes into the driver's file (or its include tree).

Separate from the pass because the write has its own order (a tty moving between two files
is parked first, given in a second round) and its own bookkeeping: the last write's failure
(which status shows until a write succeeds or none is needed) and the last change, for people.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Mapping

from dongled.conf.atomicfile import replace_atomically
from dongled.conf.dongleconf import DeviceSection, DongleConf
from dongled.conf.parked import PARKED_ALSADEV, PARKED_AUDIO, PARKED_DATA
from dongled.core.errors import ConfChangedError, ConfError
from dongled.drivers.base import Driver
from dongled.reconcile.plan import PARKED_UAC, Plan
from dongled.reconcile.seen import Seen
from dongled.telemetry.eventlog import Event, emit
from dongled.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

PARKED_VALUES = frozenset({PARKED_DATA, PARKED_AUDIO, PARKED_ALSADEV})


def cross_file_takes(
    sections: Mapping[str, DeviceSection],
    changes: Mapping[str, tuple[str, str]],
    parked: Collection[str] = PARKED_VALUES,
) -> set[str]:
    """The changed sections whose new tty (or card) a section in another file names now:
    written parked first, then given it, so no reader ever sees it named twice."""
    held: dict[str, set[str]] = {}  # tty or alsadev -> the files naming it now
    for sec in sections.values():
        for value in (sec.data, sec.audio, sec.alsadev):
            if value and value not in parked:
                held.setdefault(value, set()).add(sec.path)
    out = set()
    for name, new in changes.items():
        own = sections.get(name)
        if own is None:
            continue
        if any(held.get(v, set()) - {own.path} for v in new if v and v not in parked):
            out.add(name)
    return out


class Writer:
    def __init__(
        self,
        seen: Seen,
        driver: Driver,
        *,
        request: Callable[[bool], None],
        conf_seen: Callable[[Mapping[str, bytes]], None] | None,
        metrics: Metrics,
        counters: dict[str, int],
    ) -> None:
        self._seen = seen  # its sections: as the file names them before and after a write
        self._driver = driver
        self._request = request  # another pass (an admin saved the file meanwhile)
        self._conf_seen = conf_seen  # the file watch: no pass for dongled's own writes
        self._metrics = metrics
        self._counters = counters
        # The last write's failure, "" once a write succeeds or none is needed: status shows
        # it across passes, so it never calls a section parked that is not.
        self.failed = ""
        self.last_change = ""  # "<device> -> <tty> HH:MM:SS", for people
        self.last_change_at = 0.0  # its Unix time, for comparing (the clock wraps at midnight)

    async def write(self, conf: DongleConf, p: Plan) -> bool:
        """Write the plan's port changes. The files of an include tree are each replaced
        atomically, one after the other, not as a set: a reader between two renames sees
        some files new and others old. So a section that takes a tty another file's section
        names now is first written parked (with the rest of the changes), and given its tty
        in a second round, once no file names that tty any more: a reader in between sees no
        tty named twice, at worst that section parked for a moment."""
        try:
            read = conf.render()
            written, files = conf.with_ports(p.port_changes, alsa=p.alsa, data_only=p.data_only)
            later = cross_file_takes(self._seen.sections, p.port_changes, PARKED_VALUES)
            rounds: list[dict[str, bytes]] = [files]
            if later:
                interim = {
                    n: ((PARKED_UAC if n in p.alsa else self._driver.parked) if n in later else v)
                    for n, v in p.port_changes.items()
                }
                _, first = conf.with_ports(interim, alsa=p.alsa, data_only=p.data_only)
                rounds = [first, files]
            on_disk = dict(read)
            for batch in rounds:
                for path, content in batch.items():
                    if content == on_disk[path]:
                        continue
                    # In a thread: two fsyncs and a backup link, seconds on a busy disk, must
                    # not hold the event loop (nor the watchdog's pings, nor other sticks').
                    await asyncio.to_thread(
                        replace_atomically, path, content, expected=on_disk[path]
                    )
                    on_disk[path] = content
                    if self._conf_seen is not None:  # dongled's own write: no pass for it
                        self._conf_seen(on_disk)
        except ConfChangedError as exc:
            # Someone saved the file while we asked Asterisk: their edit wins, and the plan
            # is made again from what they wrote.
            log.warning("%s", exc)
            self._request(False)
            return False
        except (ConfError, ValueError) as exc:
            emit(Event.CONF_ERROR, "not written: %s", exc, driver=self._driver.name)
            self.failed = str(exc)
            return False
        self.failed = ""
        self._counters["conf_writes"] += 1
        before, self._seen.sections = self._seen.sections, written.devices()
        emit(
            Event.CONF_WRITTEN,
            "wrote %s (%d section(s) changed; previous version kept as .dongled-bak)",
            ", ".join(sorted(files)),
            len(p.port_changes),
            driver=self._driver.name,
        )
        self._metrics.conf_writes.inc()
        self._say_changes(p, before)
        return True

    def _say_changes(self, p: Plan, before: Mapping[str, DeviceSection]) -> None:
        """Journal each section's change (parked, or its new ports) and keep the last one."""
        now = time.strftime("%H:%M:%S")
        for name, (data, audio) in p.port_changes.items():
            sec = before[name]
            args: tuple[object, ...]
            parked = data == self._driver.parked[0]  # both ports (or data and the card)
            if parked:
                # absent, or plugged but not identified (busy, booting): no verified port
                message = "device %s: no plugged stick is identified as IMEI %s, parked on %s"
                args = (name, sec.imei, data)
            elif name in p.data_only:  # its voice is an external card, left as it is
                message = "device %s: data %s -> %s (its external card, alsadev %s, left as it is)"
                args = (name, sec.data, data, sec.alsadev or "unset")
            else:
                usb_audio = name in p.alsa  # then the second value is alsadev=
                message = "device %s: data %s -> %s, %s %s -> %s"
                was = sec.alsadev if usb_audio else sec.audio
                args = (name, sec.data, data, "alsadev" if usb_audio else "audio", was, audio)
            emit(
                Event.PARKED if parked else Event.RELINKED,
                message,
                *args,
                device=name,
                imei=sec.imei,
                data=data,
                audio=audio,
                driver=self._driver.name,
            )
            if not parked:
                self.last_change = f"{name} -> {data.rsplit('/', 1)[-1]} {now}"
                self.last_change_at = time.time()
