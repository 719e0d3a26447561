from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path

import pytest

from dongled import cli
from dongled.config import reference as settingsref
from dongled.config import settings
from dongled.core.errors import SettingsError
from dongled.drivers import known
from dongled.drivers.base import Driver
from dongled.drivers.chan_dongle import CHAN_DONGLE
from dongled.drivers.chan_quectel import QUECTEL_IM, QUECTEL_RE
from dongled.drivers.known import conf_files, drivers_for
from tests.support.nobody import open_dir, run_as_nobody

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "dongled.toml"
    path.write_text(text)
    return str(path)


def test_missing_default_file_means_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(settings, "DEFAULT_PATH", str(tmp_path / "absent.toml"))
    s = settings.load(None)
    assert settings.conf_path(s, CHAN_DONGLE) == "/etc/asterisk/dongle.conf"
    assert (s.ami.host, s.ami.port, s.ami.reload_when) == ("127.0.0.1", 5038, "now")
    assert s.lock_dir == "/var/lock"


def test_full_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("hunter2\n")
    path = write(
        tmp_path,
        f"""
lock_dir = "/run/lock"
at_timeout = 1
[drivers]
chan_dongle = "/srv/dongle.conf"
[ami]
host = "127.0.0.2"
port = 5039
username = "dongled"
secret_file = "{secret}"
reload_when = "Gracefully"
""",
    )
    s = settings.load(path)
    assert settings.conf_path(s, CHAN_DONGLE) == "/srv/dongle.conf" and s.at_timeout == 1.0
    assert s.ami.secret == "hunter2" and s.ami.reload_when == "gracefully"
    assert "hunter2" not in repr(s)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("dongle_conf = 3", "dongle_conf"),
        ("[drivers]\nchan_dongle = 3", "drivers.chan_dongle"),
        ("[drivers]\nchan_quectel = 'quectel.conf'", "drivers.chan_quectel"),
        ("[drivers]\nchan_fork = '/etc/asterisk/fork.conf'", "drivers.chan_fork"),
        ("drivers = '/etc/asterisk'", "drivers"),
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


def test_unknown_key_names_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "lock_dir = '/run/lock'\n\n[ami]\nhost = 'x'\nprot = 5039\n")
    with pytest.raises(SettingsError) as info:
        settings.load(path)
    assert (info.value.key, info.value.line) == ("ami.prot", 5)
    assert str(info.value).startswith(f"{path}:5: ami.prot: unknown key (known: backoff_max,")


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        settings.load(write(tmp_path, "[recovery]\nusb_reset = 'no'\n"))
    assert info.value.key == "recovery.usb_reset" and info.value.line == 2
    assert "must be true or false" in str(info.value)


def test_every_table_and_key_is_accepted_with_its_default(tmp_path: Path) -> None:
    """The template, every key uncommented, loads to exactly the defaults (`[drivers]` holds
    the paths the file sets: each its driver's default)."""
    template = (ROOT / "etc" / "dongled.toml").read_text().splitlines()
    lines = [ln[2:] if re.match(r"# \w+ = ", ln) else ln for ln in template]
    path = write(tmp_path, "\n".join(lines))
    defaults = {key: default for key, (default, _) in conf_files().items()}
    assert set(defaults) == {"chan_dongle", "chan_quectel"}
    assert settings.load(path) == settings.Settings(drivers=defaults)


def test_status_loads_without_reading_the_secret_run_names_it() -> None:
    """An admin who may not read the AMI secret can run `dongled status`; `run` refuses with
    the key and the reason. As an unprivileged user, over a root-only secret file."""
    with open_dir() as d:
        secret = d / "ami-secret"
        secret.write_text("hunter2\n")
        secret.chmod(0o600)
        conf = d / "dongled.toml"
        conf.write_text(f'state_dir = "{d}/state"\n[ami]\nsecret_file = "{secret}"\n')
        conf.chmod(0o644)
        said = run_as_nobody(
            "from dongled import cli\nfrom dongled.config import settings\n"
            "cli._parser().parse_args(['status'])  # its lazy imports, while root\n",
            "sys.stderr = sys.stdout\n"
            "s = settings.load(sys.argv[1], secret=False)\n"
            "assert s.ami.secret == '' and s.ami.secret_file == sys.argv[2]\n"
            "print('status', cli.main(['--config', sys.argv[1], 'status']))\n"
            "print('run', cli.main(['--config', sys.argv[1], 'run']))\n",
            str(conf),
            str(secret),
        )
    assert "status 3" in said  # loaded fine; only the daemon is not running here
    assert "run 2" in said and "ami.secret_file" in said and "Permission denied" in said
    assert "hunter2" not in said


