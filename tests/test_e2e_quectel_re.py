"""chan_quectel (the RoEdAl fork) end to end: `dongled run` with `driver = "chan_quectel-re"` as
a real subprocess, Quectel EC25 modules under umockdev, and the test Asterisk's RE personality:
no manager actions (only CLI lines over AMI `Command`), a listing without ports, no lock files
(TIOCEXCL + flock), devices opened on its interval timer, and `quectel show device state`
crashing Asterisk on a device that has not registered. The scenarios of test_e2e_quectel.py."""

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
    cli_verb,
    one_never_back,
    restart_after_a_wrong_binding,
    rotated_all_at_once,
    rotated_one_at_a_time,
    stale_config_at_startup,
)

pytestmark = [pytest.mark.e2e, needs_umockdev]


def _re(tmp_path: Path, n: int, *, sim: bool = True) -> AbstractContextManager[Rig]:
    sims = [EC25(make_imei(i), f"2500100000{i:05d}" if sim else None) for i in range(n)]
    return rig(tmp_path, n, model=EC25_USB, sims=sims, personality="quectel-re")


def _re_uac(tmp_path: Path, n: int) -> AbstractContextManager[Rig]:
    """EC25s with USB audio, `uac=on`: voice on each module's own card (`Android`...)."""
    sims = [EC25Uac(make_imei(i), f"2500100000{i:05d}") for i in range(n)]
    return rig(tmp_path, n, model=EC25_UAC_USB, sims=sims, personality="quectel-re")


PARKED_ALSADEV = "hw:CARD=dongled_card_absent"


def _alsadevs(r: Rig) -> list[str]:
    """The alsadev= values of the file, section by section."""
    lines = r.conf.read_text().splitlines()
    return [ln.split("=", 1)[1].split(";")[0].strip() for ln in lines if ln.startswith("alsadev")]


def _status_row(r: Rig, section: str) -> tuple[object, ...]:
    rows = r.status()["sections"]
    assert isinstance(rows, list)
    row = next(s for s in rows if s["section"] == section)
    return (row["status"], row["data"], row["alsadev"])


def commands(r: Rig) -> list[str]:
    return [h.get("Command", "") for _, name, h in r.asterisk.actions if name == "Command"]


def verified(r: Rig) -> int:
    rows = r.status().get("sections", [])
    assert isinstance(rows, list)
    return sum(1 for row in rows if row["verified"])


def assert_safe(r: Rig) -> None:
    """Nothing but CLI lines, and never the one that crashes Asterisk."""
    assert isinstance(r.asterisk, FakeAsteriskQuectel)
    assert r.asterisk.crashes == []
    assert {name for _, name, _ in r.asterisk.actions} <= {"Login", "Command"}
    assert not any("device state" in c for c in commands(r))


def test_re_every_module_back_on_new_numbers(tmp_path: Path) -> None:
    with _re(tmp_path, 3) as r:
        r.wait_all_right(timeout=10)
        r.start_daemon()
        r.unplug(0, 1, 2)
        wait_until(lambda: r.conf.read_text().count(PARKED_DATA) == 3, 5, "all parked")
        for i in range(3):
            r.replug(i)
        r.wait_all_right()
        r.assert_never_foreign()
        r.assert_only_ports_changed()
        verbs = {cli_verb("Command", {"Command": c}) for c in commands(r)}
        assert {"quectel show", "quectel stop", "quectel reload"} <= verbs
        assert_safe(r)
        assert "did not come up" not in r.daemon_log()
        r.assert_daemon_alive()


def test_re_rotated_onto_each_others_numbers(tmp_path: Path) -> None:
    with _re(tmp_path, 3) as r:
        r.wait_all_right(timeout=10)
        rotated_one_at_a_time(r)
        assert_safe(r)


def test_re_restart_after_a_wrong_binding_stops_waits_and_rebinds(tmp_path: Path) -> None:
    """RE holds every module on another section's ports when dongled starts. Its listing
    shows the foreign IMEIs, and `quectel show device settings` the ports each device runs
    (no lock file names the holder): each module is named by what RE runs on it, each device
    stopped, and each bound back once let go of."""
    with _re(tmp_path, 3) as r:
        r.wait_all_right(timeout=10)
        wait = restart_after_a_wrong_binding(
            r, "quectel stop", ("quectel reload", "quectel start"), cli_verb
        )
        print(f"\n[release] last quectel stop -> first re-open: {wait:.3f} s")
        # The status file follows within about 0.1 s of the last verification.
        wait_until(
            lambda: (
                {r.status_stick(f"1-1.{i + 1}")["verified_by"] for i in range(3)} == {"asterisk"}
            ),
            5,
            "each module verified by what RE runs",
        )
        assert_safe(r)


