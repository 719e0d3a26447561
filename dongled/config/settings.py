"""dongled's own settings: a TOML file whose every key has a documented default.

The dataclasses below are the one source of truth: each field is a key (a nested dataclass
is a `[table]`), its type is the key's type, its default the key's default, and its metadata
holds the help text, the unit and any extra check. The parser (`load`, checking key by key
with `dongled.config.reader`), the reference in docs/settings.md and the template
etc/dongled.toml are all derived from them (`dongled.config.reference`; a test keeps both
files equal to what it renders). The one table that is not a dataclass, `[drivers]`, takes
its keys and defaults from the drivers (`Driver.conf_key`, `Driver.default_conf`).
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dongled.config.reader import Check, Reader, line_of
from dongled.core.errors import SettingsError, SettingsErrors

if TYPE_CHECKING:
    from dongled.drivers.base import Driver

DEFAULT_PATH = "/etc/dongled/dongled.toml"
RELOAD_WHEN = ("now", "gracefully", "when convenient")
_LISTEN = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")


def key(
    default: Any,
    help: str,
    *,
    unit: str = "",
    check: Check | None = None,
    zero_off: bool = False,
    **kw: Any,
) -> Any:
    """A settings key: a dataclass field whose metadata documents and checks it. A duration
    must be over 0, except where `zero_off` makes 0 turn the feature off."""
    meta = {"help": help, "unit": unit, "check": check, "zero_off": zero_off}
    return field(default=default, metadata=meta, **kw)


def _absolute(value: str) -> str:
    if not os.path.isabs(value):
        raise ValueError("must be an absolute path")
    return value


def _absolute_or_empty(value: str) -> str:
    return _absolute(value) if value else value


def _tcp_port(value: int) -> int:
    if not 0 < value < 65536:
        raise ValueError("must be between 1 and 65535")
    return value


def _reload_when(value: str) -> str:
    if value.lower() not in RELOAD_WHEN:
        raise ValueError(f"must be one of {', '.join(RELOAD_WHEN)}")
    return value.lower()


def _listen(value: str) -> str:
    if value and not (_LISTEN.match(value) and 0 < int(value.rsplit(":", 1)[1]) < 65536):
        raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:9568")
    return value


def driver_names(value: str) -> list[str]:
    """`driver`'s value as names: one driver, or two joined with `+` (chan_dongle beside a
    chan_quectel fork)."""
    return [part.strip() for part in value.split("+")]


def _driver(value: str) -> str:
    from dongled.drivers.known import DRIVERS  # here: `dongled status` needs no driver

    names = driver_names(value)
    unknown = [n for n in names if n not in DRIVERS]
    if unknown:
        raise ValueError(f"names {unknown[0]!r}; known: {', '.join(DRIVERS)}")
    files = [DRIVERS[n].conf_key for n in names]  # drivers of one family read one file
    if len(set(files)) != len(files):
        # One file per driver; the two chan_quectel forks cannot be loaded together either.
        raise ValueError(
            "may join chan_dongle with one chan_quectel fork, not two drivers reading the same file"
        )
    return "+".join(names)


def _at_least_one(value: int) -> int:
    if value < 1:
        raise ValueError("must be at least 1")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class AmiSettings:
    host: str = key("127.0.0.1", "Asterisk manager address")
    port: int = key(5038, "Asterisk manager port", check=_tcp_port)
    username: str = key("dongled", "AMI user (see docs/operations.md, 'The AMI user')")
    # Never logged or shown; `repr=False` keeps it out of tracebacks and debug output.
    secret: str = key("", "its secret; never logged. Better: `secret_file`", repr=False)
    secret_file: str = key(
        "",
        "read the secret from this file instead (one line; mode 0640, owner root, group "
        "asterisk), e.g. `/etc/dongled/ami-secret`; read only by the commands that talk to "
        "Asterisk",
    )
    reload_when: str = key(
        "now",
        "when the driver reloads (`When:` of `DongleReload`/`QuectelReload`, the last words "
        "of RE's `quectel reload`): `now`, `gracefully` or `when convenient`",
        check=_reload_when,
    )
    timeout: float = key(5.0, "every AMI request", unit="s")
    backoff_max: float = key(30.0, "cap of the reconnect backoff (it starts at 0.5 s)", unit="s")


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsSettings:
    listen: str = key("", "Prometheus endpoint, e.g. `127.0.0.1:9568`; empty: none", check=_listen)
    textfile: str = key(
        "",
        "node_exporter textfile path, e.g. `/var/lib/prometheus/node-exporter/dongled.prom`; "
        "empty: none",
        check=_absolute_or_empty,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoverySettings:
    """The hung-stick ladder; every step can be turned off."""

    restart: bool = key(True, "ladder step 1: restart the device (stop, wait, start)")
    reauthorize: bool = key(True, "ladder step 2: sysfs `authorized` 0 -> 1")
    usb_reset: bool = key(True, "ladder step 3: `USBDEVFS_RESET`")
    power_cycle: bool = key(
        True, "ladder step 4: `uhubctl` power cycle (only where uhubctl is installed)"
    )
    backoff: float = key(30.0, "first wait between two steps on one stick (doubles)", unit="s")
    backoff_max: float = key(600.0, "cap of that wait", unit="s")
    max_rounds: int = key(
        2, "whole ladders tried before a stick is given up on", check=_at_least_one
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    driver: str = key(
        "chan_dongle",
        "the Asterisk channel driver: `chan_dongle`, or for LTE modules on chan_quectel "
        "`chan_quectel-im` (the IchthysMaranatha fork) or `chan_quectel-re` (the RoEdAl fork, "
        "driven through its CLI: the AMI user needs the `command` write class); chan_dongle "
        "beside one of them on one box: `chan_dongle+chan_quectel-im` (or `-re`)",
        check=_driver,
    )
    # The `[drivers]` table: the config file each driver family reads, by the family's
    # `Driver.conf_key`; a family not set reads its `Driver.default_conf` (see conf_path).
    # The keys and their defaults are the drivers', so a new driver adds its own here.
    drivers: dict[str, str] = field(
        default_factory=dict,
        metadata={"help": "the config file that dongled keeps right", "check": _absolute},
    )
    lock_dir: str = key("/var/lock", "where UUCP lock files (`LCK..ttyUSBn`) live", check=_absolute)
    state_dir: str = key(
        "/run/dongled", "live state (`status.json`) for `dongled status`", check=_absolute
    )
    ami: AmiSettings = field(default_factory=AmiSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    recovery: RecoverySettings = field(default_factory=RecoverySettings)
    at_timeout: float = key(2.0, "one AT command (the first of a probe gets at most 1 s)", unit="s")
    probe_timeout: float = key(8.0, "a whole probe of one stick", unit="s")
    settle_time: float = key(
        0.15,
        "quiet time after a stick's last tty event before probing one of unknown model",
        unit="s",
    )
    batch_max_wait: float = key(
        3.0, "a storm waits at most this long for slow sticks before writing", unit="s"
    )
    verify_timeout: float = key(
        10.0, "a device must run its own IMEI within this after a reload", unit="s"
    )
    switch_limit: float = key(
        30.0, "a stick still in storage (CD-ROM) mode after this is flagged `stuck`", unit="s"
    )
    boot_grace: float = key(
        30.0,
        "a new stick that has not answered AT yet is booting, not hung, for this long: probed "
        "again with backoff, no recovery step",
        unit="s",
    )
    release_quiet: float = key(
        0.25,
        "a device dongled stopped: its data tty must be silent this long after chan_dongle "
        "let go of it before anything re-opens it",
        unit="s",
    )
    offline_after: float = key(
        600.0,
        "a managed line down (`Not connected`, `GSM not registered`) this long with its stick "
        "plugged in goes to the recovery ladder; 0 turns this off",
        unit="s",
        zero_off=True,
    )
    stall_after: float = key(
        300.0,
        "a long-lived task (reconcile loop, AMI keeper, status writer, line and binding "
        "watches) that made no progress for this long plus twice its own longest wait (e.g. "
        "`ami.backoff_max`) is hung: no more watchdog pings, so systemd restarts dongled",
        unit="s",
    )


def conf_path(settings: Settings, driver: Driver) -> str:
    """The config file `driver` reads: its family's key in `[drivers]`, else its default."""
    return settings.drivers.get(driver.conf_key, driver.default_conf)


