"""Watching the drivers' config files: an admin's edit asks for a pass once it is quiet.

Every file of each include tree (dongle.conf, quectel.conf and what they #include) is
watched through its directory, since editors save by renaming a new file over the old one.
Once no event has come for `QUIET` seconds (an editor's save is several events, a paste into
a file several writes), each tree is read again and compared with what dongled last knew of
it: what a pass read, or what dongled itself wrote. Only a difference asks for a pass, so
dongled's own writes (recognised by their content, not by when they happened) and events on
other files in the same directory (editors' swap files, other modules' configs) cost a read
and nothing more. A tree that does not parse is a difference too: the pass reports it and
acts on nothing, and the save that fixes it is the next difference.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence

from dongled.conf.dongleconf import DongleConf
from dongled.core import inotify
from dongled.core.errors import ConfError

log = logging.getLogger(__name__)

__all__ = ["MAX_WAIT", "QUIET", "ConfWatch", "Fingerprint", "fingerprint"]

QUIET = 0.25  # s without an event on a watched file before it is read (an editor's save)
MAX_WAIT = 2.0  # ...but a file written to without pause is read at least this often

Fingerprint = tuple[tuple[str, str], ...]  # (path, sha256) per file; ("", error) unparsable

_MASK = (
    inotify.IN_MODIFY  # a writer that stalls mid-file is read too (and found not to parse)
    | inotify.IN_CLOSE_WRITE
    | inotify.IN_MOVED_TO
    | inotify.IN_MOVED_FROM
    | inotify.IN_CREATE
    | inotify.IN_DELETE
    | inotify.IN_ATTRIB
    | inotify.IN_DELETE_SELF
    | inotify.IN_MOVE_SELF
)
_OURS = (".dongled-tmp", ".dongled-bak")  # atomicfile's temporary files and the backup


def digest(files: Mapping[str, bytes]) -> Fingerprint:
    """The fingerprint of an include tree's files as read (path -> content)."""
    return tuple(sorted((path, hashlib.sha256(data).hexdigest()) for path, data in files.items()))


def fingerprint(main: str) -> tuple[Fingerprint, tuple[str, ...]]:
    """The tree of `main` as it is on disk now, and the files it is made of (only `main`
    when it does not parse)."""
    try:
        files = DongleConf.load(main).render()
    except (ConfError, OSError) as exc:
        return (("", str(exc)),), (main,)
    return digest(files), tuple(files)


