"""End-to-end scenarios that every channel driver must pass (test_e2e.py for chan_dongle,
test_e2e_quectel.py for chan_quectel): each takes a rig whose sticks all run right, before
dongled starts."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from tests.support.rig import PARKED_DATA, Rig, wait_until


def action_name(name: str, headers: Mapping[str, str]) -> str:
    """What an AMI action did: its name (a driver with manager actions)."""
    return name


def cli_verb(name: str, headers: Mapping[str, str]) -> str:
    """What an AMI action did for a CLI-only driver: `Command`'s first two words."""
    return " ".join(headers.get("Command", name).lower().split()[:2])


def rotated_one_at_a_time(r: Rig) -> None:
    """Sticks come back one by one on each other's old numbers, past the driver's interval
    (it tries the old paths meanwhile): every device ends on its own stick, never a foreign
    one, and only data=/audio= values change."""
    r.start_daemon()
    old = [list(s.tty_numbers) for s in r.sticks]
    r.unplug(*range(len(r.sticks)))
    time.sleep(1.5)
    for i in range(len(r.sticks)):
        r.replug(i, old[(i + 1) % len(r.sticks)])
        time.sleep(0.5)
    r.wait_all_right()
    r.assert_never_foreign()
    r.assert_only_ports_changed()


def restart_after_a_wrong_binding(
    r: Rig,
    stop_action: str,
    reopen_actions: tuple[str, ...],
    label: Callable[[str, Mapping[str, str]], str] = action_name,
) -> float:
    """dongled was down while the sticks came back on each other's old numbers, and the
    driver's own retry bound every device to the wrong stick. The restarted dongled stops them
    at once, re-opens their ttys only after the driver has let go of them (a reload a few ms
    after the stop crashed a real Asterisk), and binds each back. Returns the last stop ->
    first re-open wait, in seconds."""
    n = len(r.sticks)
    old = [list(s.tty_numbers) for s in r.sticks]
    r.unplug(*range(n))
    snapshot = r.asterisk.devices_snapshot
    r.asterisk.wait_for(lambda: all(e["State"] == "Not connected" for e in snapshot().values()), 5)
    for i in range(n):
        r.replug(i, old[(i + 1) % n])
    r.asterisk.wait_for(
        lambda: len({b[1] for b in r.asterisk.foreign_bindings}) == n,
        10,
        what="the driver binding every device to a wrong stick by itself",
    )
    wrong = r.asterisk.foreign_bindings
    r.start_daemon()
    r.wait_all_right()
    assert r.asterisk.crashes == []
    assert r.asterisk.hazards == []
    assert r.asterisk.foreign_bindings == wrong  # none since dongled started
    r.assert_only_ports_changed()
    actions = [(t, label(name, headers)) for t, name, headers in r.asterisk.actions]
    stops = [t for t, what in actions if what == stop_action]
    reopen = min(t for t, what in actions if what in reopen_actions)
    assert len(stops) == n and reopen > max(stops)
    return reopen - max(stops)


def _parked_in_files(r: Rig) -> int:
    return sum(path.read_bytes().count(PARKED_DATA.encode()) for path in r.confs)


def one_never_back(r: Rig) -> None:
    """All sticks drop, all but the last come back: the last one's section stays parked (or
    its device stopped), and an admin's reload does not start it on a stale path."""
    n = len(r.sticks)
    r.start_daemon()
    r.unplug(*range(n))
    for i in range(n - 1):
        r.replug(i)
    r.wait_all_right(list(range(n - 1)))
    entry = r.asterisk.devices_snapshot()[r.names[-1]]
    assert entry["DataSetting"] == PARKED_DATA or entry["State"] == "Stopped"
    assert _parked_in_files(r) == 1
    r.asterisk.admin_reload()  # an admin's reload must not start it on a stale path
    deadline = time.monotonic() + 1.5  # past the drivers' retry interval: still nobody foreign
    while time.monotonic() < deadline:
        r.assert_never_foreign()
        time.sleep(0.1)
    assert _parked_in_files(r) == 1


def back_on_the_same_numbers(r: Rig) -> None:
    """Parked, then every stick back where it was: the files end byte for byte as written."""
    n = len(r.sticks)
    r.start_daemon()
    old = [list(s.tty_numbers) for s in r.sticks]
    r.unplug(*range(n))
    wait_until(lambda: _parked_in_files(r) == n, 5, "every section parked")
    for i in range(n):
        r.replug(i, old[i])
    r.wait_all_right()
    r.assert_never_foreign()
    wait_until(lambda: all(p.read_bytes() == r.originals[p] for p in r.confs), 5, "as written")


def asterisk_down_during_a_storm(r: Rig) -> None:
    """AMI unreachable while every stick drops and comes back on new numbers (the drivers'
    own retries run meanwhile): nobody foreign, and all bound once Asterisk is back."""
    n = len(r.sticks)
    r.start_daemon()
    r.asterisk.go_down()
    r.unplug(*range(n))
    time.sleep(0.5)
    for i in range(n):
        r.replug(i)
    time.sleep(2.5)  # the drivers' own passes run meanwhile; AMI is unreachable
    r.assert_never_foreign()
    r.asterisk.come_up()
    r.wait_all_right(timeout=20)
    r.assert_never_foreign()
    r.assert_only_ports_changed()


def stale_config_at_startup(r: Rig) -> None:
    """dongled was not running while every stick came back on new numbers: started, it
    repairs the files, and nobody ever ran a foreign SIM."""
    n = len(r.sticks)
    r.unplug(*range(n))
    for i in range(n):
        r.replug(i)
    time.sleep(0.3)
    r.start_daemon()
    r.wait_all_right()
    r.assert_never_foreign()
    r.assert_only_ports_changed()


def rotated_all_at_once(r: Rig) -> None:
    """Every stick drops and all come back at once, each on another's old numbers: every
    device ends on its own stick, and stays there through the driver's next retry pass."""
    n = len(r.sticks)
    r.start_daemon()
    old = [list(s.tty_numbers) for s in r.sticks]
    r.unplug(*range(n))
    for i in range(n):
        r.replug(i, old[(i + 2) % n])
    r.wait_all_right()
    deadline = time.monotonic() + 1.2  # past one more retry pass of the driver
    while time.monotonic() < deadline:
        r.assert_never_foreign()
        time.sleep(0.1)
    assert all(r.device_right(i) for i in range(n))
    r.assert_only_ports_changed()