# Top-level keys that named a driver's file before the `[drivers]` table (still read, with a
# warning): the old key and its `[drivers]` key.
DEPRECATED_FILES = {"dongle_conf": "chan_dongle", "quectel_conf": "chan_quectel"}


# ---- reading a file (the checks key by key: config.reader) ----------------------------------


_TOML_LINE = re.compile(r"\(at line (\d+), column \d+\)")


def _one_line_secret(text: str) -> str:
    """The secret in a secret file's text; ValueError (never quoting it) unless the file holds
    exactly one non-empty line: a second line would reach the AMI `Secret:` header."""
    secret = text.strip()
    if not secret:
        raise ValueError("is empty: put the AMI secret in it, on one line")
    lines = len(secret.splitlines())
    if lines > 1:
        raise ValueError(f"has {lines} lines: it must hold the AMI secret alone, on one line")
    return secret


def read_secret(settings: Settings, path: str | None = None, line: int | None = None) -> Settings:
    """`s` with `ami.secret` read from `ami.secret_file` (unchanged without one). Only the
    commands that talk to Asterisk need it: `dongled status` works for an admin who may not
    read the secret. `path` and `line` are the settings file and the line that names the
    secret file, for the message; the secret itself is never in one."""
    if not settings.ami.secret_file:
        return settings
    where = path or DEFAULT_PATH
    try:
        with open(settings.ami.secret_file, encoding="utf-8") as fh:
            secret = _one_line_secret(fh.read())
    except OSError as exc:
        raise SettingsError(
            where,
            "ami.secret_file",
            f"cannot read {settings.ami.secret_file}: {exc.strerror}",
            line=line,
        ) from None
    except UnicodeDecodeError:
        raise SettingsError(
            where, "ami.secret_file", f"{settings.ami.secret_file} is not UTF-8 text", line=line
        ) from None
    except ValueError as exc:
        raise SettingsError(
            where, "ami.secret_file", f"{settings.ami.secret_file} {exc}", line=line
        ) from None
    return dataclasses.replace(settings, ami=dataclasses.replace(settings.ami, secret=secret))