class ConfWatch:
    """Reads the trees of `mains` once their events are quiet, and calls `looked(changed)`:
    changed when any differs from what dongled knew."""

    def __init__(
        self,
        mains: Sequence[str],
        looked: Callable[[bool], None],
        *,
        stirred: Callable[[], None] = lambda: None,
        quiet: float = QUIET,
        max_wait: float = MAX_WAIT,
    ) -> None:
        self._mains = tuple(dict.fromkeys(mains))
        self._looked = looked
        self._stirred = stirred  # at a file's first event, before its quiet: an edit under way
        self._quiet, self._max_wait = quiet, max_wait
        self._known: dict[str, Fingerprint] = {}
        self._files: dict[str, tuple[str, ...]] = {}
        self._ino: inotify.INotify | None = None
        self._dirs: dict[str, int] = {}  # watched directory -> watch descriptor
        self._wds: dict[int, str] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._first: float | None = None  # loop time of the first event not yet read
        self._loop: asyncio.AbstractEventLoop | None = None
        # The files are read in a thread: a slow disk must not hold the event loop. A look
        # in flight and dongled's own write of a file (`seen`) may cross: `_writes` counts
        # the latter, and a look keeps nothing it read of a file written meanwhile.
        self._looking: asyncio.Task[None] | None = None
        self._again = False  # events came while a look was in flight: look once more
        self._writes: dict[str, int] = {}

    def start(self) -> bool:
        """Start watching; False (said in the journal) when inotify is not available."""
        self._loop = asyncio.get_running_loop()
        try:
            self._ino = inotify.INotify()
        except OSError as exc:
            log.warning("cannot watch the config files (%s): edits are seen at the next pass", exc)
            return False
        for main in self._mains:
            self._known[main], self._files[main] = fingerprint(main)
        self._rewatch()
        self._loop.add_reader(self._ino.fileno(), self._readable)
        return True

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        ino, self._ino = self._ino, None
        if ino is not None:
            if self._loop is not None:
                self._loop.remove_reader(ino.fileno())
            ino.close()
        if self._looking is not None:
            self._looking.cancel()
            self._looking = None

    def seen(self, main: str, files: Mapping[str, bytes]) -> None:
        """The tree of `main` as a pass just read it or dongled just wrote it: no pass is
        asked for a file that holds this."""
        self._known[main] = digest(files)
        self._files[main] = tuple(files)
        self._writes[main] = self._writes.get(main, 0) + 1

    # ---- events ------------------------------------------------------------------------

    def _watched(self) -> set[str]:
        return {os.path.abspath(path) for files in self._files.values() for path in files}

    def _readable(self) -> None:
        ino = self._ino
        if ino is None:
            return
        try:
            notices = ino.read()
        except OSError as exc:
            log.warning("reading config file events failed: %s", exc)
            return
        watched = self._watched()
        broken = any(fp[0][0] == "" for fp in self._known.values())
        relevant = False
        for n in notices:
            if n.mask & inotify.IN_IGNORED:
                gone = self._wds.pop(n.wd, None)
                if gone is not None:
                    self._dirs.pop(gone, None)
                relevant = True  # its directory went: look again (and watch it anew)
                continue
            if n.mask & inotify.IN_Q_OVERFLOW:
                relevant = True
                continue
            if n.name.endswith(_OURS):
                continue
            directory = self._wds.get(n.wd)
            if directory is None:
                continue
            # An unparsable tree may be missing a file it #includes: any new name may be it.
            if broken or os.path.join(directory, n.name) in watched or not n.name:
                relevant = True
        if relevant:
            self._stirred()
            self._arm()

    def _arm(self) -> None:
        loop = self._loop
        assert loop is not None
        now = loop.time()
        if self._first is None:
            self._first = now
        if self._timer is not None:
            self._timer.cancel()
        delay = max(0.0, min(self._quiet, self._first + self._max_wait - now))
        self._timer = loop.call_later(delay, self._quiet_now)

    def _quiet_now(self) -> None:
        self._timer = None
        self._first = None
        if self._looking is not None:
            self._again = True
            return
        self._looking = asyncio.ensure_future(self._look())
        self._looking.add_done_callback(self._looked_done)

    def _looked_done(self, task: asyncio.Task[None]) -> None:
        self._looking = None
        if not task.cancelled() and (exc := task.exception()) is not None:
            # A bug, not a bad file (fingerprint says those): the pass reads the files itself.
            log.error("reading the config files after an edit failed: %r; a pass reads them", exc)
            self._looked(True)
        if self._again and self._ino is not None:
            self._again = False
            self._arm()

    async def _look(self) -> None:
        changed = False
        for main in self._mains:
            writes = self._writes.get(main, 0)
            now, files = await asyncio.to_thread(fingerprint, main)
            if self._writes.get(main, 0) != writes:
                continue  # dongled wrote it meanwhile: what it wrote is what it knows
            if now != self._known.get(main):
                changed = True
                log.info("%s changed on disk: a pass reads it", os.path.basename(main))
            self._known[main], self._files[main] = now, files
        if self._ino is None:
            return  # closed meanwhile
        self._rewatch()
        self._looked(changed)

    def _rewatch(self) -> None:
        """Watch the directory of every file of every tree (and of each main file)."""
        ino = self._ino
        if ino is None:
            return
        wanted = {os.path.dirname(os.path.abspath(p)) for p in self._dirs_of()}
        for directory in wanted - set(self._dirs):
            try:
                wd = ino.add_watch(directory, _MASK)
            except OSError as exc:
                log.warning("cannot watch %s for config edits: %s", directory, exc.strerror)
                continue
            self._dirs[directory] = wd
            self._wds[wd] = directory
        for directory in set(self._dirs) - wanted:
            wd = self._dirs.pop(directory)
            self._wds.pop(wd, None)
            ino.rm_watch(wd)

    def _dirs_of(self) -> Iterable[str]:
        yield from self._mains
        yield from self._watched()