def test_run_reports_an_unreadable_secret_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, f'[ami]\nsecret_file = "{tmp_path}/absent"\n')
    assert cli.main(["--config", path, "run"]) == 2
    err = capsys.readouterr().err
    assert "ami.secret_file" in err and "No such file or directory" in err


@pytest.mark.parametrize("driver", ["chan_quectel-im", "chan_quectel-re"])
def test_a_chan_quectel_driver_keeps_quectel_conf_by_default(tmp_path: Path, driver: str) -> None:
    path = tmp_path / "dongled.toml"
    path.write_text(f'driver = "{driver}"\n')
    s = settings.load(str(path))
    (chosen,) = drivers_for(s.driver)
    assert (chosen.name, settings.conf_path(s, chosen)) == (
        driver,
        "/etc/asterisk/quectel.conf",
    )
    path.write_text('driver = "chan_quectel"\n')
    with pytest.raises(SettingsError, match="chan_quectel-im, chan_quectel-re"):
        settings.load(str(path))


@pytest.mark.parametrize("fork", ["chan_quectel-im", "chan_quectel-re"])
def test_chan_dongle_beside_one_chan_quectel_fork(tmp_path: Path, fork: str) -> None:
    path = tmp_path / "dongled.toml"
    path.write_text(f'driver = "chan_dongle+{fork}"\n[drivers]\nchan_quectel = "/srv/q.conf"\n')
    s = settings.load(str(path))
    files = {d.name: settings.conf_path(s, d) for d in drivers_for(s.driver)}
    assert files == {"chan_dongle": "/etc/asterisk/dongle.conf", fork: "/srv/q.conf"}
    # the two forks register the same channel type and CLI: never both on one box
    path.write_text('driver = "chan_quectel-im+chan_quectel-re"\n')
    with pytest.raises(SettingsError, match=r"dongled.toml:1.*not two drivers"):
        settings.load(str(path))


def test_a_wrong_type_is_named_in_words(tmp_path: Path) -> None:
    path = write(tmp_path, "at_timeout = 'soon'\n[ami]\nport = '5038'\nhost = 1\n")
    with pytest.raises(SettingsError) as info:
        settings.load(path)
    said = str(info.value)
    assert f"{path}:1: at_timeout: must be a number, not 'soon'" in said
    assert f"{path}:3: ami.port: must be an integer, not '5038'" in said
    assert f"{path}:4: ami.host: must be a string (in quotes), not 1" in said
    assert "a int" not in said and "a float" not in said


