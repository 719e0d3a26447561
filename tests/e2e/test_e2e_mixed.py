"""One box, two channel drivers: chan_dongle (Huawei sticks, dongle.conf) beside a chan_quectel
fork (Quectel EC25 modules, quectel.conf): the IchthysMaranatha fork (`Quectel*` actions) or
the RoEdAl fork (CLI lines over `Command`), kept by one `dongled run` with
`driver = "chan_dongle+chan_quectel-im"` (or `-re`). The test Asterisk loads both drivers in one
process, as a real one would, so a tty chan_dongle is still closing is busy for chan_quectel
too, and the other way round."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.marks import needs_umockdev
from tests.support.rig import PARKED_DATA, Rig, mixed_rig, wait_until
from tests.support.scenarios import (
    asterisk_down_during_a_storm,
    back_on_the_same_numbers,
    one_never_back,
    stale_config_at_startup,
)

pytestmark = [pytest.mark.e2e, needs_umockdev]


@pytest.fixture(params=["quectel-im", "quectel-re"])
def fork(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _quectel_verbs(r: Rig) -> list[str]:
    """chan_quectel's control actions as sent: `Quectel*` actions (IM), CLI lines (RE)."""
    out = []
    for _, name, headers in r.asterisk.actions:
        if name.startswith("Quectel"):
            out.append(name.removeprefix("Quectel").lower())
        elif name == "Command":
            out.append(" ".join(str(headers.get("Command", "")).split()[1:]))
    return out


def _reopens(r: Rig) -> list[float]:
    """When either driver was asked to open ttys (a reload or a start)."""
    out = []
    for t, name, headers in r.asterisk.actions:
        line = str(headers.get("Command", "")) if name == "Command" else ""
        if name in ("DongleReload", "DongleStart", "QuectelReload", "QuectelStart") or (
            line.startswith(("quectel reload", "quectel start"))
        ):
            out.append(t)
    return out


def _stops(r: Rig) -> list[float]:
    out = []
    for t, name, headers in r.asterisk.actions:
        line = str(headers.get("Command", "")) if name == "Command" else ""
        if name in ("DongleStop", "QuectelStop") or line.startswith("quectel stop"):
            out.append(t)
    return out


def test_both_drivers_kept_through_a_storm_by_one_daemon(tmp_path: Path, fork: str) -> None:
    driver = f"chan_{fork}"
    with mixed_rig(tmp_path, fork) as r:
        assert r.names == ["dongle0", "quectel1", "dongle2", "quectel3"]
        r.wait_all_right(timeout=10)
        r.start_daemon()
        r.unplug(*range(4))
        wait_until(
            lambda: all(p.read_text().count(PARKED_DATA) == 2 for p in r.confs), 5, "all parked"
        )
        for i in (3, 0, 2, 1):
            r.replug(i)
        r.wait_all_right()
        r.assert_never_foreign()
        r.assert_only_ports_changed()  # in both files
        verbs = {name for _, name, _ in r.asterisk.actions}
        assert {"DongleStop", "DongleReload"} <= verbs
        assert {"stop", "reload"} <= {v.split()[0] for v in _quectel_verbs(r)}
        assert "show device state" not in " ".join(_quectel_verbs(r))
        assert r.asterisk.crashes == []
        # The Huawei sticks are not "unbound" for chan_quectel, nor the modules for chan_dongle.
        assert "no section has imei=" not in r.daemon_log()

        wait_until(lambda: r.cli("status").returncode == 0, 10, "every line verified")
        doc = json.loads(r.cli("status", "--json").stdout)
        assert {row["section"]: row["driver"] for row in doc["sections"]} == {
            "dongle0": "chan_dongle",
            "quectel1": driver,
            "dongle2": "chan_dongle",
            "quectel3": driver,
        }
        assert doc["conf_files"] == {"chan_dongle": str(r.conf), driver: str(r.quectel_conf)}
        table = r.cli("status").stdout.splitlines()
        assert table[0].split()[:2] == ["DEVICE", "DRIVER"]
        assert next(ln for ln in table if ln.startswith("quectel1 ")).split()[1] == driver
        r.assert_daemon_alive()


