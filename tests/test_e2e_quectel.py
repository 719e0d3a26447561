"""chan_quectel (the IchthysMaranatha fork) end to end: `dongled run` with
`driver = "chan_quectel-im"` as a real subprocess, Quectel EC25 modules under umockdev, and the
test Asterisk's IM personality (`Quectel*` manager actions, quectel.conf). The scenarios of
tests/test_e2e.py that matter most, for the second driver."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from tests.support.marks import needs_umockdev
from tests.support.modemsim import EC25, EC25_USB
from tests.support.rig import PARKED_DATA, Rig, make_imei, rig, wait_until
from tests.support.scenarios import (
    asterisk_down_during_a_storm,
    back_on_the_same_numbers,
    one_never_back,
    restart_after_a_wrong_binding,
    rotated_all_at_once,
    rotated_one_at_a_time,
    stale_config_at_startup,
)

pytestmark = [pytest.mark.e2e, needs_umockdev]


def _im(tmp_path: Path, n: int) -> AbstractContextManager[Rig]:
    sims = [EC25(make_imei(i), f"2500100000{i:05d}") for i in range(n)]
    return rig(tmp_path, n, model=EC25_USB, sims=sims, personality="quectel-im")


def test_im_every_module_back_on_new_numbers(tmp_path: Path) -> None:
    with _im(tmp_path, 3) as r:
        r.wait_all_right(timeout=10)
        r.start_daemon()
        r.unplug(0, 1, 2)
        wait_until(lambda: r.conf.read_text().count(PARKED_DATA) == 3, 5, "all parked")
        for i in range(3):
            r.replug(i)
        r.wait_all_right()
        r.assert_never_foreign()
        r.assert_only_ports_changed()
        verbs = {name for _, name, _ in r.asterisk.actions}
        assert {"QuectelShowDevices", "QuectelStop", "QuectelReload"} <= verbs
        assert not any(v.startswith("Dongle") for v in verbs)
        r.assert_daemon_alive()


def test_im_rotated_onto_each_others_numbers(tmp_path: Path) -> None:
    with _im(tmp_path, 3) as r:
        r.wait_all_right(timeout=10)
        rotated_one_at_a_time(r)


def test_im_restart_after_a_wrong_binding_stops_waits_and_rebinds(tmp_path: Path) -> None:
    """The same port-release race as chan_dongle's (it crashed a real IM once in 3 runs)."""
    with _im(tmp_path, 3) as r:
        r.wait_all_right(timeout=10)
        wait = restart_after_a_wrong_binding(r, "QuectelStop", ("QuectelReload", "QuectelStart"))
        print(f"\n[release] last QuectelStop -> first re-open: {wait:.3f} s")


def test_im_module_identified_in_its_own_dialect(tmp_path: Path) -> None:
    with _im(tmp_path, 1) as r:
        r.wait_all_right(timeout=10)
        r.unplug(0)
        r.start_daemon()
        r.replug(0)
        r.wait_all_right()
        # Probed before the fork opened it; the Huawei dialect would have said "no voice"
        # (AT^CVOICE? answers ERROR on an EC25) and read no model from Quectel's ATI.
        row = r.status_stick("1-1.1")
        assert (row["imei"], row["verified_by"], row["voice"]) == (r.imeis[0], "probe", True)
        assert "EC25" in str(row["model"]) and row["iccid"] == r.sims[0].iccid
        assert "stick-limited" not in r.daemon_log()


def test_im_one_module_never_back(tmp_path: Path) -> None:
    with _im(tmp_path, 3) as r:
        r.wait_all_right(timeout=10)
        one_never_back(r)


def test_im_back_on_the_same_numbers(tmp_path: Path) -> None:
    with _im(tmp_path, 2) as r:
        r.wait_all_right(timeout=10)
        back_on_the_same_numbers(r)


def test_im_asterisk_down_during_a_storm(tmp_path: Path) -> None:
    with _im(tmp_path, 3) as r:
        r.wait_all_right(timeout=10)
        asterisk_down_during_a_storm(r)


def test_im_stale_config_at_startup(tmp_path: Path) -> None:
    with _im(tmp_path, 3) as r:
        r.wait_all_right(timeout=10)
        stale_config_at_startup(r)


def test_im_rotated_all_at_once(tmp_path: Path) -> None:
    with _im(tmp_path, 3) as r:
        r.wait_all_right(timeout=10)
        rotated_all_at_once(r)
