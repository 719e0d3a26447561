"""`dongled scan` and `dongled adopt`, one-shot without the daemon, as their own processes
against umockdev sticks and the test Asterisk over real TCP."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from dongled.conf.dongleconf import DongleConf
from tests.support.fake_asterisk import FakeAsterisk
from tests.support.marks import needs_umockdev
from tests.support.modemsim import E1550_USB, EC25, EC25_UAC_USB, EC25_USB, EC25Uac, StickSim
from tests.support.rig import PARKED_DATA, Rig, card_alsadev, make_imei, rig, section_text

pytestmark = [
    pytest.mark.e2e,
    needs_umockdev,
]


def run_cli(r: Rig, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()  # drop what the rig printed
    done = r.cli(*args)
    return done.returncode, done.stdout, done.stderr


def test_scan_shows_the_diff_then_applies_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with rig(tmp_path, 3) as r:
        r.wait_all_right(timeout=10)
        # dongled is not running: the sticks come back on new numbers, the file goes stale
        r.unplug(0, 1)
        r.replug(0)
        r.replug(1)
        r.asterisk.wait_for_state("dongle0", "Not connected", 5)
        stale = r.conf.read_bytes()

        code, out, err = run_cli(r, capsys, "scan")
        print(f"\n$ dongled scan   (exit {code})\n{out}{err}")
        assert code == 1
        assert r.conf.read_bytes() == stale  # a dry run writes nothing
        assert out.startswith(f"--- {r.conf}\n+++ {r.conf}\n")
        for i in (0, 1):
            new = r.sticks[i]
            assert f"+data={new.data_port.devnode}   ; AT port\n" in out
            assert f"+audio = {new.audio_port.devnode}   ; voice port\n" in out
            assert f"IMEI {r.imeis[i]} on {new.data_port.devnode}" in err
        assert "dongle2" not in out  # running right: untouched
        assert f"IMEI {r.imeis[2]} on {r.sticks[2].data_port.devnode} / " in err
        assert "(by asterisk)" in err and "(by probe)" in err
        assert "Asterisk actions: reload" in err
        assert "dry run" in err
        reloads = r.asterisk.reload_count

        code, out, err = run_cli(r, capsys, "scan", "--apply")
        assert code == 0, err
        assert "applied" in err
        r.wait_all_right(timeout=5)
        assert r.asterisk.reload_count == reloads + 1
        r.assert_never_foreign()
        r.assert_only_ports_changed()
        assert (tmp_path / "dongle.conf.dongled-bak").read_bytes() == stale

        code, out, err = run_cli(r, capsys, "scan")
        assert (code, out) == (0, "")
        assert "nothing to do" in err


def test_scan_parks_a_missing_stick_and_stops_a_foreign_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with rig(tmp_path, 2, interval=0.3) as r:
        r.wait_all_right(timeout=10)
        # dongle1's stick is gone; dongle0's stick comes back on dongle1's old numbers, where
        # chan_dongle re-grabs it for dongle1 at its next pass: a foreign IMEI
        old1 = r.sticks[1].tty_numbers
        r.unplug(0, 1)
        r.replug(0, old1)
        r.asterisk.wait_for(
            lambda: r.asterisk.devices_snapshot()["dongle1"]["IMEIState"] == r.imeis[0],
            5,
            what="dongle1 running stick 0",
        )
        code, out, err = run_cli(r, capsys, "scan")
        assert code == 1
        assert f"[dongle1]: Asterisk runs IMEI {r.imeis[0]} on it" in err
        assert f"+data={PARKED_DATA}" in out
        # the diff parks it: the report says why
        assert f"[dongle1]: parked: no plugged stick reports IMEI {r.imeis[1]}; " in err
        assert "[dongle0]: parked" not in err
        assert "stop dongle1" in err

        code, out, err = run_cli(r, capsys, "scan", "--apply")
        assert code == 0, err
        r.asterisk.wait_for(
            lambda: (
                r.device_right(0) and r.asterisk.devices_snapshot()["dongle1"]["IMEIState"] == ""
            ),
            5,
            what="dongle0 on its own stick, dongle1 stopped and parked",
        )
        conf = DongleConf.load(r.conf).devices()
        assert conf["dongle1"].data == PARKED_DATA
        assert conf["dongle0"].data == r.sticks[0].data_port.devnode


def test_scan_apply_refuses_while_the_daemon_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with rig(tmp_path, 1) as r:
        r.wait_all_right(timeout=10)
        r.start_daemon()
        before = r.conf.read_bytes()
        code, _out, err = run_cli(r, capsys, "scan", "--apply")
        assert code == 1 and "the daemon runs" in err
        code, _out, err = run_cli(r, capsys, "adopt", "--apply")
        assert code == 1 and "the daemon runs" in err
        assert r.conf.read_bytes() == before


def test_adopt_adds_imei_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with rig(tmp_path, 2) as r:
        r.wait_all_right(timeout=10)
        # a stick Asterisk does not run yet: its section is added below without a reload
        width = len(r.model.interfaces)
        extra_imei = make_imei(50)
        extra = r.tb.add_stick(r.model, StickSim(extra_imei), r.take_ttys(width), usb_port="5")
        # an install from before dongled: no imei= lines, plus a section on a port that
        # does not exist
        text = re.sub(r"(?m)^imei=.*\n", "", r.conf.read_text())
        r.conf.write_text(text)
        r.asterisk.admin_reload()
        r.wait_all_right(timeout=5)
        text += section_text(9, "", extra.data_port.devnode, extra.audio_port.devnode).replace(
            "imei=        ; SIM of city 9\n", ""
        )
        text += "\n[spare]\ndata=/dev/ttyUSB90\naudio=/dev/ttyUSB89\n"
        r.conf.write_text(text)
        original = r.conf.read_bytes()
        imeis = {"dongle0": r.imeis[0], "dongle1": r.imeis[1], "dongle9": extra_imei}

        code, out, err = run_cli(r, capsys, "adopt")
        print(f"\n$ dongled adopt   (exit {code})\n{out}{err}")
        assert code == 1 and r.conf.read_bytes() == original
        for imei in imeis.values():
            assert f"+imei={imei}\n" in out
        assert f"[dongle0]: IMEI {r.imeis[0]} (by asterisk)" in err
        assert f"[dongle9]: IMEI {extra_imei} (by probe)" in err
        assert "[spare]: skipped: cannot identify: /dev/ttyUSB90: no such port" in err

        code, out, err = run_cli(r, capsys, "adopt", "--apply")
        assert code == 1  # [spare] is still skipped
        devices = DongleConf.load(r.conf).devices()
        assert {n: d.imei for n, d in devices.items()} == {**imeis, "spare": None}
        # only the imei= lines were added; every other byte is the admin's
        new_lines = r.conf.read_bytes().splitlines(keepends=True)
        added = [line for line in new_lines if line not in original.splitlines(keepends=True)]
        assert sorted(added) == sorted(f"imei={imei}\n".encode() for imei in imeis.values())
        assert len(new_lines) == len(original.splitlines()) + 3

        code, out, err = run_cli(r, capsys, "adopt")
        assert out == "" and "nothing to adopt" in err
        for i in (0, 1):
            assert r.device_right(i)  # adopt never touched Asterisk


def _manager_conf_block() -> dict[str, str]:
    """The `[dongled]` block of manager.conf that README.md tells admins to add."""
    doc = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = re.search(r"```ini\n\[dongled\]\n(.*?)```", doc, re.S)
    assert block is not None
    pairs = (line.split("=", 1) for line in block.group(1).splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def test_the_documented_ami_user_is_enough(tmp_path: Path) -> None:
    block = _manager_conf_block()
    split = [c for c in block["write"].split(",") if c]
    assert set(split) <= {"config", "reporting", "system"} and "system" not in split
    with rig(tmp_path, 2) as r:
        r.asterisk.stop()
        r.asterisk = FakeAsterisk(
            str(r.conf),
            lock_dir=str(r.lock_dir),
            interval=1.0,
            write_classes=split,
            read_classes=[c for c in block["read"].split(",") if c],
        )
        r.asterisk.start()
        r.write_settings()
        r.wait_all_right(timeout=10)
        r.start_daemon()
        r.unplug(0, 1)
        r.replug(1)
        r.replug(0)
        r.wait_all_right()
        r.assert_never_foreign()
        assert r.asterisk.reload_count >= 1  # the new ports took a DongleReload
        assert "Permission denied" not in r.daemon_log()


def test_scan_apply_without_asterisk_says_it_was_not_told(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with rig(tmp_path, 1) as r:
        r.wait_all_right(timeout=10)
        r.unplug(0)
        r.replug(0)
        # Asterisk is unreachable: settings pointing at a port nobody listens on
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            dead = free.getsockname()[1]
        text = r.settings.read_text().replace(f"port = {r.asterisk.port}", f"port = {dead}")
        r.settings.write_text(text)

        code, _out, err = run_cli(r, capsys, "scan", "--apply")
        print(f"\n$ dongled scan --apply   (exit {code})\n{err}")
        assert code == 1
        assert f"written: {r.conf} (data=/audio= of dongle0)" in err
        assert "Asterisk was NOT told" in err and "run `dongled scan --apply` again" in err
        assert "applied" not in err.replace("--apply", "")
        assert DongleConf.load(r.conf).devices()["dongle0"].data == r.sticks[0].data_port.devnode


def test_scan_follows_usb_audio_cards_and_adopt_learns_their_imeis(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """chan_quectel (IM) modules with USB audio came back the other way round while dongled
    was not running: `scan --apply` points each section at its module's data tty and card."""
    sims = [EC25Uac(make_imei(i), f"2500100000{i:05d}") for i in range(2)]
    with rig(tmp_path, 2, model=EC25_UAC_USB, sims=sims, personality="quectel-im") as r:
        r.wait_all_right(timeout=10)
        r.unplug(0, 1)
        r.replug(1)
        r.replug(0)
        assert [card_alsadev(s) for s in r.sticks] == ["hw:CARD=Android_1", "hw:CARD=Android"]
        code, out, err = run_cli(r, capsys, "scan")
        assert code == 1, err
        for i in (0, 1):
            assert f"+alsadev = {card_alsadev(r.sticks[i])}   ; its ALSA card\n" in out
        assert f"IMEI {r.imeis[0]} on {r.sticks[0].data_port.devnode} / " in err
        assert ", ALSA card Android_1 (by " in err
        code, out, err = run_cli(r, capsys, "scan", "--apply")
        assert code == 0, err
        assert f"written: {r.conf} (data=/alsadev= of dongle0, dongle1)" in err
        r.wait_all_right(timeout=5)
        r.assert_never_foreign()
        r.assert_only_ports_changed()

        # the same sections without imei=: adopt learns it from the data port
        r.conf.write_text(re.sub(r"(?m)^imei=.*\n", "", r.conf.read_text()))
        code, out, err = run_cli(r, capsys, "adopt")
        assert code == 1, err
        for i in (0, 1):
            assert f"+imei={r.imeis[i]}\n" in out


