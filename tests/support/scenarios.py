"""End-to-end scenarios that every channel driver must pass (test_e2e.py for chan_dongle,
test_e2e_quectel.py for chan_quectel): each takes a rig whose sticks all run right, before
dongled starts."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from tests.support.rig import Rig


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