def test_every_error_is_shown_at_once_in_file_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One round of edits fixes the file: not one error per restart."""
    path = write(
        tmp_path,
        "lock_dir = 'relative'\n"
        "[ami]\n"
        "prot = 5039\n"
        "reload_when = 'later'\n"
        f"secret_file = '{tmp_path}/absent'\n"
        "[recovery]\n"
        "usb_reset = 'no'\n",
    )
    with pytest.raises(SettingsError) as info:
        settings.load(path)
    assert [(e.key, e.line) for e in info.value.errors] == [
        ("lock_dir", 1),
        ("ami.prot", 3),
        ("ami.reload_when", 4),
        ("ami.secret_file", 5),
        ("recovery.usb_reset", 7),
    ]
    assert (info.value.key, info.value.line) == ("lock_dir", 1)  # the first, for callers
    assert cli.main(["--config", path, "run"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 5 and all(line.startswith(f"dongled: bad settings: {path}:") for line in err)


def test_a_missing_secret_file_is_named_with_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, f'[ami]\nusername = "dongled"\nsecret_file = "{tmp_path}/absent"\n')
    with pytest.raises(SettingsError) as info:
        settings.load(path)
    assert str(info.value) == (
        f"{path}:3: ami.secret_file: cannot read {tmp_path}/absent: No such file or directory"
    )


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("", "is empty"),
        ("\n  \n", "is empty"),
        ("hunter2\nhunter3\n", "has 2 lines"),
        ("hunter2\r\nAction: Originate\r\n", "has 2 lines"),
    ],
)
def test_a_secret_file_that_is_not_one_line_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, why: str
) -> None:
    """A second line would go into the AMI `Secret:` header (and could add headers)."""
    secret = tmp_path / "ami-secret"
    secret.write_bytes(content.encode())
    path = write(tmp_path, f'[ami]\nsecret_file = "{secret}"\n')
    with pytest.raises(SettingsError) as info:
        settings.load(path)
    assert str(info.value).startswith(f"{path}:2: ami.secret_file: {secret} {why}")
    assert cli.main(["--config", path, "run"]) == 2
    err = capsys.readouterr().err
    assert why in err and "hunter" not in err and "Originate" not in err
    secret.write_text("  hunter2 \n\n")  # surrounding blanks are not part of it
    assert settings.load(path).ami.secret == "hunter2"


def test_an_inline_secret_of_the_wrong_type_is_not_said_back(tmp_path: Path) -> None:
    path = write(tmp_path, "[ami]\nsecret = 123456789\n")
    with pytest.raises(SettingsError) as info:
        settings.load(path)
    assert info.value.key == "ami.secret" and "123456789" not in str(info.value)


def test_invalid_toml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[ami]\nport = 5038\n\n[ami]\nhost = 'x'\n")
    with pytest.raises(SettingsError) as info:
        settings.load(path)
    assert info.value.line == 4
    assert str(info.value).startswith(f"{path}:4: not valid TOML: Cannot declare ('ami',) twice")


def test_the_drivers_table_names_each_family_s_file(tmp_path: Path) -> None:
    """One key per file: both chan_quectel forks read the `chan_quectel` path; a driver not
    named in the table reads its own default."""
    path = write(tmp_path, '[drivers]\nchan_quectel = "/srv/asterisk/quectel.conf"\n')
    s = settings.load(path)
    assert settings.conf_path(s, QUECTEL_IM) == settings.conf_path(s, QUECTEL_RE)
    assert settings.conf_path(s, QUECTEL_RE) == "/srv/asterisk/quectel.conf"
    assert settings.conf_path(s, CHAN_DONGLE) == "/etc/asterisk/dongle.conf"


@pytest.mark.parametrize(
    ("old", "new", "driver"),
    [("dongle_conf", "chan_dongle", CHAN_DONGLE), ("quectel_conf", "chan_quectel", QUECTEL_RE)],
)
def test_the_old_file_keys_still_work_with_a_warning_naming_file_and_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, old: str, new: str, driver: Driver
) -> None:
    path = write(tmp_path, f'lock_dir = "/run/lock"\n{old} = "/srv/old.conf"\n')
    with caplog.at_level(logging.WARNING, logger="dongled.config.reader"):
        s = settings.load(path)
    assert settings.conf_path(s, driver) == "/srv/old.conf"
    (said,) = [r.getMessage() for r in caplog.records]
    assert said == (
        f'{path}:2: {old} is deprecated: write it in the [drivers] table as {new} = "/srv/old.conf"'
    )
    # Set both ways to the same file: still only the warning.
    caplog.clear()
    path = write(tmp_path, f'{old} = "/srv/old.conf"\n[drivers]\n{new} = "/srv/old.conf"\n')
    with caplog.at_level(logging.WARNING, logger="dongled.config.reader"):
        assert settings.conf_path(settings.load(path), driver) == "/srv/old.conf"
    assert [f"{path}:1: {old} is deprecated" in r.getMessage() for r in caplog.records] == [True]


def test_an_old_file_key_and_its_new_one_naming_two_files_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        'dongle_conf = "/srv/a.conf"\nlock_dir = "nope"\n\n'
        '[drivers]\nchan_dongle = "/srv/b.conf"\n',
    )
    assert cli.main(["--config", path, "status"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"dongled: bad settings: {path}:1: dongle_conf: and drivers.chan_dongle (line 5) name "
        "two different files: keep only drivers.chan_dongle",
        f"dongled: bad settings: {path}:2: lock_dir: must be an absolute path",
    ]


def test_a_new_driver_brings_its_file_key_and_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A third driver (a made-up chan_dongle fork reading its own fork.conf) is only its
    `Driver` value listed in `drivers.known`: the settings accept its name and its
    `[drivers]` key, its default is its own, and the template lists it."""
    fork = dataclasses.replace(
        CHAN_DONGLE, name="chan_fork", conf_key="chan_fork", default_conf="/etc/asterisk/fork.conf"
    )
    monkeypatch.setitem(known.DRIVERS, fork.name, fork)
    path = write(tmp_path, 'driver = "chan_dongle+chan_fork"\n')
    s = settings.load(path)
    assert [settings.conf_path(s, d) for d in drivers_for(s.driver)] == [
        "/etc/asterisk/dongle.conf",
        "/etc/asterisk/fork.conf",
    ]
    path = write(tmp_path, 'driver = "chan_fork"\n[drivers]\nchan_fork = "/srv/fork.conf"\n')
    assert settings.conf_path(settings.load(path), fork) == "/srv/fork.conf"
    assert '# chan_fork = "/etc/asterisk/fork.conf"' in settingsref.toml_template()


def test_drivers_reading_one_file_agree_on_its_default() -> None:
    by_key: dict[str, set[str]] = {}
    for d in known.DRIVERS.values():
        by_key.setdefault(d.conf_key, set()).add(d.default_conf)
    assert by_key == {
        "chan_dongle": {"/etc/asterisk/dongle.conf"},
        "chan_quectel": {"/etc/asterisk/quectel.conf"},
    }
