"""`dongled status --check`: the monitoring-plugin verdict (statuscheck.verdict, pure) and the
command as a check runs it (first line, exit code)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dongled import cli
from dongled.status import check as statuscheck
from dongled.status.reader import exit_ok


def _line(name: str, status: str = "ok", usb: str | None = None) -> dict[str, Any]:
    return {
        "section": name,
        "imei": "356938035643809",
        "status": status,
        "verified": status == "ok",
        "usb_port": usb,
        "detail": None if status == "ok" else "why",
    }


def _doc(*sections: dict[str, Any], ami: bool = True, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema": 1,
        "running": True,
        "pid": os.getpid(),  # a live pid: the CLI takes the document as the daemon's
        "ami_connected": ami,
        "conf_error": None,
        "summary": "",
        "sections": list(sections),
        "sticks": [],
        "switching": [],
        "recovery": {},
        "published_at": time.time(),  # a current snapshot (an old one is UNKNOWN)
        "publish_every": 10.0,
    }
    return doc | extra


THREE = [_line("dongle0", usb="1-1"), _line("dongle1", usb="1-2"), _line("dongle2", usb="1-3")]


@pytest.mark.parametrize(
    ("doc", "code", "line"),
    [
        (_doc(*THREE), 0, "OK: 3 of 3 lines on their own stick"),
        (
            _doc(*THREE, _line("spare", "unmanaged")),
            0,
            "OK: 3 of 3 lines on their own stick",
        ),
        (_doc(), 0, "OK: no managed lines (no section has imei=)"),
        (
            _doc(THREE[0], _line("dongle1", "absent"), ami=False),
            2,
            "CRITICAL: dongle1 absent, AMI down",
        ),
        (
            _doc(THREE[0], _line("dongle1", "pending", usb="1-2"), ami=False),
            2,
            "CRITICAL: AMI down",  # why dongle1 is unverified: said once
        ),
        (
            _doc(THREE[0], _line("dongle1", "mismatch", usb="1-2")),
            2,
            "CRITICAL: dongle1 mismatch",
        ),
        (_doc(_line("dongle0", "ambiguous")), 2, "CRITICAL: dongle0 ambiguous"),
        (
            _doc(
                _line("dongle0", "pending", usb="1-1"),
                recovery={"1-1": {"given_up": "4 steps, no answer"}},
            ),
            2,
            "CRITICAL: dongle0 given up",
        ),
        (
            _doc(THREE[0], recovery={"1-9": {"given_up": "no answer"}}),
            2,
            "CRITICAL: stick at USB 1-9 given up",
        ),
        (
            _doc(THREE[0], _line("dongle1", "pending", usb="1-2")),
            1,
            "WARNING: dongle1 pending",
        ),
        (
            _doc(
                THREE[0],
                sticks=[
                    {"usb_port": "1-1", "status": "bound"},
                    {"usb_port": "1-4", "status": "unbound"},
                    {"usb_port": "1-5", "status": "failed"},
                ],
            ),
            1,
            "WARNING: stick at USB 1-4 unbound, stick at USB 1-5 failed",
        ),
        (_doc(THREE[0], conf_error="x:3: no ]"), 1, "WARNING: config problem"),
        (_doc(THREE[0], conf_warnings=["section [d] is in both"]), 1, "WARNING: config warning"),
        (
            _doc(THREE[0], switching=[{"usb_port": "2-1", "stuck": True}]),
            1,
            "WARNING: stick at USB 2-1 stuck in storage mode",
        ),
        (
            _doc(_line("dongle0", "absent"), _line("dongle1", "pending", usb="1-2")),
            2,
            "CRITICAL: dongle0 absent, dongle1 pending",
        ),
    ],
)
def test_the_verdict(doc: dict[str, Any], code: int, line: str) -> None:
    got = statuscheck.verdict(doc)
    assert (got.code, got.line) == (code, line)


_STATUSES = st.sampled_from(["ok", "absent", "pending", "mismatch", "ambiguous", "unmanaged"])
_PORTS = st.sampled_from(["1-1", "1-2", "1-3", None])


@given(
    sections=st.lists(st.tuples(_STATUSES, _PORTS), max_size=4),
    sticks=st.lists(
        st.tuples(_PORTS, st.sampled_from(["bound", "unbound", "failed", "probing"])),
        max_size=3,
    ),
    ami=st.booleans(),
    conf_error=st.sampled_from([None, "x:1: no ]"]),
    conf_warnings=st.sampled_from([[], ["section [d] is in both"]]),
    given_up=st.lists(st.sampled_from(["1-1", "1-2", "1-9"]), max_size=2),
    stuck=st.booleans(),
)
def test_ok_exactly_when_plain_status_exits_0(
    sections: list[tuple[str, str | None]],
    sticks: list[tuple[str | None, str]],
    ami: bool,
    conf_error: str | None,
    conf_warnings: list[str],
    given_up: list[str],
    stuck: bool,
) -> None:
    """The check never says OK where `dongled status` exits 1, nor the reverse; and it says
    what is wrong on its first line."""
    doc = _doc(
        *[_line(f"d{i}", status, usb) for i, (status, usb) in enumerate(sections)],
        ami=ami,
        conf_error=conf_error,
        conf_warnings=conf_warnings,
        sticks=[{"usb_port": port, "status": status} for port, status in sticks],
        recovery={port: {"given_up": "no answer"} for port in given_up},
        switching=[{"usb_port": "2-1", "stuck": stuck}],
    )
    got = statuscheck.verdict(doc)
    assert (got.code == statuscheck.OK) == exit_ok(doc)
    assert got.code in (statuscheck.OK, statuscheck.WARNING, statuscheck.CRITICAL)
    assert "\n" not in got.line and got.text
    if not ami:
        assert got.code == statuscheck.CRITICAL and "AMI down" in got.text


def _settings(tmp_path: Path, status: str | None) -> str:
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    if status is not None:
        (run / "status.json").write_text(status)
    conf = tmp_path / "dongled.toml"
    conf.write_text(f'state_dir = "{run}"\n')
    return str(conf)


def test_check_prints_the_verdict_first_then_the_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = _doc(THREE[0], _line("dongle1", "absent"), ami=False)
    conf = _settings(tmp_path, json.dumps(doc))
    assert cli.main(["status", "--check", "--config", conf]) == 2
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "CRITICAL: dongle1 absent, AMI down"
    assert "[dongle1] absent: why" in out[1:]
    assert not any(line.startswith("DEVICE") for line in out)  # no table
    conf = _settings(tmp_path, json.dumps(_doc(*THREE)))
    assert cli.main(["status", "--check", "--config", conf]) == 0
    assert capsys.readouterr().out == "OK: 3 of 3 lines on their own stick\n"


@pytest.mark.parametrize(
    ("status", "said"),
    [
        (None, "UNKNOWN: dongled is not running (no live state in "),
        (json.dumps(_doc() | {"pid": 2**22 + 1}), "UNKNOWN: dongled is not running"),
        ('{"schema": 1, "pid', "UNKNOWN: dongled's status is unreadable: "),
        ("[1, 2]", "UNKNOWN: dongled's status is unreadable: "),
    ],
    ids=["no-file", "dead-pid", "half-written", "not-a-document"],
)
def test_check_is_unknown_without_a_readable_live_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], status: str | None, said: str
) -> None:
    conf = _settings(tmp_path, status)
    assert cli.main(["status", "--check", "--config", conf]) == 3
    assert capsys.readouterr().out.startswith(said)
    assert cli.main(["status", "--config", conf]) == 3  # the plain form: still 3


def test_check_with_bad_settings_is_unknown_on_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "dongled.toml"
    conf.write_text("[ami]\nport = 'x'\n")
    assert cli.main(["status", "--check", "--config", str(conf)]) == 3
    out = capsys.readouterr().out
    assert out.startswith(f"UNKNOWN: bad settings: {conf}:2: ami.port: must be an integer")