def test_a_stick_of_one_driver_on_the_old_ports_of_the_other(tmp_path: Path, fork: str) -> None:
    """dongled was down while a Huawei stick and an LTE module came back on each other's old
    numbers: chan_dongle's retry bound dongle0 to the module and chan_quectel's bound quectel1
    to the stick. The restarted dongled stops both, and neither driver re-opens a tty the other
    may still be closing (a tty's lock names Asterisk's own pid for both drivers)."""
    with mixed_rig(tmp_path, fork) as r:
        r.wait_all_right(timeout=10)
        huawei, module = list(r.sticks[0].tty_numbers), list(r.sticks[1].tty_numbers)
        r.unplug(0, 1)
        snapshot = r.asterisk.devices_snapshot
        r.asterisk.wait_for(
            lambda: all(snapshot()[n]["State"] == "Not connected" for n in r.names[:2]), 5
        )
        # E1550: if0, if1 voice, if2 AT. EC25: if0 DIAG, if1 voice, if2 AT, if3 second AT.
        r.replug(1, [r.take_ttys(1)[0], huawei[1], huawei[2], huawei[0]])
        r.replug(0, module[:3])
        r.asterisk.wait_for(
            lambda: {b[1] for b in r.asterisk.foreign_bindings} >= {"dongle0", "quectel1"},
            10,
            what="each driver binding its device to the other driver's stick",
        )
        wrong = r.asterisk.foreign_bindings
        r.start_daemon()
        r.wait_all_right()
        assert r.asterisk.crashes == []
        assert r.asterisk.hazards == []
        assert r.asterisk.foreign_bindings == wrong  # none since dongled started
        r.assert_only_ports_changed()
        stops = _stops(r)
        reopen = min(t for t in _reopens(r) if t > stops[0])
        assert len(stops) >= 2 and reopen > max(stops)
        print(f"\n[release] last stop -> first re-open across drivers: {reopen - max(stops):.3f} s")


def test_mixed_one_stick_never_back(tmp_path: Path, fork: str) -> None:
    with mixed_rig(tmp_path, fork) as r:
        r.wait_all_right(timeout=10)
        one_never_back(r)


def test_mixed_back_on_the_same_numbers(tmp_path: Path, fork: str) -> None:
    with mixed_rig(tmp_path, fork) as r:
        r.wait_all_right(timeout=10)
        back_on_the_same_numbers(r)


def test_mixed_asterisk_down_during_a_storm(tmp_path: Path, fork: str) -> None:
    with mixed_rig(tmp_path, fork) as r:
        r.wait_all_right(timeout=10)
        asterisk_down_during_a_storm(r)


def test_mixed_stale_config_at_startup(tmp_path: Path, fork: str) -> None:
    with mixed_rig(tmp_path, fork) as r:
        r.wait_all_right(timeout=10)
        stale_config_at_startup(r)


def test_a_section_name_both_files_use_is_reported(tmp_path: Path) -> None:
    with mixed_rig(tmp_path, "quectel-im") as r:
        r.wait_all_right(timeout=10)
        text = r.quectel_conf.read_text().replace("[quectel1]", "[dongle0]")
        r.quectel_conf.write_text(text)
        r.start_daemon()
        wait_until(lambda: "section [dongle0] is in both" in r.daemon_log(), 10, "the report")
        line = next(ln for ln in r.daemon_log().splitlines() if "is in both" in ln)
        assert str(r.conf) in line and str(r.quectel_conf) in line
        assert r.daemon_log().count("is in both") == 1  # said once, not at every pass
        # and under `dongled status`'s table, for as long as it lasts (not only in the journal)
        out = r.cli("status")
        said = f"config problem: section [dongle0] is in both {r.conf} and {r.quectel_conf}"
        assert said in out.stdout and out.returncode == 1
        warnings = r.status()["conf_warnings"]
        assert isinstance(warnings, list) and len(warnings) == 1
        assert said.removeprefix("config problem: ") in warnings[0]
        check = r.cli("status", "--check")
        assert check.stdout.startswith("WARNING: ") and "config warning" in check.stdout