def test_scan_without_asterisk_never_says_asterisk_is_right(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The file is right but Asterisk could not be asked: scan says just that, exit 1 (it
    once said "Asterisk: not reachable", then "dongle.conf and Asterisk are right")."""
    with rig(tmp_path, 1) as r:
        r.wait_all_right(timeout=10)
        r.unplug(0)
        r.replug(0)  # on new numbers: the file is stale, the stick's port free to probe
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            dead = free.getsockname()[1]
        text = r.settings.read_text().replace(f"port = {r.asterisk.port}", f"port = {dead}")
        r.settings.write_text(text)
        code, _out, err = run_cli(r, capsys, "scan", "--apply")  # the file made right
        assert code == 1 and "Asterisk was NOT told" in err
        code, out, err = run_cli(r, capsys, "scan")
        assert (code, out) == (1, "")
        assert "Asterisk: not reachable" in err
        assert f"{r.conf} is right for the sticks found; Asterisk was not asked" in err
        assert "Asterisk are right" not in err and "nothing to do" not in err


def test_scan_names_the_driver_s_own_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """chan_quectel's file is quectel.conf: scan's report says so, not "dongle.conf"."""
    models = [E1550_USB, EC25_USB, EC25_USB]
    sims = [
        (EC25 if model is EC25_USB else StickSim)(make_imei(i), f"2500100000{i:05d}")
        for i, model in enumerate(models)
    ]
    with rig(
        tmp_path, len(models), models=models, sims=sims, personality="chan_dongle+quectel-im"
    ) as r:
        r.wait_all_right(timeout=10)
        code, out, err = run_cli(r, capsys, "scan", "--driver", "chan_quectel-im")
        assert out == "", err  # (exit 1 here: chan_dongle's stick counts as unidentified)
        assert f"{r.quectel_conf} and Asterisk are right: nothing to do" in err
        assert "dongle.conf" not in err
        r.unplug(2)
        code, out, err = run_cli(r, capsys, "scan", "--driver", "chan_quectel-im")
        assert code == 1 and out.startswith(f"--- {r.quectel_conf}\n")
        assert f"[quectel2]: parked: no plugged stick reports IMEI {r.imeis[2]}" in err
        assert "dongle.conf" not in err