def test_re_never_asks_the_state_of_a_device_that_never_registered(tmp_path: Path) -> None:
    """Modules without a SIM stay `Not initialized` with an unknown registration: the state
    where `quectel show device state` kills Asterisk. dongled verifies them by the listing,
    across a renumbering and an admin's `dongled status` and `dongled scan`."""
    with _re(tmp_path, 2, sim=False) as r:
        snapshot = r.asterisk.devices_snapshot
        r.asterisk.wait_for(
            lambda: all(e["IMEIState"] for e in snapshot().values()), 10, what="IMEIs read"
        )
        assert {e["State"] for e in snapshot().values()} == {"Not initialized"}
        r.start_daemon()
        r.unplug(0)
        wait_until(lambda: PARKED_DATA in r.conf.read_text(), 5, "parked")
        r.replug(0)
        wait_until(lambda: r.sticks[0].data_port.devnode in r.conf.read_text(), 10, "rebound")
        wait_until(lambda: verified(r) == 2, 10, "both verified")
        assert r.cli("status").returncode == 0
        r.cli("scan")
        assert_safe(r)
        r.assert_never_foreign()
        r.assert_daemon_alive()


def test_re_file_edited_behind_its_back_before_dongled_starts(tmp_path: Path) -> None:
    """An admin swapped two sections' data= and did not reload: RE still runs each module on
    its own section. The file's word would name both modules after the wrong section (and
    park both as clones): dongled takes RE's own (`quectel show device settings`, the ports
    it read at its load), and binds each back. Never a foreign binding."""
    with _re(tmp_path, 2) as r:
        r.wait_all_right(timeout=10)
        a, b = (s.data_port.devnode for s in r.sticks)
        text = r.conf.read_text()
        r.conf.write_text(text.replace(f"data={a}", "data=@A@").replace(f"data={b}", f"data={a}")
                          .replace("data=@A@", f"data={b}"))  # fmt: skip
        r.start_daemon()
        r.wait_all_right()
        r.assert_never_foreign()
        assert_safe(r)
        r.assert_daemon_alive()


def test_re_dongled_started_while_all_is_right_stops_nothing(tmp_path: Path) -> None:
    """A dongled started while RE runs every module right asks RE which ports each device
    runs on (`quectel show device settings`) and stops none of them. (It used to stop and
    re-probe every device; against the real RE, 3 of 9 such start-ups never came back.)"""
    with _re(tmp_path, 2) as r:
        r.wait_all_right(timeout=10)
        r.start_daemon()
        r.wait_all_right()
        wait_until(lambda: r.status().get("ok") is True, 10, "status ok")
        sent = commands(r)
        assert [c for c in sent if c.startswith(("quectel stop", "quectel start"))] == []
        assert "quectel show device settings dongle0" in sent
        rows = [r.status_stick(f"1-1.{i + 1}") for i in range(2)]
        assert {row["verified_by"] for row in rows} == {"asterisk"}
        r.assert_never_foreign()
        assert_safe(r)


def test_re_line_off_the_network_gets_a_restart_that_waits_for_the_release(
    tmp_path: Path,
) -> None:
    """A device `GSM not registered` past offline_after is restarted: stop, the release wait
    (no lock file to watch: the listing's "Stopped", then a quiet data tty, which RE's
    TIOCEXCL keeps busy until it lets go) and start, all as CLI lines."""
    with _re(tmp_path, 1) as r:
        r.wait_all_right(timeout=10)
        r.write_settings(
            offline_after=1.0,
            tables={"recovery": {"backoff": 0.4, "backoff_max": 0.4, "max_rounds": 1}},
        )
        r.start_daemon()
        r.sims[0].registered = False  # the network stops taking it
        r.unplug(0)
        time.sleep(0.3)
        r.replug(0)
        r.asterisk.wait_for_state("dongle0", "GSM not registered", 10)
        log = r.daemon_log
        wait_until(lambda: "recovery step restart" in log(), 10, "the restart step")
        r.sims[0].registered = True
        r.wait_all_right(timeout=15)
        sent = commands(r)
        stop = max(i for i, c in enumerate(sent) if c == "quectel stop now dongle0")
        assert "quectel start dongle0" in sent[stop:]
        assert "let go of their ttys" in log()
        r.assert_never_foreign()
        assert_safe(r)


def test_re_rotated_all_at_once(tmp_path: Path) -> None:
    with _re(tmp_path, 3) as r:
        r.wait_all_right(timeout=10)
        rotated_all_at_once(r)
        assert_safe(r)


