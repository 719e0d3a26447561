"""dongled's own settings: a TOML file whose every key has a documented default."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from dongled.drivers.known import DRIVERS
from dongled.errors import SettingsError

DEFAULT_PATH = "/etc/dongled/dongled.toml"
RELOAD_WHEN = ("now", "gracefully", "when convenient")


@dataclass(frozen=True, slots=True, kw_only=True)
class AmiSettings:
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "dongled"
    # Never logged or shown; `repr=False` keeps it out of tracebacks and debug output.
    secret: str = field(default="", repr=False)
    reload_when: str = "now"
    timeout: float = 5.0  # every AMI request
    backoff_max: float = 30.0  # cap of the reconnect backoff


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsSettings:
    listen: str = ""  # e.g. "127.0.0.1:9568"; empty: no HTTP endpoint
    textfile: str = ""  # node_exporter textfile path; empty: none


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoverySettings:
    """The hung-stick ladder; every step can be turned off."""

    restart: bool = True  # DongleRestart
    reauthorize: bool = True  # sysfs authorized 0 -> 1
    usb_reset: bool = True  # USBDEVFS_RESET
    power_cycle: bool = True  # uhubctl, where installed
    backoff: float = 30.0  # first wait between two steps on one stick
    backoff_max: float = 600.0
    max_rounds: int = 2  # whole ladders before giving up on a stick


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    driver: str = "chan_dongle"  # chan_dongle | chan_quectel-im (dongled.drivers.known)
    dongle_conf: str = "/etc/asterisk/dongle.conf"  # the driver's config file
    lock_dir: str = "/var/lock"
    state_dir: str = "/run/dongled"
    ami: AmiSettings = field(default_factory=AmiSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    recovery: RecoverySettings = field(default_factory=RecoverySettings)
    at_timeout: float = 2.0  # one AT command
    probe_timeout: float = 8.0  # a whole probe of one stick
    settle_time: float = 0.15  # quiet time after a stick's last tty event before probing
    batch_max_wait: float = 3.0  # one slow stick never holds the batch back longer
    verify_timeout: float = 10.0  # a device must be ready with the right IMEI by then
    switch_limit: float = 30.0  # a stick still in storage (CD-ROM) mode after this is flagged
    boot_grace: float = 30.0  # a new stick silent this long counts as hung (it may be booting)
    release_quiet: float = 0.25  # a just-stopped device's tty must be silent this long
    offline_after: float = 600.0  # a line down this long, stick present: to the ladder (0: off)


_TOP_KEYS = {
    "driver": str,
    "dongle_conf": str,
    "lock_dir": str,
    "state_dir": str,
    "at_timeout": float,
    "probe_timeout": float,
    "settle_time": float,
    "batch_max_wait": float,
    "verify_timeout": float,
    "switch_limit": float,
    "boot_grace": float,
    "release_quiet": float,
    "offline_after": float,
}
_AMI_KEYS = {
    "host": str,
    "port": int,
    "username": str,
    "secret": str,
    "secret_file": str,
    "reload_when": str,
    "timeout": float,
    "backoff_max": float,
}


_METRICS_KEYS: dict[str, type] = {"listen": str, "textfile": str}
_RECOVERY_KEYS: dict[str, type] = {
    "restart": bool,
    "reauthorize": bool,
    "usb_reset": bool,
    "power_cycle": bool,
    "backoff": float,
    "backoff_max": float,
    "max_rounds": int,
}
_ZERO_TURNS_OFF = {"offline_after"}
_LISTEN = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")


def _check(path: str, key: str, value: Any, kind: type) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is bool:
        if not isinstance(value, bool):
            raise SettingsError(path, key, f"must be true or false, not {value!r}")
        return value
    if not isinstance(value, kind) or isinstance(value, bool):
        raise SettingsError(path, key, f"must be a {kind.__name__}, not {value!r}")
    if isinstance(value, float) and key in _ZERO_TURNS_OFF:
        if value < 0:
            raise SettingsError(path, key, "must be 0 (off) or more")
    elif isinstance(value, float) and value <= 0:
        raise SettingsError(path, key, "must be greater than 0")
    return value


def _table(path: str, prefix: str, raw: dict[str, Any], keys: dict[str, type]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = f"{prefix}{key}"
        if key not in keys:
            known = ", ".join(sorted(keys))
            raise SettingsError(path, name, f"unknown key (known: {known})")
        out[key] = _check(path, name, value, keys[key])
    return out


def _read_secret_file(path: str, secret_file: str) -> str:
    try:
        with open(secret_file, encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError as exc:
        raise SettingsError(
            path, "ami.secret_file", f"cannot read {secret_file}: {exc.strerror}"
        ) from None


def load(path: str | None = None) -> Settings:
    """Read settings; a missing file at the default path means all defaults."""
    explicit = path is not None
    path = path or DEFAULT_PATH
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        if explicit:
            raise SettingsError(path, None, "file not found") from None
        return Settings()
    except OSError as exc:
        raise SettingsError(path, None, f"cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(path, None, f"not valid TOML: {exc}") from None

    recovery_raw = raw.pop("recovery", {})
    if not isinstance(recovery_raw, dict):
        raise SettingsError(path, "recovery", "must be a table ([recovery])")
    recovery = _table(path, "recovery.", recovery_raw, _RECOVERY_KEYS)
    if recovery.get("max_rounds", 2) < 1:
        raise SettingsError(path, "recovery.max_rounds", "must be at least 1")
    metrics_raw = raw.pop("metrics", {})
    if not isinstance(metrics_raw, dict):
        raise SettingsError(path, "metrics", "must be a table ([metrics])")
    metrics = _table(path, "metrics.", metrics_raw, _METRICS_KEYS)
    listen = metrics.get("listen", "")
    if listen and not (_LISTEN.match(listen) and 0 < int(listen.rsplit(":", 1)[1]) < 65536):
        raise SettingsError(path, "metrics.listen", "must be HOST:PORT, e.g. 127.0.0.1:9568")
    if metrics.get("textfile") and not os.path.isabs(metrics["textfile"]):
        raise SettingsError(path, "metrics.textfile", "must be an absolute path")
    ami_raw = raw.pop("ami", {})
    if not isinstance(ami_raw, dict):
        raise SettingsError(path, "ami", "must be a table ([ami])")
    top = _table(path, "", raw, _TOP_KEYS)
    ami = _table(path, "ami.", ami_raw, _AMI_KEYS)

    if "secret" in ami and "secret_file" in ami:
        raise SettingsError(path, "ami.secret_file", "give either ami.secret or ami.secret_file")
    if "secret_file" in ami:
        ami["secret"] = _read_secret_file(path, ami.pop("secret_file"))
    when = ami.get("reload_when", "now").lower()
    if when not in RELOAD_WHEN:
        raise SettingsError(path, "ami.reload_when", f"must be one of {', '.join(RELOAD_WHEN)}")
    ami["reload_when"] = when
    port: int = ami.get("port", 5038)
    if not 0 < port < 65536:
        raise SettingsError(path, "ami.port", "must be between 1 and 65535")
    driver = top.get("driver", "chan_dongle")
    if driver not in DRIVERS:
        raise SettingsError(path, "driver", f"must be one of {', '.join(DRIVERS)}")
    if "dongle_conf" not in top:  # each driver's own file by default
        top["dongle_conf"] = DRIVERS[driver].conf_path
    for key in ("dongle_conf", "lock_dir", "state_dir"):
        if key in top and not os.path.isabs(top[key]):
            raise SettingsError(path, key, "must be an absolute path")
    return Settings(
        **top,
        ami=AmiSettings(**ami),
        metrics=MetricsSettings(**metrics),
        recovery=RecoverySettings(**recovery),
    )
