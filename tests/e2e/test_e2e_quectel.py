"""chan_quectel (the IchthysMaranatha fork) end to end: `dongled run` with
`driver = "chan_quectel-im"` as a real subprocess, Quectel EC25 modules under umockdev, and the
test Asterisk's IM personality (`Quectel*` manager actions, quectel.conf). The scenarios of
tests/e2e/test_e2e.py that matter most, for the second driver."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from tests.support.fake_asterisk_quectel import FakeAsteriskQuectel
from tests.support.marks import needs_umockdev
from tests.support.modemsim import EC25, EC25_UAC_USB, EC25_USB, EC25Uac
from tests.support.rig import PARKED_DATA, Rig, card_alsadev, make_imei, rig, wait_until
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


def _im_uac(tmp_path: Path, n: int) -> AbstractContextManager[Rig]:
    """EC25s with USB audio: voice on each module's ALSA card (`Android`, `Android_1`...)."""
    sims = [EC25Uac(make_imei(i), f"2500100000{i:05d}") for i in range(n)]
    return rig(tmp_path, n, model=EC25_UAC_USB, sims=sims, personality="quectel-im")


PARKED_ALSADEV = "hw:CARD=dongled_card_absent"


def _alsadevs(r: Rig) -> list[str]:
    """The alsadev= values of the file, section by section."""
    lines = r.conf.read_text().splitlines()
    return [ln.split("=", 1)[1].split(";")[0].strip() for ln in lines if ln.startswith("alsadev")]


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
        # Probed before the fork opened it (IMEI, IMSI, ICCID in Quectel's dialect); the
        # Huawei dialect would have said "no voice" (AT^CVOICE? answers ERROR on an EC25).
        # Its model and voice come from the fork's listing once dongled has verified it.
        wait_until(lambda: r.status_stick("1-1.1")["voice"] is not None, 5, "its voice known")
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


def test_im_usb_audio_each_section_follows_its_own_card(tmp_path: Path) -> None:
    """Two modules with USB audio come back the other way round: their cards swap ids
    (`Android` is whichever enumerates first). Each section ends on its own data tty and its
    own card, and no device ever runs one module's AT port with the other's audio. With one
    module absent its section names the parked card, which nothing can open."""
    with _im_uac(tmp_path, 2) as r:
        r.wait_all_right(timeout=10)
        assert [card_alsadev(s) for s in r.sticks] == ["hw:CARD=Android", "hw:CARD=Android_1"]
        r.start_daemon()
        r.unplug(0, 1)
        wait_until(lambda: _alsadevs(r) == [PARKED_ALSADEV] * 2, 5, "both cards parked")
        assert r.conf.read_text().count(PARKED_DATA) == 2
        r.replug(1)
        time.sleep(0.3)
        r.replug(0)
        assert [card_alsadev(s) for s in r.sticks] == ["hw:CARD=Android_1", "hw:CARD=Android"]
        r.wait_all_right()
        assert _alsadevs(r) == ["hw:CARD=Android_1", "hw:CARD=Android"]
        r.assert_never_foreign()  # the fake's hazard: a data port with another module's card
        r.assert_only_ports_changed()
        assert "audio=" not in r.conf.read_text()
        assert isinstance(r.asterisk, FakeAsteriskQuectel)
        opened = set(r.asterisk.alsa_opens)
        assert ("dongle0", "hw:CARD=Android_1") in opened
        assert ("dongle1", "hw:CARD=Android") in opened

        r.unplug(0)
        wait_until(lambda: _alsadevs(r)[0] == PARKED_ALSADEV, 5, "dongle0's card parked")
        r.wait_all_right([1])
        r.assert_never_foreign()

        def dongle0_row() -> dict[str, object]:
            rows = r.status()["sections"]
            assert isinstance(rows, list)
            row = next(s for s in rows if s["section"] == "dongle0")
            assert isinstance(row, dict)
            return row

        # The status task writes the file within about 0.1 s of the pass that parked the card.
        wait_until(lambda: dongle0_row()["data"] == PARKED_DATA, 5, "status shows the parked port")
        row = dongle0_row()
        assert row["status"] == "absent" and row["alsadev"] == PARKED_ALSADEV
        assert r.status_stick("1-1.2")["card"] == "Android"
        table = r.cli("status").stdout
        assert "hw:CARD=Android " in table and PARKED_ALSADEV in table
        r.assert_daemon_alive()


def test_im_usb_audio_rotated_onto_each_others_numbers(tmp_path: Path) -> None:
    with _im_uac(tmp_path, 2) as r:
        r.wait_all_right(timeout=10)
        rotated_one_at_a_time(r)


def test_im_usb_audio_card_renamed_in_place_is_followed(tmp_path: Path) -> None:
    """An admin (or a udev rule) renames a module's card after its IMEI: the change uevent
    brings a pass, which re-reads the id and points the section at the new name."""
    with _im_uac(tmp_path, 2) as r:
        r.wait_all_right(timeout=10)
        r.start_daemon()
        card = r.tb.rename_card(r.sticks[0], "dq" + r.imeis[0][-13:])  # a udev rule's rename
        r.sync_cards()
        r.tb.uevent(card.sys_path, "change")
        want = f"hw:CARD={card.id}"
        wait_until(lambda: _alsadevs(r) == [want, "hw:CARD=Android_1"], 5, "the new name")
        r.wait_all_right()
        r.assert_never_foreign()
        r.assert_only_ports_changed()
        assert isinstance(r.asterisk, FakeAsteriskQuectel)
        assert ("dongle0", want) in r.asterisk.alsa_opens
