"""`dongled status`: the table and the --json document, with the daemon up (a real
`dongled run` subprocess), down, and with a mismatched, an unbound and an unidentified stick."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dongled import cli
from dongled.asterisk.device import DeviceEntry
from dongled.config.settings import Settings
from dongled.daemon import Daemon
from dongled.hotplug.sticks import Stick, StickState
from dongled.modem.identity import Identity
from tests.support.marks import needs_umockdev
from tests.support.modemsim import E1550_USB, StickSim
from tests.support.rig import ROOT, Rig, make_imei, rig, wait_until

SECTION_KEYS = {
    "section",
    "driver",
    "imei",
    "data",
    "audio",
    "alsadev",
    "usb_port",
    "iccid",
    "model",
    "voice",
    "asterisk_state",
    "asterisk_imei",
    "verified",
    "status",
    "detail",
    "last_change",
}
STICK_KEYS = {
    "usb_port",
    "vid_pid",
    "state",
    "imei",
    "imsi",
    "iccid",
    "model",
    "voice",
    "data",
    "audio",
    "card",
    "section",
    "verified_by",
    "error",
    "limits",
    "ports",
    "status",
    "last_change",
}
TOP_KEYS = {
    "schema",
    "running",
    "pid",
    "driver",
    "dongle_conf",
    "conf_files",
    "ami_connected",
    "conf_error",
    "conf_warnings",
    "summary",
    "sections",
    "sticks",
    "switching",
    "recovery",
    "counters",
    "ok",
    "published_at",
    "publish_every",
}


def dongled(r: Rig, *args: str) -> subprocess.CompletedProcess[str]:
    """`dongled --config <rig settings> ARGS` as an admin would run it (no umockdev needed)."""
    return subprocess.run(
        [sys.executable, "-m", "dongled", "--config", str(r.settings), *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=str(ROOT),
    )


def _sections_ok(r: Rig, n: int) -> bool:
    snap: dict[str, Any] = r.status()
    rows = snap.get("sections", [])
    return len(rows) == n and all(row["status"] == "ok" for row in rows)


@pytest.mark.e2e
@needs_umockdev
def test_status_with_the_daemon_up_then_down(tmp_path: Path) -> None:
    with rig(tmp_path, 2) as r:
        r.wait_all_right(timeout=10)
        r.start_daemon()
        wait_until(lambda: _sections_ok(r, 2), 15, "status.json shows both sections ok")

        started = time.monotonic()
        table = dongled(r, "status")
        took = time.monotonic() - started
        print(f"\n$ dongled status   (exit {table.returncode}, {took:.2f} s)\n{table.stdout}")
        assert table.returncode == 0, table.stdout + table.stderr
        lines = table.stdout.splitlines()
        assert lines[0].split() == [
            "DEVICE",
            "IMEI",
            "DATA",
            "AUDIO",
            "USB",
            "MODEL",
            "VOICE",
            "ASTERISK",
            "VERIFIED",
            "LAST",
            "CHANGE",
            "STATUS",
        ]
        for i in range(2):
            row = next(line.split() for line in lines if line.startswith(f"dongle{i} "))
            stick = r.sticks[i]
            assert row[:8] == [
                f"dongle{i}",
                r.imeis[i],
                stick.data_port.devnode,
                stick.audio_port.devnode,
                stick.name,
                "E1550",
                "yes",
                "Free",
            ]
            assert row[8] == "yes" and row[-1] == "ok"
        assert "2 sticks, 2 on their devices" in table.stdout

        js = dongled(r, "status", "--json")
        print(f"$ dongled status --json   (exit {js.returncode})\n{js.stdout}")
        assert js.returncode == 0
        doc = json.loads(js.stdout)
        assert set(doc) == TOP_KEYS
        assert doc["schema"] == 1 and doc["running"] is True and doc["ok"] is True
        assert doc["ami_connected"] is True and doc["conf_error"] is None
        assert doc["dongle_conf"] == str(r.conf)
        for i, row in enumerate(doc["sections"]):
            assert set(row) == SECTION_KEYS
            assert row["section"] == f"dongle{i}" and row["imei"] == r.imeis[i]
            assert row["data"] == r.sticks[i].data_port.devnode
            assert row["usb_port"] == r.sticks[i].name
            assert row["verified"] is True and row["voice"] is True
            assert row["asterisk_state"] == "Free" and row["asterisk_imei"] == r.imeis[i]
            assert time.strptime(row["last_change"], "%Y-%m-%dT%H:%M:%S%z")
        for st in doc["sticks"]:
            assert set(st) == STICK_KEYS and st["status"] == "bound"

        r.stop_daemon()
        down = dongled(r, "status")
        assert down.returncode == 3
        assert "dongled is not running" in down.stderr and down.stdout == ""
        down_js = dongled(r, "status", "--json")
        assert down_js.returncode == 3
        assert json.loads(down_js.stdout) == {
            "schema": 1,
            "running": False,
            "message": down.stderr.strip(),
        }


@pytest.mark.e2e
@needs_umockdev
def test_status_reports_unbound_and_unidentified_sticks(tmp_path: Path) -> None:
    with rig(tmp_path, 1) as r:
        width = len(E1550_USB.interfaces)
        stranger = make_imei(77)
        stranger_sim = StickSim(stranger)
        r.tb.add_stick(E1550_USB, stranger_sim, r.take_ttys(width), usb_port="8")
        r.tb.add_stick(
            E1550_USB, StickSim(make_imei(78), mute=True), r.take_ttys(width), usb_port="9"
        )
        r.wait_all_right(timeout=10)
        r.write_settings(boot_grace=0.5)  # the mute stick is past its boot: failed
        r.start_daemon()

        def settled() -> bool:
            sticks = r.status().get("sticks", [])
            assert isinstance(sticks, list)
            return {s["status"] for s in sticks} == {"bound", "unbound", "failed"}

        wait_until(lambda: settled() and _sections_ok(r, 1), 15, "three sticks reported")
        out = dongled(r, "status")
        print(f"\n$ dongled status   (exit {out.returncode})\n{out.stdout}")
        assert out.returncode == 1
        lines = out.stdout.splitlines()
        unbound = next(line.split() for line in lines if stranger in line and line[0] == "-")
        assert unbound[-1] == "unbound" and unbound[4] == "1-1.8"
        failed = next(line.split() for line in lines if " 1-1.9 " in line)
        assert failed[0] == "-" and failed[-1] == "failed"
        assert f"IMEI {stranger} is named by no section" in out.stdout
        assert "stick at USB 1-1.9 failed:" in out.stdout
        # Probed by dongled (chan_dongle holds no port of it): its SIM card's number is known.
        doc = json.loads(dongled(r, "status", "--json").stdout)
        row = next(st for st in doc["sticks"] if st["imei"] == stranger)
        assert row["iccid"] == stranger_sim.iccid and row["imsi"] == stranger_sim.imsi
        doc = json.loads(dongled(r, "status", "--json").stdout)
        assert doc["ok"] is False
        assert [s["section"] for s in doc["sections"]] == ["dongle0"]


# ---- a mismatch, from a Daemon object built by hand (no need to run one) --------------------

A, B = make_imei(1), make_imei(2)


def _entry(name: str, data: str, imei: str) -> DeviceEntry:
    return DeviceEntry(
        device=name,
        data_setting=data,
        audio_setting="/dev/ttyUSB0",
        imei_setting="",
        state="Free",
        data_state=data,
        audio_state="/dev/ttyUSB0",
        imei_state=imei,
        imsi_state="",
        model="E1550",
        calls="0",
        current_state="start",
        desired_state="start",
        voice="Yes",
    )


def test_status_shows_a_mismatch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "dongle.conf"
    conf.write_text(
        "[general]\ninterval=15\n\n"
        f"[dongle0]\nimei={A}\ndata=/dev/ttyUSB2\naudio=/dev/ttyUSB1\n\n"
        f"[dongle1]\nimei={B}\ndata=/dev/null/dongled-stick-absent-data\n"
        "audio=/dev/null/dongled-stick-absent-audio\n\n"
        "[legacy]\ndata=/dev/ttyUSB9\naudio=/dev/ttyUSB8\n"
    )
    settings = tmp_path / "dongled.toml"
    settings.write_text(f'state_dir = "{tmp_path / "run"}"\n[drivers]\nchan_dongle = "{conf}"\n')
    d = Daemon(Settings(drivers={"chan_dongle": str(conf)}, state_dir=str(tmp_path / "run")))
    stick = Stick(usb_device="/sys/x/1-1.4", usb_port="1-1.4", vid="12d1", pid="1001")
    stick.ports = {0: "/dev/ttyUSB0", 1: "/dev/ttyUSB1", 2: "/dev/ttyUSB2"}
    stick.identity = Identity(imei=A, model="E1550", voice=True)
    stick.state, stick.data, stick.audio, stick.source = (
        StickState.IDENTIFIED,
        "/dev/ttyUSB2",
        "/dev/ttyUSB1",
        "probe",
    )
    d.registry.sticks[stick.usb_device] = stick
    # Asterisk runs dongle0 on a stick with B's IMEI (what dongled stops at once)
    d.lanes.first.seen.asterisk = {"dongle0": _entry("dongle0", "/dev/ttyUSB2", B)}

    doc = d.status.snapshot()
    rows = {r["section"]: r for r in doc["sections"]}
    assert rows["dongle0"]["status"] == "mismatch" and rows["dongle0"]["verified"] is False
    assert rows["dongle0"]["asterisk_imei"] == B
    assert rows["dongle1"]["status"] == "absent" and rows["dongle1"]["usb_port"] is None
    assert rows["legacy"]["status"] == "unmanaged" and rows["legacy"]["imei"] is None
    assert doc["ok"] is False

    d.status.file.write(d.status.snapshot())  # pid = this process: a "running" daemon for the CLI
    assert cli.main(["--config", str(settings), "status"]) == 1
    out = capsys.readouterr().out
    line = next(x.split() for x in out.splitlines() if x.startswith("dongle0 "))
    assert line[-1] == "mismatch" and line[8] == "no"
    assert f"[dongle0] mismatch: Asterisk runs IMEI {B} on this device, not {A}" in out

    # the same stick, now verified; still exit 1: dongle1 is parked (a line that cannot take
    # calls) and there is no AMI connection here (the unmanaged section is no problem)
    d.lanes.first.seen.asterisk = {"dongle0": _entry("dongle0", "/dev/ttyUSB2", A)}
    d.status.file.write(d.status.snapshot())
    assert cli.main(["--config", str(settings), "status", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert {r["section"]: r["status"] for r in doc["sections"]} == {
        "dongle0": "ok",
        "dongle1": "absent",
        "legacy": "unmanaged",
    }
    assert doc["sticks"][0]["section"] == "dongle0"


def test_status_of_a_dead_daemon_is_not_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "status.json").write_text(json.dumps({"schema": 1, "pid": 2**22 + 12345}))
    settings = tmp_path / "dongled.toml"
    settings.write_text(f'state_dir = "{run}"\n')
    assert cli.main(["--config", str(settings), "status"]) == 3
    assert "not running" in capsys.readouterr().err


@pytest.mark.parametrize("command", [[], ["run"], ["status"], ["scan"], ["adopt"]])
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main([*command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: dongled")
    assert ("exit codes" in out) or command == ["run"]


@needs_umockdev
def test_status_says_what_a_sim_less_voiceless_stick_needs(tmp_path: Path) -> None:
    sim = StickSim(make_imei(0), None, voice=False)
    with rig(tmp_path, 1, sims=[sim]) as r:
        r.start_daemon()
        wait_until(
            lambda: "stick-limited" in r.daemon_log() or "no voice" in r.daemon_log(),
            10,
            "the stick-limited events",
        )
        out = dongled(r, "status")
        assert out.returncode == 1
        assert "no SIM" in out.stdout and "insert" in out.stdout
        assert "no voice" in out.stdout and "firmware" in out.stdout


@pytest.mark.e2e
@needs_umockdev
def test_status_exit_codes_on_a_down_line(tmp_path: Path) -> None:
    """The monitoring check: 0 only while every managed line is verified and Asterisk is
    connected; 1 for a parked line, and for Asterisk unreachable."""
    with rig(tmp_path, 2) as r:
        r.wait_all_right(timeout=10)
        r.start_daemon()
        wait_until(lambda: _sections_ok(r, 2), 15, "status.json shows both sections ok")
        assert dongled(r, "status").returncode == 0
        ok = dongled(r, "status", "--check")
        assert (ok.returncode, ok.stdout) == (0, "OK: 2 of 2 lines on their own stick\n")

        r.unplug(1)

        def parked() -> bool:
            snap: dict[str, Any] = r.status()
            rows = {row["section"]: row["status"] for row in snap.get("sections", [])}
            return rows.get("dongle1") == "absent"

        wait_until(parked, 15, "dongle1 absent in status.json")
        down = dongled(r, "status")
        print(f"\n$ dongled status   (exit {down.returncode})\n{down.stdout}")
        assert down.returncode == 1
        assert "[dongle1] absent: its stick is not plugged in; the section is parked" in down.stdout
        assert "Asterisk AMI connected" in down.stdout
        check = dongled(r, "status", "--check")  # docs/monitoring.md's example
        print(f"$ dongled status --check   (exit {check.returncode})\n{check.stdout}")
        assert check.returncode == 2
        assert check.stdout.splitlines() == [
            "CRITICAL: dongle1 absent",
            "[dongle1] absent: its stick is not plugged in; the section is parked",
        ]

        # Asterisk unreachable and the last line parked too (the case). The stick pull
        # makes the daemon publish; it does not publish on the AMI loss alone (yet).
        r.asterisk.go_down()
        r.unplug(0)
        wait_until(lambda: r.status().get("ami_connected") is False, 15, "AMI down in status")
        both = dongled(r, "status")
        print(f"$ dongled status   (exit {both.returncode})\n{both.stdout}")
        assert both.returncode == 1
        assert "Asterisk AMI not connected: no line can be verified" in both.stdout
        check = dongled(r, "status", "--check")
        assert check.returncode == 2
        assert check.stdout.startswith("CRITICAL: dongle0 absent, dongle1 absent, AMI down\n")
        js = json.loads(dongled(r, "status", "--json").stdout)
        assert js["ok"] is False and js["ami_connected"] is False


@pytest.mark.e2e
@needs_umockdev
def test_a_section_parked_beside_sticks_it_cannot_identify_is_not_called_unplugged(
    tmp_path: Path,
) -> None:
    """Found replaying the README on a fresh box (issue 22): step 1 (imei=) comes before step 2
    (the AMI user), so dongled, not yet talking to Asterisk, cannot identify the sticks Asterisk
    holds (`busy`) and parks their sections, as the safety rule wants. Status said "its stick
    is not plugged in" beside the two plugged sticks: the admin would go looking for sticks."""
    with rig(tmp_path, 2) as r:
        r.wait_all_right(timeout=10)  # the test Asterisk holds both sticks' ports (its locks)
        r.asterisk.go_down()  # no AMI: nothing can tell dongled which stick is which
        r.start_daemon()

        def parked() -> bool:
            snap: dict[str, Any] = r.status()
            rows = {row["section"]: row for row in snap.get("sections", [])}
            return all(rows.get(f"dongle{i}", {}).get("status") == "absent" for i in range(2))

        wait_until(parked, 15, "both sections absent in status.json")
        out = dongled(r, "status")
        print(f"\n$ dongled status   (exit {out.returncode})\n{out.stdout}")
        assert out.returncode == 1
        assert "not plugged in" not in out.stdout
        for i in range(2):
            assert (
                f"[dongle{i}] absent: no plugged stick is known to carry it (2 not identified: "
                "see their rows); the section is parked"
            ) in out.stdout
        assert out.stdout.count(" busy: ") == 2, out.stdout  # the rows it points to
        log = r.log_path.read_text()
        for i in range(2):
            said = f"device dongle{i}: no plugged stick is identified as IMEI {r.imeis[i]}, parked"
            assert said in log, log


