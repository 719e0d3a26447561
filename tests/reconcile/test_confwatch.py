"""The file watch on real files and a real inotify descriptor: which saves ask for a pass."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from dongled.conf.atomicfile import replace_atomically
from dongled.conf.dongleconf import DongleConf
from dongled.core.inotify import IN_CLOSE_WRITE, IN_MOVED_TO, INotify
from dongled.reconcile.confwatch import ConfWatch

CONF = "[general]\ninterval=15\n\n[dongle0]\nimei=351234567890124\ndata=/dev/ttyUSB2\n"
QUIET = 0.05


class Looks(list[bool]):
    """What the watch reported: one bool per look (whether the files differed from what it
    knew)."""

    def __init__(self) -> None:
        super().__init__()
        self.more = asyncio.Event()

    def __call__(self, changed: bool) -> None:
        self.append(changed)
        self.more.set()


def put(path: Path, text: str) -> None:
    path.write_text(text)


def watching(tmp_path: Path, body: Callable[[ConfWatch, Looks, Path], Awaitable[None]]) -> Looks:
    """Run `body` with a started watch of tmp_path/dongle.conf; returns what it reported."""
    conf = tmp_path / "dongle.conf"
    if not conf.exists():
        put(conf, CONF)
    looks = Looks()

    async def main() -> None:
        watch = ConfWatch([str(conf)], looks, quiet=QUIET)
        assert watch.start()
        try:
            await body(watch, looks, conf)
        finally:
            watch.close()

    asyncio.run(main())
    return looks


async def settled(looks: Looks, count: int) -> None:
    """Until the watch has looked `count` times (bounded: a missing look fails the test)."""
    async with asyncio.timeout(5):
        while len(looks) < count:
            looks.more.clear()
            await looks.more.wait()


def test_inotify_reports_a_rename_into_a_watched_directory(tmp_path: Path) -> None:
    ino = INotify()
    try:
        wd = ino.add_watch(str(tmp_path), IN_CLOSE_WRITE | IN_MOVED_TO)
        (tmp_path / "new").write_text("x")
        os.replace(tmp_path / "new", tmp_path / "dongle.conf")
        seen = [(n.wd, n.mask, n.name) for n in ino.read()]
        assert (wd, IN_CLOSE_WRITE, "new") in seen
        assert (wd, IN_MOVED_TO, "dongle.conf") in seen
        assert ino.read() == []  # non-blocking: nothing more queued
    finally:
        ino.close()


def test_an_editors_rename_save_asks_for_a_pass(tmp_path: Path) -> None:
    async def body(watch: ConfWatch, looks: Looks, conf: Path) -> None:
        tmp = tmp_path / ".dongle.conf.swp"
        tmp.write_text(CONF.replace("ttyUSB2", "ttyUSB5"))
        os.replace(tmp, conf)
        await settled(looks, 1)

    assert watching(tmp_path, body) == [True]


def test_dongleds_own_write_asks_for_none(tmp_path: Path) -> None:
    async def body(watch: ConfWatch, looks: Looks, conf: Path) -> None:
        read = DongleConf.load(conf).render()
        new = CONF.replace("ttyUSB2", "ttyUSB5").encode()
        replace_atomically(str(conf), new, expected=read[str(conf)])
        watch.seen(str(conf), {str(conf): new})  # as a pass tells it after its write
        await settled(looks, 1)

    assert watching(tmp_path, body) == [False]


def test_a_burst_of_writes_is_read_once_when_quiet(tmp_path: Path) -> None:
    async def body(watch: ConfWatch, looks: Looks, conf: Path) -> None:
        with conf.open("a") as f:
            for i in range(5):
                f.write(f"; line {i}\n")
                f.flush()
                await asyncio.sleep(QUIET / 5)
        await settled(looks, 1)
        put(conf, CONF + "".join(f"; line {i}\n" for i in range(5)))  # the same bytes again
        await settled(looks, 2)

    assert watching(tmp_path, body) == [True, False]


def test_an_included_file_is_watched_once_the_include_is_added(tmp_path: Path) -> None:
    extra = tmp_path / "sub" / "extra.conf"
    extra.parent.mkdir()
    put(extra, "[dongle1]\nimei=356938035643809\ndata=/dev/ttyUSB5\n")

    async def body(watch: ConfWatch, looks: Looks, conf: Path) -> None:
        put(conf, CONF + f'#include "{extra}"\n')
        await settled(looks, 1)
        put(extra, "[dongle1]\nimei=356938035643809\ndata=/dev/ttyUSB8\n")
        await settled(looks, 2)

    assert watching(tmp_path, body) == [True, True]


def test_an_unparsable_file_differs_and_so_does_its_fix(tmp_path: Path) -> None:
    async def body(watch: ConfWatch, looks: Looks, conf: Path) -> None:
        put(conf, CONF + "[broken\n")
        await settled(looks, 1)
        put(conf, CONF)
        await settled(looks, 2)

    assert watching(tmp_path, body) == [True, True]


def test_other_files_in_the_directory_are_not_read(tmp_path: Path) -> None:
    """Another module's config beside dongle.conf: no look at all. A later save of
    dongle.conf, past the quiet time, is the one look: it would be the second had the other
    files been read."""

    async def body(watch: ConfWatch, looks: Looks, conf: Path) -> None:
        (tmp_path / "sip.conf").write_text("[general]\n")
        (tmp_path / "dongle.conf.dongled-bak").write_text("old")
        await asyncio.sleep(QUIET * 4)
        put(conf, CONF + "; touched\n")
        await settled(looks, 1)

    assert watching(tmp_path, body) == [True]
