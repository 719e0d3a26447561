"""The daemon's side of `dongled status`: saying what changed. `publish()` sets systemd's
STATUS= and the gauges at once; the status task then builds the document on the event loop
(`snapshot`) and writes it, with the metrics textfile, in a thread. Separate from the
document's building so that what is said, when and where reads apart from what it says.

The file holds no secret and is replaced atomically, so a reader never sees half of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from dongled.status.document import FILENAME, PUBLISH_EVERY, StatusDoc
from dongled.status.snapshot import RowChanges, Sources, sections_on_disk, snapshot, summary
from dongled.telemetry import notify
from dongled.telemetry.metrics import Metrics

if TYPE_CHECKING:
    from dongled.conf.dongleconf import DeviceSection

log = logging.getLogger(__name__)
# A stick's change of state reaches `dongled status` within this (its burst published once).
STICK_PUBLISH_DELAY = 0.1


class StatusFile:
    """status.json in the daemon's state directory."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._last: tuple[bytes, float] | None = None  # the document without its time, when
        self._failed = ""  # the error last logged

    def write(self, doc: StatusDoc) -> bool:
        """Replace the file with `doc` (blocking I/O). Skipped when only its time changed
        since a write less than PUBLISH_EVERY / 2 ago. False when it could not be written:
        said once per error, in the log (status is a convenience; it never takes the daemon
        down, but an old file must not go unexplained)."""
        directory = self.directory
        now = doc["published_at"]
        body = json.dumps({**doc, "published_at": 0}, sort_keys=True).encode()
        last = self._last
        if last is not None and last[0] == body and now - last[1] < PUBLISH_EVERY / 2:
            return True
        data = json.dumps(doc, indent=1, sort_keys=True).encode()
        path = os.path.join(directory, FILENAME)
        try:
            os.makedirs(directory, mode=0o755, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".status.")
            try:
                try:
                    os.write(fd, data)
                    os.fchmod(fd, 0o644)
                finally:
                    os.close(fd)
                os.replace(tmp, path)
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            if self._failed != str(exc):
                self._failed = str(exc)
                log.error("cannot write the status file %s: %s", path, exc)
            return False
        if self._failed:
            self._failed = ""
            log.info("status file %s written again", path)
        self._last = (body, now)
        return True


class Publisher:
    def __init__(
        self, sources: Sources, metrics: Metrics, beat: Callable[[], None] = lambda: None
    ) -> None:
        self.sources = sources
        self.metrics = metrics
        self.beat = beat  # the status task's progress mark (core.tasks)
        self.file = StatusFile(sources.settings.state_dir)
        self._changes = RowChanges()  # the rows' LAST CHANGE, across snapshots
        self._dirty = asyncio.Event()  # publish() was called: the status task writes
        self._soon: asyncio.TimerHandle | None = None

    def summary(self) -> str:
        return summary(self.sources)

    def snapshot(
        self, on_disk: Mapping[str, Mapping[str, DeviceSection]] | None = None
    ) -> StatusDoc:
        """The document as it is now (on the event loop: it reads the rooms' state)."""
        return snapshot(self.sources, self._changes, on_disk)

    def publish(self) -> None:
        """Say what changed: STATUS= and the gauges now, the status file and the metrics
        textfile by the status task (their writes run in a thread, off the event loop)."""
        src = self.sources
        notify.status(self.summary())
        sticks, verified = src.sticks.values(), src.lanes.verified
        m = self.metrics
        m.sticks_present.set(len(sticks))
        m.sticks_identified.set(sum(1 for s in sticks if s.identity is not None))
        m.devices_verified.set(len(verified))
        m.sticks_given_up.set(sum(1 for st in src.ladder.ports.values() if st.given_up))
        m.devices(src.lanes.asterisk or {})
        self._dirty.set()

    def stick_changed(self) -> None:
        """A stick's state changed: published within STICK_PUBLISH_DELAY, once for a burst
        (a hub's sticks change together), and never in the middle of the probes' callbacks,
        whose order and timing a pass depends on."""
        if self._soon is None:
            self._soon = asyncio.get_running_loop().call_later(
                STICK_PUBLISH_DELAY, self._publish_soon
            )

    def _publish_soon(self) -> None:
        self._soon = None
        self.publish()

    async def run(self) -> None:
        """The status task: after each publish(), the document as it is then; and at least
        every PUBLISH_EVERY / 2 s, so a reader can tell a current one from an old one (a
        hung daemon, or one that cannot write, leaves a file that ages)."""
        while True:
            self.beat()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PUBLISH_EVERY / 2):
                    await self._dirty.wait()
            self._dirty.clear()
            on_disk = None
            if not self.sources.lanes.sections:  # no parse yet: the files, read off the loop
                conf_files = dict(self.sources.lanes.conf_files)
                on_disk = await asyncio.to_thread(sections_on_disk, conf_files)
            doc = self.snapshot(on_disk)
            await asyncio.to_thread(self.file.write, doc)
            await asyncio.to_thread(self.metrics.flush)

    def close(self) -> None:
        if self._soon is not None:
            self._soon.cancel()
