"""The command line: options before or after the command, and `dongled status` as a
monitoring check (exit codes from a status document, no AMI secret needed)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from dongled import cli
from tests.support.nobody import open_dir, run_as_nobody

IMEI = "356938035643809"


def _section(status: str, verified: bool) -> dict[str, Any]:
    return {
        "section": "dongle0",
        "imei": IMEI,
        "data": "/dev/ttyUSB2",
        "audio": "/dev/ttyUSB1",
        "status": status,
        "verified": verified,
        "detail": None if verified else "its stick is not plugged in; the section is parked",
    }


def _doc(*sections: dict[str, Any], ami: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "schema": 1,
        "running": True,
        "pid": os.getpid(),  # a live pid: the CLI takes the document as the daemon's
        "ami_connected": ami,
        "conf_error": None,
        "summary": "1 sticks, 1 on their devices",
        "sections": list(sections),
        "sticks": [],
        "switching": [],
        "recovery": {},
        "published_at": time.time(),  # written just now, as the daemon does every 10 s
        "publish_every": 10.0,
        **extra,
    }


def _settings(tmp_path: Path, doc: dict[str, Any], ami: str = "") -> Path:
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "status.json").write_text(json.dumps(doc))
    settings = tmp_path / "dongled.toml"
    settings.write_text(f'state_dir = "{run}"\n{ami}')
    return settings


@pytest.mark.parametrize("before", [True, False], ids=["before", "after"])
def test_config_option_before_or_after_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], before: bool
) -> None:
    settings = _settings(tmp_path, _doc(_section("ok", True)))
    opt = ["--config", str(settings)]
    argv = [*opt, "status"] if before else ["status", *opt]
    assert cli.main(argv) == 0
    assert "dongle0" in capsys.readouterr().out


def test_config_after_the_command_wins_over_none_before(tmp_path: Path) -> None:
    args = cli._parser().parse_args(["run", "--config", "/x.toml", "-v"])
    assert (args.config, args.command, args.verbose) == ("/x.toml", "run", True)
    assert cli._parser().parse_args(["--config", "/y.toml", "scan"]).config == "/y.toml"
    assert cli._parser().parse_args(["adopt"]).config is None


@pytest.mark.parametrize(
    ("sections", "ami", "code", "said"),
    [
        ([_section("ok", True)], True, 0, None),
        ([_section("ok", True)], False, 1, "Asterisk AMI not connected"),
        ([_section("absent", False)], True, 1, "[dongle0] absent: its stick is not plugged"),
        ([_section("pending", False)], True, 1, "[dongle0] pending"),
        ([_section("mismatch", False)], True, 1, "[dongle0] mismatch"),
        ([_section("ambiguous", False)], True, 1, "[dongle0] ambiguous"),
        # the case: Asterisk unreachable and the only line parked
        ([_section("absent", False)], False, 1, "Asterisk AMI NOT connected"),
        # a section without imei= is not managed: it does not make the check fail
        ([_section("ok", True), {**_section("unmanaged", False), "section": "x"}], True, 0, None),
    ],
    ids=["ok", "ami-down", "absent", "pending", "foreign", "ambiguous", "parked+ami", "unmanaged"],
)
def test_status_exit_code_is_a_monitoring_verdict(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    sections: list[dict[str, Any]],
    ami: bool,
    code: int,
    said: str | None,
) -> None:
    settings = _settings(tmp_path, _doc(*sections, ami=ami))
    assert cli.main(["status", "--config", str(settings)]) == code
    out = capsys.readouterr().out
    if said is not None:
        assert said in out


def test_status_exits_1_for_a_stick_given_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = {"1-1.4": {"last_step": "power_cycle", "given_up": "no answer after 2 rounds"}}
    settings = _settings(tmp_path, _doc(_section("ok", True), recovery=rec))
    assert cli.main(["status", "--config", str(settings)]) == 1
    assert "recovery given up: no answer after 2 rounds" in capsys.readouterr().out


def test_status_needs_no_access_to_the_ami_secret() -> None:
    """An admin who is not root: settings world-readable, the secret file root's 0640."""
    with open_dir() as d:
        secret = d / "ami-secret"
        secret.write_text("s3cret\n")
        secret.chmod(0o640)  # root:root here; install.sh makes it root:asterisk
        run = d / "run"
        run.mkdir()
        settings = d / "dongled.toml"
        settings.write_text(f'state_dir = "{run}"\n[ami]\nsecret_file = "{secret}"\n')
        settings.chmod(0o644)
        (run / "status.json").write_text(json.dumps(_doc(_section("absent", False))))
        out = run_as_nobody(
            # before the switch: this interpreter's stdlib may sit under /root (pyenv)
            "import locale\nfrom dongled import cli\ncli._parser()\n",
            "code = cli.main(['status', '--config', sys.argv[1]])\nsys.exit(0 if code == 1 else 9)",
            str(settings),
        )
    assert "[dongle0] absent" in out


def test_status_still_refuses_other_bad_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _settings(tmp_path, _doc(), ami='[ami]\nprot = 5038\nsecret_file = "/nonexistent"\n')
    assert cli.main(["status", "--config", str(settings)]) == 2
    assert "bad settings" in capsys.readouterr().err


def test_run_still_needs_the_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = _settings(tmp_path, _doc(), ami='[ami]\nsecret_file = "/nonexistent/secret"\n')
    assert cli.main(["run", "--config", str(settings)]) == 2
    assert "ami.secret_file: cannot read /nonexistent/secret" in capsys.readouterr().err


def test_status_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`dongled status --json | head`: the reader is gone before the write. A real process
    writing into a real pipe whose read end is closed: no traceback, SIGPIPE's exit code."""
    import subprocess
    import sys

    many = [dict(_section("ok", True), section=f"dongle{i}") for i in range(200)]
    settings = _settings(tmp_path, _doc(*many))
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "dongled", "status", "--json", "--config", str(settings)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert proc.stderr == ""
    assert proc.returncode == cli.EXIT_PIPE_CLOSED == 141