def load(path: str | None = None, *, secret: bool = True) -> Settings:
    """Read settings; a missing file at the default path means all defaults. With
    `secret=False` an `ami.secret_file` is not read (see read_secret). Every error in the file
    is reported at once (`SettingsError.errors`)."""
    explicit = path is not None
    path = path or DEFAULT_PATH
    try:
        with open(path, "rb") as fh:
            text = fh.read().decode("utf-8")
        raw = tomllib.loads(text)
    except FileNotFoundError:
        if explicit:
            raise SettingsError(path, None, "file not found") from None
        return Settings()
    except OSError as exc:
        raise SettingsError(path, None, f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise SettingsError(path, None, f"not valid TOML: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        at = _TOML_LINE.search(str(exc))
        line = int(at.group(1)) if at else None
        raise SettingsError(path, None, f"not valid TOML: {exc}", line=line) from None
    reader = Reader(path, text)
    reader.deprecated_files(raw, DEPRECATED_FILES, _absolute)
    s = Settings(**reader.table(Settings, raw, ""))
    if s.ami.secret and s.ami.secret_file:
        reader.errors.append(
            reader.error("ami.secret_file", "give either ami.secret or ami.secret_file")
        )
    elif secret and not any(e.key == "ami.secret_file" for e in reader.errors):
        try:
            s = read_secret(s, path, line_of(text, "ami.secret_file"))
        except SettingsError as exc:
            reader.errors.append(exc)
    if reader.errors:
        errors = sorted(reader.errors, key=lambda e: e.line or 0)
        raise errors[0] if len(errors) == 1 else SettingsErrors(errors)
    return s
