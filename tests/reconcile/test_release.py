"""The release wait's bookkeeping under concurrency: a pass's wait, the recovery ladder's
restart and the pass's prune can look at one stopped device at once.

Asterisk's side is a stand-in here (a device list the test sets): what is tested is which
stop records survive, not what Asterisk says; the ttys are real ptys, read by the real
quiet-line check under real UUCP locks."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dongled.asterisk.device import DeviceEntry
from dongled.reconcile.release import Releases

QUIET = 0.2


def entry(name: str, data: str, state: str = "start") -> DeviceEntry:
    """A device running on `data`, or (state "stop") stopped with no tty open."""
    running = state != "stop"
    return DeviceEntry(
        device=name, data_setting=data, audio_setting="", imei_setting="",
        state="Free" if running else "Stopped", data_state=data if running else "",
        audio_state="", imei_state="", imsi_state="", model="", calls="0",
        current_state=state, desired_state=state,
    )  # fmt: skip


class Listing:
    """What DongleShowDevices answers: set by the test (d0 stopped and let go at first)."""

    def __init__(self, tty: str) -> None:
        self.entries = {"d0": entry("d0", tty, "stop")}
        self.connected = True

    async def show_devices(self, device: str | None = None) -> dict[str, DeviceEntry]:
        await asyncio.sleep(0)
        if device is not None:
            return {k: v for k, v in self.entries.items() if k == device}
        return dict(self.entries)

    async def reload(self, when: str) -> None:
        raise AssertionError("not used")

    async def stop(self, device: str) -> None:
        raise AssertionError("not used")

    async def start(self, device: str) -> None:
        raise AssertionError("not used")


@pytest.fixture
def tty(tmp_path: Path) -> Iterator[str]:
    master, slave = os.openpty()
    try:
        yield os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


def releases(tmp_path: Path) -> Releases:
    (tmp_path / "lock").mkdir(exist_ok=True)
    return Releases(str(tmp_path / "lock"), QUIET, 1.0, ("/dev/null/a", "/dev/null/b"))


def test_two_waits_on_one_stopped_device(tmp_path: Path, tty: str) -> None:
    """A pass's wait and the ladder's restart both wait for d0: they share one drain of its
    tty and both end done (before, the second found the tty locked by the first: "not
    quiet yet", and the ladder's restart failed for it)."""
    rel = releases(tmp_path)
    ami = Listing(tty)
    rel.stopped("d0", entry("d0", tty))

    async def main() -> list[str | None]:
        return list(await asyncio.gather(rel.settle(ami, {tty}), rel.settle(ami, {tty})))

    assert asyncio.run(main()) == [None, None]
    assert asyncio.run(rel.settle(ami, {tty})) is None  # nothing left to wait for


def test_two_waits_on_a_stick_that_vanished(tmp_path: Path) -> None:
    """The stick leaves during the wait: both waits find its tty gone (quiet at once) and
    both end done. Before, the second's `del` raised KeyError('d0'): the ladder's task died
    and that stick's recovery stopped for good."""
    master, slave = os.openpty()
    tty = os.ttyname(slave)
    rel = releases(tmp_path)
    ami = Listing(tty)
    rel.stopped("d0", entry("d0", tty))
    os.close(master)
    os.close(slave)  # the pty, as a vanished ttyUSB, no longer exists
    assert not os.path.exists(tty)

    async def main() -> list[str | None]:
        return list(await asyncio.gather(rel.settle(ami, {tty}), rel.settle(ami, {tty})))

    assert asyncio.run(main()) == [None, None]


def test_prune_during_a_wait(tmp_path: Path, tty: str) -> None:
    """prune() (a pass refreshing its listing) forgets d0 while another wait still drains
    its tty: that wait ends normally."""
    rel = releases(tmp_path)
    ami = Listing(tty)
    rel.stopped("d0", entry("d0", tty))
    old = rel._stopped["d0"]
    rel._stopped["d0"] = dataclasses.replace(old, at=old.at - 60)  # stopped long ago

    async def main() -> str | None:
        wait = asyncio.ensure_future(rel.settle(ami, {tty}))
        await asyncio.sleep(QUIET / 2)  # the wait now drains the tty
        rel.prune(ami.entries)
        assert "d0" not in rel._stopped
        return await wait

    assert asyncio.run(main()) is None


def test_an_older_wait_keeps_a_newer_stop(tmp_path: Path, tty: str) -> None:
    """d0 is stopped again while an older wait for it drains its tty: the older wait must
    not delete the newer stop record, or the next reload would skip the wait that keeps
    Asterisk from re-opening a tty still closing (the crash the wait exists for)."""
    rel = releases(tmp_path)
    ami = Listing(tty)
    rel.stopped("d0", entry("d0", tty))

    async def main() -> tuple[str | None, str | None]:
        wait = asyncio.ensure_future(rel.settle(ami, {tty}))
        await asyncio.sleep(QUIET / 2)  # the older wait drains the tty
        ami.entries = {"d0": entry("d0", tty)}  # started again, and stopped again:
        rel.stopped("d0", entry("d0", tty))  # a newer record; chan_dongle still holds it
        first = await wait
        return first, await rel.settle(ami, {tty})

    first, second = asyncio.run(main())
    assert first is None
    assert second is not None and "has not let go of d0" in second


def test_a_tty_still_held_just_after_the_stop_is_waited_for(tmp_path: Path, tty: str) -> None:
    """chan_quectel RE can list a device stopped a moment before its thread has closed the
    tty (its flock still on it). The wait looks again until the driver lets go, and ends
    done: before, it gave up at once ("not quiet yet"), and the pass reloaded only after
    its 0.5 s backoff (a hand swap on RE then took 1.06 s to set right). Here the driver's
    flock is held on its own open file description, as a separate process's would be."""
    rel = releases(tmp_path)
    ami = Listing(tty)
    rel.stopped("d0", entry("d0", tty))
    driver_fd = os.open(tty, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    fcntl.flock(driver_fd, fcntl.LOCK_EX)

    async def main() -> str | None:
        asyncio.get_running_loop().call_later(0.2, os.close, driver_fd)  # the thread closes
        return await rel.settle(ami, {tty})

    try:
        assert asyncio.run(main()) is None
    finally:
        with contextlib.suppress(OSError):
            os.close(driver_fd)