def test_the_documented_keys_are_the_typed_ones() -> None:
    from dongled.status.document import SectionRow, StatusDoc, StickRow

    assert set(StatusDoc.__required_keys__) == TOP_KEYS
    assert set(SectionRow.__required_keys__) == SECTION_KEYS
    assert set(StickRow.__required_keys__) == STICK_KEYS


def test_status_says_a_section_is_not_parked_when_the_write_failed(tmp_path: Path) -> None:
    """A stick pulled while dongled cannot replace the file (here: its backup path is taken by
    a directory, which fails even for root; on a box, a Permission denied): the section still
    names the old port, and status says so, and why, instead of calling it parked."""
    with rig(tmp_path, 2) as r:
        r.wait_all_right(timeout=10)
        r.start_daemon()
        wait_until(lambda: _sections_ok(r, 2), 15, "status.json shows both sections ok")

        def rows() -> dict[str, dict[str, Any]]:
            snap: dict[str, Any] = r.status()
            return {row["section"]: row for row in snap.get("sections", [])}

        old_data = rows()["dongle1"]["data"]
        blocker = Path(f"{r.conf}.dongled-bak")
        blocker.unlink(missing_ok=True)
        blocker.mkdir()
        (blocker / "keep").write_text("not dongled's\n")
        r.unplug(1)

        wait_until(
            lambda: rows()["dongle1"]["status"] == "absent", 15, "dongle1 absent in status.json"
        )
        out = dongled(r, "status").stdout
        print(f"\n$ dongled status\n{out}")
        assert "the section is parked" not in out
        assert (
            "[dongle1] absent: its stick is not plugged in, but the section is NOT parked: it "
            f"still names {old_data}; the file was not written: {r.conf}: not replaced"
        ) in out
        assert str(old_data) in r.conf.read_text()

        blocker.joinpath("keep").unlink()
        blocker.rmdir()  # the next pass writes, and status says parked
        r.unplug(0)
        wait_until(
            lambda: (
                "[dongle1] absent: its stick is not plugged in; the section is parked"
                in dongled(r, "status").stdout
            ),
            15,
            "dongle1 parked once the file can be written",
        )


