"""The hung-stick ladder: its decisions (pure), its kernel-side steps, and the real daemon
climbing it under umockdev."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from dongled.core.errors import RecoveryError
from dongled.modem.usbreset import hub_and_port, power_cycle, reauthorize, usb_reset
from dongled.recovery.ladder import ORDER, Ladder, Step
from tests.support import devguard
from tests.support.marks import needs_umockdev
from tests.support.nobody import open_dir, run_as_nobody
from tests.support.rig import FAST_RECOVERY, Rig, journal, rig, wait_until

# ---- decisions ---------------------------------------------------------------------------


def test_steps_in_order_with_backoff_then_given_up() -> None:
    ladder = Ladder(backoff=10, backoff_max=40, max_rounds=1)
    t = 0.0
    taken = []
    for _ in range(6):
        step = ladder.next_step("1-1.2", t, "no answer", has_device=True)
        if step is not None:
            taken.append(step)
        assert ladder.next_step("1-1.2", t + 1, "no answer", has_device=True) is None  # waits
        t += 100
    assert taken == list(ORDER)
    assert "still failing after 1 rounds" in ladder.given_up("1-1.2")


def test_backoff_doubles_up_to_the_cap() -> None:
    ladder = Ladder(backoff=10, backoff_max=25, max_rounds=3)
    waits = []
    t = 0.0
    for _ in range(4):
        assert ladder.next_step("p", t, "x", has_device=True) is not None
        waits.append(ladder.wait_left("p", t))
        t += 1000
    assert waits == [10, 20, 25, 25]


def test_restart_needs_a_device_and_success_resets() -> None:
    ladder = Ladder(backoff=1)
    assert ladder.next_step("p", 0, "x", has_device=False) is Step.REAUTHORIZE
    ladder.succeeded("p")
    assert ladder.next_step("p", 0, "x", has_device=True) is Step.RESTART


def test_disabled_steps_are_skipped() -> None:
    ladder = Ladder(steps=(Step.RESTART, Step.USB_RESET), backoff=1, max_rounds=1)
    assert ladder.next_step("p", 0, "x", has_device=True) is Step.RESTART
    assert ladder.next_step("p", 10, "x", has_device=True) is Step.USB_RESET
    assert ladder.next_step("p", 20, "x", has_device=True) is None
    assert ladder.given_up("p")


# ---- kernel-side steps, without hardware ---------------------------------------------------


def test_reauthorize_writes_0_then_1(tmp_path: Path) -> None:
    attr = tmp_path / "authorized"
    attr.write_text("1")
    reauthorize(str(tmp_path))
    assert attr.read_text() == "1"  # a plain file keeps the last write; sysfs acts on each


def test_reauthorize_without_the_attribute_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RecoveryError, match="authorized"):
        reauthorize(str(tmp_path))


def test_usb_reset_of_a_missing_node_is_an_error() -> None:
    # the device guard refuses the open, so even a machine with that node sees no reset
    with devguard.expecting_escape(), pytest.raises(RecoveryError, match="/dev/bus/usb/099/123"):
        usb_reset(99, 123)


def test_hub_and_port_validation() -> None:
    assert hub_and_port("1-1.3") == ("1-1", "3")
    assert hub_and_port("2-1.4.2") == ("2-1.4", "2")
    assert hub_and_port("1-2") is None  # a root-hub port: uhubctl cannot switch it
    assert hub_and_port("1-1.3; rm -rf /") is None
    assert hub_and_port("1-1.3\n") is None  # `$` alone would let a final newline through


def test_a_denied_step_says_how_to_grant_it() -> None:
    """As a user without the rights (what the asterisk user is without dongled's udev rules),
    the failure names what grants them instead of a bare "Permission denied"."""
    with open_dir() as d:
        (d / "authorized").write_text("1")  # root's, 0644: like sysfs by default
        said = run_as_nobody(
            "from dongled.core.errors import RecoveryError\n"
            "from dongled.modem.usbreset import reauthorize\n",
            "try:\n    reauthorize(sys.argv[1])\n"
            "except RecoveryError as exc:\n    print(exc); sys.exit(0)\n"
            "sys.exit(3)\n",
            str(d),
        )
        assert "Permission denied" in said
        assert "udev rules" in said and "docs/recovery-ladder.md" in said
        assert (d / "authorized").read_text() == "1"


def test_power_cycle_without_uhubctl(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RecoveryError, match="uhubctl is not installed"):
        power_cycle("1-1.3")


def test_power_cycle_runs_uhubctl_with_an_argument_list(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A stand-in uhubctl (the real one needs a hub with per-port power switching).
    record = tmp_path / "args"
    fake = tmp_path / "uhubctl"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    power_cycle("1-1.3")
    assert record.read_text().split() == ["-l", "1-1", "-p", "3", "-a", "cycle", "-d", "2"]


# ---- the daemon on the ladder --------------------------------------------------------------

GRACE = 0.5  # boot_grace for tests of a hung stick: silent past it from the start


def _hang(r: Rig) -> None:
    """Stick 0 comes back on new ports but nobody answers on them: a hung stick."""
    r.sims[0].mute = True
    r.unplug(0)
    time.sleep(0.3)
    r.replug(0)


def _kernel_brings_it_back(r: Rig) -> None:
    """Simulated: the kernel's side of a recovery step (the stick leaves and re-enumerates),
    with its firmware unstuck by it; then the daemon must take it back."""
    r.sims[0].mute = False
    r.unplug(0)
    r.replug(0)
    r.wait_all_right(timeout=15)
    wait_until(lambda: bool(journal(r, "works again")), 10, "recovered")


@needs_umockdev
def test_device_that_does_not_come_up_gets_dongle_restart(tmp_path: Path) -> None:
    with rig(tmp_path, 1) as r:
        r.wait_all_right(timeout=10)
        r.write_settings(verify_timeout=1.0, tables={"recovery": FAST_RECOVERY})
        r.start_daemon()
        sim = r.sims[0]
        imsi = sim.imsi
        sim.imsi = None  # chan_dongle's init aborts on AT+CIMI ERROR: the device stays down
        r.unplug(0)
        time.sleep(0.3)
        r.replug(0)
        wait_until(lambda: bool(journal(r, "recovery step restart")), 10, "the restart step")
        sim.imsi = imsi  # the stick answers fully again
        r.wait_all_right(timeout=15)
        wait_until(lambda: bool(journal(r, "works again")), 10, "recovered")
        assert r.asterisk.foreign_bindings == []
        # The restart step is DongleStop, a wait until chan_dongle has let go of the ttys,
        # then DongleStart: never DongleRestart, which re-opens ttys that may still close.
        verbs = [(name, a.get("Device")) for _, name, a in r.asterisk.actions]
        assert ("DongleRestart", "dongle0") not in verbs
        stop = verbs.index(("DongleStop", "dongle0"), verbs.index(("DongleStop", "dongle0")) + 1)
        assert ("DongleStart", "dongle0") in verbs[stop:]
        assert r.asterisk.crashes == [] and r.asterisk.hazards == []
        print("\n".join(journal(r, "recovery step") + journal(r, "works again")))


@needs_umockdev
def test_a_modem_that_answers_at_gets_no_usb_step_when_its_driver_fails(tmp_path: Path) -> None:
    """The driver never brings the device up (here: chan_dongle's init stops at a SIM that
    answers AT+CIMI with ERROR), but the modem answers AT: it is not hung, and a USB step
    would only reboot it. dongled restarts the device, then says the driver is at fault and
    gives up without a USB step. (It used to re-authorize and reset such a stick.)"""
    with rig(tmp_path, 1) as r:
        r.wait_all_right(timeout=10)
        r.write_settings(verify_timeout=1.0, tables={"recovery": FAST_RECOVERY})
        r.start_daemon()
        r.sims[0].imsi = None
        r.unplug(0)
        time.sleep(0.3)
        r.replug(0)
        wait_until(lambda: bool(journal(r, "given up")), 20, "the ladder to end")
        steps = [ln.split("recovery step ")[1].split()[0] for ln in journal(r, "recovery step")]
        assert steps == ["restart"]
        fault = journal(r, "answers AT")
        assert fault and "chan_dongle did not bring dongle0 up" in fault[0]
        assert "its modem answers AT" in journal(r, "given up")[0]
        authorized = Path(r.tb.root_dir + r.sticks[0].sys_path) / "authorized"
        assert authorized.read_text().strip() == "1" and r.tb.usb_resets == 0
        print("\n".join(journal(r, "recovery step") + fault + journal(r, "given up")))


@needs_umockdev
def test_stick_that_never_answers_climbs_the_ladder_and_is_given_up(tmp_path: Path) -> None:
    with rig(tmp_path, 1) as r:
        r.wait_all_right(timeout=10)
        r.write_settings(boot_grace=GRACE, tables={"recovery": FAST_RECOVERY})
        r.start_daemon()
        _hang(r)
        wait_until(lambda: bool(journal(r, "given up")), 20, "the ladder to end")
        steps = [ln.split("recovery step ")[1].split()[0] for ln in journal(r, "recovery step")]
        # No section's device runs on it (its IMEI is unknown): DongleRestart is skipped.
        assert steps == ["reauthorize", "usb_reset", "power_cycle"]
        # Simulated here: umockdev keeps sysfs attributes as plain files, so the write lands
        # but no kernel re-binds the stick; the testbed answers the USB reset itself and the
        # stick stays mute after it; uhubctl is not installed, so power cycling fails.
        authorized = Path(r.tb.root_dir + r.sticks[0].sys_path) / "authorized"
        assert authorized.read_text().strip() == "1"
        assert r.tb.usb_resets == 1 and not journal(r, "step usb_reset failed")
        assert journal(r, "step power_cycle failed")

        # The journal line is written just before the status snapshot: wait for the latter.
        def given_up_in_status() -> bool:
            rec = r.status().get("recovery")
            return isinstance(rec, dict) and bool(rec.get("1-1.1", {}).get("given_up"))

        wait_until(given_up_in_status, 5, "status to show the stick given up")
        assert r.status()["ok"] is False
        print("\n".join(journal(r, "recovery step") + journal(r, "given up")))
        # A stick given up on that is replugged and works is taken back at once.
        r.sims[0].mute = False
        r.unplug(0)
        r.replug(0)
        r.wait_all_right(timeout=15)


@needs_umockdev
def test_reauthorize_then_the_stick_comes_back(tmp_path: Path) -> None:
    with rig(tmp_path, 1) as r:
        r.wait_all_right(timeout=10)
        ladder = {**FAST_RECOVERY, "max_rounds": 2, "backoff": 5.0}
        r.write_settings(boot_grace=GRACE, tables={"recovery": ladder})
        r.start_daemon()
        _hang(r)
        wait_until(lambda: bool(journal(r, "recovery step reauthorize")), 10, "re-authorize")
        _kernel_brings_it_back(r)  # what authorized 0 -> 1 does
        assert not journal(r, "recovery step usb_reset")


@needs_umockdev
def test_usb_reset_then_the_stick_comes_back(tmp_path: Path) -> None:
    with rig(tmp_path, 1) as r:
        r.wait_all_right(timeout=10)
        ladder = {**FAST_RECOVERY, "reauthorize": False, "max_rounds": 2, "backoff": 5.0}
        r.write_settings(boot_grace=GRACE, tables={"recovery": ladder})
        r.start_daemon()
        _hang(r)
        # The ioctl reached the stick's usbfs node (/dev/bus/usb/001/NNN) and succeeded.
        # Simulated: the testbed answers USBDEVFS_RESET itself (only a kernel can reset).
        wait_until(lambda: r.tb.usb_resets == 1, 10, "a USBDEVFS_RESET")
        wait_until(lambda: bool(journal(r, "recovery step usb_reset")), 5, "the journal line")
        assert not journal(r, "step usb_reset failed")
        assert not journal(r, "recovery step reauthorize")  # turned off in the settings
        _kernel_brings_it_back(r)  # what the port reset does
        assert not journal(r, "recovery step power_cycle")
        assert r.tb.usb_resets == 1
        print("\n".join(journal(r, "recovery step") + journal(r, "works again")))


@needs_umockdev
def test_a_stick_slow_to_boot_is_not_reset_and_holds_no_other_back(tmp_path: Path) -> None:
    """Real sticks answer AT only seconds after their ttys appear. A storm where one stick
    boots for 4 s: it is probed again with backoff, never climbs the ladder (a reset would
    restart its boot), and the others are back on their devices while it still boots."""
    with rig(tmp_path, 3) as r:
        r.wait_all_right(timeout=10)
        r.write_settings(tables={"recovery": FAST_RECOVERY})  # the default boot_grace (30 s)
        r.start_daemon()
        r.unplug(0, 1, 2)
        time.sleep(0.3)
        slow = r.sims[1]
        slow.boot_delay = 4.0
        for i in range(3):
            r.replug(i)
        r.wait_all_right([0, 2], timeout=10)
        assert time.monotonic() < slow.booted_at and not r.device_right(1)  # still booting
        # The status file follows a stick's state within about 0.1 s (written by a task).
        wait_until(lambda: r.status_stick("1-1.2")["state"] == "booting", 2, "booting shown")
        assert time.monotonic() < slow.booted_at
        r.wait_all_right(timeout=20)
        assert journal(r, "not answering yet")  # it was probed while booting
        assert not journal(r, "recovery step") and not journal(r, "cannot identify")
        assert r.tb.usb_resets == 0
        authorized = Path(r.tb.root_dir + r.sticks[1].sys_path) / "authorized"
        assert authorized.read_text().strip() == "1"
        r.assert_never_foreign()


def _off_the_network(r: Rig, **settings: object) -> None:
    """A daemon (line-down watch after 1 s, the fast ladder) whose one stick comes back
    off the network: chan_dongle shows its device `GSM not registered`."""
    r.wait_all_right(timeout=10)
    r.write_settings(offline_after=1.0, tables={"recovery": FAST_RECOVERY}, **settings)
    r.start_daemon()
    r.sims[0].registered = False  # the network stops taking it; chan_dongle re-inits
    r.unplug(0)
    time.sleep(0.3)
    r.replug(0)
    r.asterisk.wait_for_state("dongle0", "GSM not registered", 10)


@needs_umockdev
def test_a_line_off_the_network_too_long_gets_a_device_restart(tmp_path: Path) -> None:
    """A device in `GSM not registered` with its stick plugged in, past offline_after, is
    handed to the ladder: its device is restarted (stop, wait, start), journaled."""
    with rig(tmp_path, 1) as r:
        _off_the_network(r)
        wait_until(lambda: bool(journal(r, "recovery step restart")), 10, "the restart step")
        assert journal(r, "has been 'GSM not registered' for")
        r.sims[0].registered = True
        r.wait_all_right(timeout=15)
        verbs = [(name, a.get("Device")) for _, name, a in r.asterisk.actions]
        assert ("DongleRestart", "dongle0") not in verbs and ("DongleStart", "dongle0") in verbs
        r.assert_never_foreign()
        print("\n".join(journal(r, "handing it to recovery") + journal(r, "recovery step")))


@needs_umockdev
def test_a_restart_whose_stop_is_not_let_go_in_time_still_brings_the_line_back(
    tmp_path: Path,
) -> None:
    """The ladder's restart step stops the device, but the driver keeps its ttys longer than
    the release wait (seen once against the real chan_quectel IM: "step restart failed: the
    data tty of dongle0 is not quiet yet"). The device was left stopped for good, and the
    stick called healthy: its verification outlived the stop. Now a pass starts it once
    the ttys are let go."""
    with rig(tmp_path, 1) as r:
        _off_the_network(r, verify_timeout=1.0)
        for driver in r.asterisk.drivers:  # a stop's ttys stay held past the 1 s release wait
            chan = getattr(driver, "chan", None)
            assert chan is not None
            chan.close_delay = 2.0
        wait_until(lambda: bool(journal(r, "step restart failed")), 15, "the failed restart")
        r.sims[0].registered = True
        r.wait_all_right(timeout=20)
        r.assert_never_foreign()
