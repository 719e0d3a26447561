from __future__ import annotations

from pathlib import Path

import pytest

from dongled import cli, settings
from dongled.errors import SettingsError


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "dongled.toml"
    path.write_text(text)
    return str(path)


def test_missing_default_file_means_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(settings, "DEFAULT_PATH", str(tmp_path / "absent.toml"))
    s = settings.load(None)
    assert s.dongle_conf == "/etc/asterisk/dongle.conf"
    assert (s.ami.host, s.ami.port, s.ami.reload_when) == ("127.0.0.1", 5038, "now")
    assert s.lock_dir == "/var/lock"


def test_full_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("hunter2\n")
    path = write(
        tmp_path,
        f"""
dongle_conf = "/srv/dongle.conf"
lock_dir = "/run/lock"
at_timeout = 1
[ami]
host = "127.0.0.2"
port = 5039
username = "dongled"
secret_file = "{secret}"
reload_when = "Gracefully"
""",
    )
    s = settings.load(path)
    assert s.dongle_conf == "/srv/dongle.conf" and s.at_timeout == 1.0
    assert s.ami.secret == "hunter2" and s.ami.reload_when == "gracefully"
    assert "hunter2" not in repr(s)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("dongle_conf = 3", "dongle_conf"),
        ("bogus = 1", "bogus"),
        ("[ami]\nport = 70000", "ami.port"),
        ("[ami]\nreload_when = 'later'", "ami.reload_when"),
        ("[ami]\nsecret = 'a'\nsecret_file = '/x'", "ami.secret_file"),
        ("[ami]\nsecret_file = '/nonexistent/secret'", "ami.secret_file"),
        ("lock_dir = 'relative/dir'", "lock_dir"),
        ("verify_timeout = -1", "verify_timeout"),
        ("ami = 3", "ami"),
    ],
)
def test_bad_keys_are_named(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(SettingsError) as info:
        settings.load(write(tmp_path, text))
    assert info.value.key == key
    assert key in str(info.value)


def test_bad_settings_exit_2_with_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "[ami]\nport = 'x'\n")
    assert cli.main(["--config", path, "status"]) == 2
    assert "ami.port" in capsys.readouterr().err


def test_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="not valid TOML"):
        settings.load(write(tmp_path, "this is = = not toml"))