def test_re_one_module_never_back(tmp_path: Path) -> None:
    with _re(tmp_path, 3) as r:
        r.wait_all_right(timeout=10)
        one_never_back(r)
        assert_safe(r)


def test_re_back_on_the_same_numbers(tmp_path: Path) -> None:
    with _re(tmp_path, 2) as r:
        r.wait_all_right(timeout=10)
        back_on_the_same_numbers(r)
        assert_safe(r)


def test_re_asterisk_down_during_a_storm(tmp_path: Path) -> None:
    with _re(tmp_path, 3) as r:
        r.wait_all_right(timeout=10)
        asterisk_down_during_a_storm(r)
        assert_safe(r)


def test_re_stale_config_at_startup(tmp_path: Path) -> None:
    with _re(tmp_path, 3) as r:
        r.wait_all_right(timeout=10)
        stale_config_at_startup(r)
        assert_safe(r)


def test_re_usb_audio_each_section_follows_its_own_card(tmp_path: Path) -> None:
    """Two modules with `uac=on` come back the other way round: their cards swap ids. Each
    section ends on its own data tty and its own card (RE opens the card it names, with no
    audio tty), no device ever runs one module's AT port with the other's audio; with one
    module absent its section names the parked card."""
    with _re_uac(tmp_path, 2) as r:
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
        assert "audio=" not in r.conf.read_text() and r.conf.read_text().count("uac=on") == 2
        assert isinstance(r.asterisk, FakeAsteriskQuectel)
        opened = set(r.asterisk.alsa_opens)
        assert {("dongle0", "hw:CARD=Android_1"), ("dongle1", "hw:CARD=Android")} <= opened

        r.unplug(0)
        wait_until(lambda: _alsadevs(r)[0] == PARKED_ALSADEV, 5, "dongle0's card parked")
        r.wait_all_right([1])
        r.assert_never_foreign()
        want = ("absent", PARKED_DATA, PARKED_ALSADEV)
        wait_until(lambda: _status_row(r, "dongle0") == want, 5, "dongle0 shown parked")
        assert_safe(r)
        r.assert_daemon_alive()


def test_re_usb_audio_external_card_keeps_its_card_and_follows_its_module(
    tmp_path: Path,
) -> None:
    """A `uac=ext` section takes its voice from a card outside the module (a headset), which
    nothing ties to an IMEI: dongled keeps its data= on its module (parked while absent, with
    the card left as it is: the device opens nothing) and never writes alsadev= or audio=
    there, while the `uac=on` section beside it follows its own card."""
    with _re_uac(tmp_path, 2) as r:
        r.wait_all_right(timeout=10)
        fake = r.asterisk
        assert isinstance(fake, FakeAsteriskQuectel)
        fake.alsa_cards["Headset"] = ""  # no module's card
        head, _, tail = r.conf.read_text().partition("[dongle1]")
        tail = tail.replace("uac=on    ", "uac=ext   ", 1).replace(
            "alsadev = hw:CARD=Android_1", "alsadev = hw:CARD=Headset", 1
        )
        r.conf.write_text(f"{head}[dongle1]{tail}")
        r.originals[r.conf] = r.conf.read_bytes()
        fake.admin_reload()
        ext = ("dongle1", "hw:CARD=Headset")
        fake.wait_for(lambda: ext in fake.alsa_opens, 10, what="the headset")
        r.start_daemon()
        r.unplug(0, 1)
        wait_until(lambda: r.conf.read_text().count(PARKED_DATA) == 2, 5, "both parked")
        assert _alsadevs(r) == [PARKED_ALSADEV, "hw:CARD=Headset"]
        r.replug(1)
        time.sleep(0.3)
        r.replug(0)
        a, b = (s.data_port.devnode for s in r.sticks)
        snapshot = fake.devices_snapshot

        def right() -> bool:
            rows = snapshot()
            return r.device_right(0) and (
                rows["dongle1"]["State"] == "Free"
                and rows["dongle1"]["IMEIState"] == r.imeis[1]
                and rows["dongle1"]["DataState"] == b
                and [n for d, n in fake.alsa_opens if d == "dongle1"][-1] == ext[1]
            )

        fake.wait_for(right, 15, what="both right")
        text = r.conf.read_text()
        assert f"data={a}" in text and f"data={b}" in text
        assert _alsadevs(r) == ["hw:CARD=Android_1", "hw:CARD=Headset"]
        assert "audio=" not in text
        r.assert_only_ports_changed()
        r.assert_never_foreign()
        assert_safe(r)
        r.assert_daemon_alive()
