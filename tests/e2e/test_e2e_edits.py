"""An admin's hand edit of the driver's file, and a foreign binding that follows it, seen
and set right: `dongled run` as a real subprocess, umockdev sticks, the test Asterisk.

Nothing is mocked on dongled's side. How fast each is set right is bench/edits.py's job;
here each is seen and set right, no device stays on a foreign IMEI past dongled's stop, and
dongled's own writes ask for no pass.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from tests.support.edits import (
    counters,
    foreign_ended_by_stop,
    runs,
    save_by_rename,
    save_in_place,
    swapped_ports,
    wait_looked,
    without_section,
)
from tests.support.marks import needs_umockdev
from tests.support.modemsim import EC25, EC25_USB
from tests.support.rig import PARKED_DATA, Rig, make_imei, rig, section_text, wait_until

pytestmark = [pytest.mark.e2e, needs_umockdev]


def _quectel(tmp_path: Path, n: int, personality: str) -> AbstractContextManager[Rig]:
    sims = [EC25(make_imei(i), f"2500100000{i:05d}") for i in range(n)]
    return rig(tmp_path, n, model=EC25_USB, sims=sims, personality=personality)


def _without(r: Rig, name: str) -> None:
    """Before dongled starts: the file has no [name], and Asterisk has read it so."""
    r.conf.write_text(without_section(r.conf.read_text(), name))
    r.original = r.conf.read_bytes()
    r.asterisk.admin_reload()
    r.asterisk.wait_for(lambda: name not in r.asterisk.devices_snapshot(), 5, what="gone")


def test_an_added_section_with_an_unchecked_port_is_set_right(tmp_path: Path) -> None:
    """README step 1: a new section with imei= and a data= nobody checked (here another
    stick's ports): dongled points it at its own stick, and Asterisk runs it there."""
    with rig(tmp_path, 3) as r:
        r.wait_all_right(timeout=10)
        _without(r, "dongle2")
        r.start_daemon()
        wrong = r.sticks[0]
        added = section_text(2, r.imeis[2], wrong.data_port.devnode, wrong.audio_port.devnode)
        save_in_place(r.conf, r.conf.read_text() + added)
        r.wait_all_right()
        r.assert_never_foreign()
        text = r.conf.read_text()
        assert f"data={r.sticks[2].data_port.devnode}" in text
        assert counters(r)["conf_edits"] >= 1


def test_a_changed_imei_moves_the_section_to_that_stick(tmp_path: Path) -> None:
    with rig(tmp_path, 2) as r:
        r.wait_all_right(timeout=10)
        r.start_daemon()
        text = r.conf.read_text()
        a, b = r.imeis
        save_by_rename(r.conf, text.replace(a, "A").replace(b, a).replace("A", b))
        r.asterisk.wait_for(
            lambda: runs(r, "dongle0", b, 1) and runs(r, "dongle1", a, 0),
            15,
            what="each section on the stick its new imei= names",
        )
        r.assert_never_foreign()


def test_a_removed_section_leaves_its_stick_unbound_and_said(tmp_path: Path) -> None:
    with rig(tmp_path, 3) as r:
        r.wait_all_right(timeout=10)
        r.start_daemon()
        save_by_rename(r.conf, without_section(r.conf.read_text(), "dongle2"))
        wait_until(
            lambda: f"stick IMEI {r.imeis[2]} is plugged in but no section" in r.daemon_log(),
            10,
            "the stick no section names said",
        )
        assert all(r.device_right(i) for i in (0, 1))
        r.assert_never_foreign()


def test_an_added_include_is_read_and_watched(tmp_path: Path) -> None:
    """A section moved into a file of its own, #included: its unchecked port is set right,
    and a later edit of the included file alone is seen too."""
    with rig(tmp_path, 3) as r:
        r.wait_all_right(timeout=10)
        _without(r, "dongle2")
        r.start_daemon()
        extra = tmp_path / "dongle-extra.conf"
        wrong = r.sticks[1]
        extra.write_text(
            section_text(2, r.imeis[2], wrong.data_port.devnode, wrong.audio_port.devnode)
        )
        save_by_rename(r.conf, r.conf.read_text() + f'\n#include "{extra}"\n')
        r.wait_all_right()
        assert f"data={r.sticks[2].data_port.devnode}" in extra.read_text()
        before = counters(r)["conf_edits"]
        right = extra.read_text()
        save_by_rename(extra, right.replace(r.sticks[2].data_port.devnode, "/dev/ttyUSB99"))
        wait_until(lambda: extra.read_text() == right, 10, "the included file set right")
        wait_until(lambda: counters(r)["conf_edits"] > before, 10, "seen as an edit")
        r.wait_all_right()
        r.assert_never_foreign()


def test_an_editors_rename_save_of_a_wrong_port_is_put_back(tmp_path: Path) -> None:
    with rig(tmp_path, 2) as r:
        r.wait_all_right(timeout=10)
        r.start_daemon()
        save_by_rename(r.conf, swapped_ports(r, 0, 1))
        wait_until(lambda: r.conf.read_bytes() == r.original, 10, "the ports put back")
        r.wait_all_right()
        r.assert_never_foreign()


def test_a_half_written_save_is_reported_then_the_whole_one_acted_on(tmp_path: Path) -> None:
    with rig(tmp_path, 2) as r:
        r.wait_all_right(timeout=10)
        r.start_daemon()
        whole = swapped_ports(r, 0, 1)
        cut = whole.index("[dongle1]") + len("[dong")
        with r.conf.open("w") as f:  # the editor stalls mid-write
            f.write(whole[:cut])
            f.flush()
            wait_until(lambda: bool(r.status().get("conf_error")), 10, "the error reported")
            assert r.conf.read_text() == whole[:cut]  # not acted on: nothing written
            f.write(whole[cut:])
        wait_until(lambda: r.conf.read_bytes() == r.original, 10, "the ports put back")
        wait_until(lambda: not r.status().get("conf_error"), 10, "the error cleared")
        r.wait_all_right()
        r.assert_never_foreign()


def test_dongleds_own_writes_ask_for_no_pass(tmp_path: Path) -> None:
    """dongled parks a vanished stick's section and binds it back (two writes of its own):
    the file watch reads the file after each and asks for no pass."""
    with rig(tmp_path, 2) as r:
        r.wait_all_right(timeout=10)
        r.start_daemon()
        looks = counters(r)["conf_looks"]
        r.unplug(0)
        wait_until(lambda: PARKED_DATA in r.conf.read_text(), 10, "parked")
        wait_looked(r, looks, "the parking write read by the file watch")
        looks = counters(r)["conf_looks"]
        r.replug(0)
        r.wait_all_right()
        wait_looked(r, looks, "the write binding it back read by the file watch")
        c = counters(r)
        assert c["conf_writes"] == 2
        assert c["conf_edits"] == 0


def _swap_then_reload(
    r: Rig, stop_verb: str, *, binds_foreign: bool | None, events: bool = True
) -> None:
    """With every device verified, an admin swaps two sections' ports by hand and reloads
    the driver at once: each is set right, and a device that came up on the other's SIM is
    stopped after it did. `binds_foreign`: the driver runs the swap (chan_quectel does); None:
    it may or may not (the test chan_dongle, re-opening one device after the other, binds the
    second to the port the first let go of; the real one was seen to leave both Not
    connected). `events`: the driver announces a device's initialization, and dongled's check
    on that event (not a pass) stops a foreign one; RE announces nothing, and its polled
    listing or the pass the edit asked for, whichever comes first, stops it."""
    r.start_daemon()
    n = len(r.sticks)
    r.wait_notification(f"STATUS={n} sticks, {n} on their devices", 20)  # settled
    save_by_rename(r.conf, swapped_ports(r, 0, 1))
    r.asterisk.admin_reload()
    wait_until(lambda: r.conf.read_bytes() == r.original, 10, "the ports put back")
    r.wait_all_right()
    if binds_foreign is not None:  # the admin's reload ran the swap: the case is exercised
        assert bool(r.asterisk.foreign_bindings) == binds_foreign
    for _t, device, _data, imei in r.asterisk.foreign_bindings if events else ():
        assert f"device {device} came up on IMEI {imei}" in r.daemon_log()  # between passes
    assert foreign_ended_by_stop(r, stop_verb) == []
    assert r.asterisk.crashes == []


def test_chan_dongle_swap_and_reload(tmp_path: Path) -> None:
    with rig(tmp_path, 2) as r:
        r.wait_all_right(timeout=10)
        _swap_then_reload(r, "DongleStop", binds_foreign=None)


def test_quectel_im_swap_and_reload(tmp_path: Path) -> None:
    with _quectel(tmp_path, 2, "quectel-im") as r:
        r.wait_all_right(timeout=10)
        _swap_then_reload(r, "QuectelStop", binds_foreign=True)


def test_quectel_re_swap_and_reload(tmp_path: Path) -> None:
    with _quectel(tmp_path, 2, "quectel-re") as r:
        r.wait_all_right(timeout=15)
        _swap_then_reload(r, "quectel stop", binds_foreign=True, events=False)


def test_a_foreign_binding_while_dongled_waits_for_a_release_is_stopped_in_the_wait(
    tmp_path: Path,
) -> None:
    """The admin's swap and reload: the test chan_dongle binds dongle1 to dongle0's stick, and
    dongled stops it. While dongled waits for dongle1 to let go of its ttys before its own
    reload, the driver's retry opens dongle0 on the port dongle1 let go of: a second foreign
    binding. It ran until the wait ended (the event's check waits for the pass's lock; the
    last look before the reload stopped it), 0.3-0.5 s in bench/edits.py with --jitter, as
    long as the wait here (release_quiet = 1.5 s, to make the window plain). It is stopped in
    the wait: the journal says so before the wait for dongle1 ends. (The driver's own retry
    comes only when the test asks for it: its interval is 60 s.)"""
    with rig(tmp_path, 2, interval=60.0) as r:
        r.wait_all_right(timeout=10)
        r.write_settings(release_quiet=1.5)
        r.start_daemon()
        r.wait_notification("STATUS=2 sticks, 2 on their devices", 20)  # settled
        save_by_rename(r.conf, swapped_ports(r, 0, 1))
        r.asterisk.admin_reload()
        r.asterisk.wait_for(
            lambda: r.asterisk.devices_snapshot()["dongle1"]["CurrentDeviceState"] == "stop",
            10,
            what="dongle1, on dongle0's stick, stopped by dongled and closed",
        )
        assert r.asterisk.foreign_bindings[-1][1] == "dongle1"
        r.asterisk.driver_retry()  # opens dongle0 on the port dongle1 let go of
        r.asterisk.wait_for(
            lambda: len(r.asterisk.foreign_bindings) == 2, 5, what="dongle0 on dongle1's stick"
        )
        assert [b[1] for b in r.asterisk.foreign_bindings] == ["dongle1", "dongle0"]
        wait_until(lambda: r.conf.read_bytes() == r.original, 10, "the ports put back")
        r.wait_all_right(timeout=15)
        assert foreign_ended_by_stop(r, "DongleStop") == []
        log = r.daemon_log()
        stopped = log.index("device dongle0 came up on IMEI")
        assert stopped < log.index("stopped device(s) dongle1 let go of their ttys"), log
        assert r.asterisk.crashes == []


def test_quectel_im_swap_then_an_asterisk_restart(tmp_path: Path) -> None:
    """The hand-swapped file read by an Asterisk restarted at once: dongled, back on AMI,
    stops each device that came up on the other's module and sets both right. (The pass
    dongled runs on reconnecting did this before the watch too: this one guards it.)"""
    with _quectel(tmp_path, 2, "quectel-im") as r:
        r.wait_all_right(timeout=10)
        r.start_daemon()
        r.wait_notification("STATUS=2 sticks, 2 on their devices", 20)
        save_by_rename(r.conf, swapped_ports(r, 0, 1))
        r.asterisk.restart()
        wait_until(lambda: r.conf.read_bytes() == r.original, 10, "the ports put back")
        r.wait_all_right()
        assert r.asterisk.foreign_bindings  # the restart ran the swap: the case is exercised
        assert foreign_ended_by_stop(r, "QuectelStop") == []
        assert r.asterisk.crashes == []