@needs_umockdev
def test_a_stick_that_cannot_be_identified_shows_at_once_with_its_reason(tmp_path: Path) -> None:
    """Plugged after dongled started: a stick that gives no valid IMEI is a `failed` row with
    the reason and `dongled status` exits 1, and a booting one is `booting` with why, without
    waiting for a pass (the status once read `"sticks": []` and exited 0 for 15 s while the
    journal said the stick could not be identified)."""
    with rig(tmp_path, 1) as r:
        r.wait_all_right(timeout=10)
        r.write_settings(boot_grace=0.5)  # a silent stick is past its boot quickly
        r.start_daemon()
        wait_until(lambda: _sections_ok(r, 1), 15, "status.json shows dongle0 ok")
        width = len(E1550_USB.interfaces)
        masked = StickSim(make_imei(80), imei_only_in_ati=True, ati_imei="35693803*******")
        r.tb.add_stick(E1550_USB, masked, r.take_ttys(width), usb_port="7")

        def row(port: str) -> dict[str, Any]:
            snap: dict[str, Any] = r.status()
            return next((s for s in snap.get("sticks", []) if s["usb_port"] == port), {})

        wait_until(lambda: row("1-1.7").get("status") == "failed", 10, "a failed row for 1-1.7")
        assert "no valid IMEI (AT+CGSN: ERROR; ATI's IMEI: line is" in row("1-1.7")["error"]
        out = dongled(r, "status")
        print(f"\n$ dongled status   (exit {out.returncode})\n{out.stdout}")
        assert out.returncode == 1
        assert "stick at USB 1-1.7 failed: " in out.stdout and "no valid IMEI" in out.stdout

        r.write_settings(boot_grace=60.0)
        r.stop_daemon()
        r.start_daemon()
        booting = StickSim(make_imei(81), boot_delay=30.0)
        r.tb.add_stick(E1550_USB, booting, r.take_ttys(width), usb_port="6")
        wait_until(lambda: row("1-1.6").get("status") == "booting", 10, "a booting row")
        assert "not answering yet" in row("1-1.6")["error"]
        assert "stick at USB 1-1.6 booting: not answering yet" in dongled(r, "status").stdout
