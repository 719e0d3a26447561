"""The private tree a real Asterisk runs from: its own asterisk.conf ([directories]),
modules.conf, logger.conf, extensions.conf, manager.conf (AMI on the given loopback port) and a
module directory of symlinks that holds the chosen driver(s), with the rig's config file(s)
linked in as dongle.conf / quectel.conf."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path

USER, SECRET = "dongled", "s3cret"
# Each driver's module in the build, and the name Asterisk loads it by.
_MODULES = {
    "chan_dongle": ("chan_dongle.so", "chan_dongle.so"),
    "quectel-im": ("chan_quectel-im.so", "chan_quectel.so"),
    "quectel-re": ("chan_quectel-re.so", "chan_quectel.so"),
}


class AsteriskTree:
    """Lays the tree out under `root` at once; `build` is tests/real/build.sh's output."""

    def __init__(
        self,
        root: Path,
        build: Path,
        drivers: Sequence[str],
        confs: Mapping[str, Path],
        ami_port: int,
    ) -> None:
        self.root = root
        d = root
        dirs = {"etc": "astetcdir", "modules": "astmoddir", "lib": "astvarlibdir",
                "db": "astdbdir", "keys": "astkeydir", "data": "astdatadir", "agi": "astagidir",
                "spool": "astspooldir", "run": "astrundir", "log": "astlogdir"}  # fmt: skip
        for sub in dirs:
            (d / sub).mkdir(parents=True, exist_ok=True)
        # Short enough for the control socket's path (sun_path is 108 bytes).
        conf = "[directories]\n" + "".join(f"{v} => {d / k}\n" for k, v in dirs.items())
        conf += "[options]\nverbose = 3\ndebug = 0\nhideconnect = yes\n"
        self.asterisk_conf.write_text(conf)
        etc = d / "etc"
        (etc / "modules.conf").write_text("[modules]\nautoload = yes\n")
        (etc / "logger.conf").write_text(
            "[general]\ndateformat = %T.%3q\n[logfiles]\nfull => notice,warning,error,verbose\n"
        )
        dialplan = "[general]\n[dongle-incoming]\nexten => s,1,Hangup()\n"
        (etc / "extensions.conf").write_text(dialplan)
        classes = "system,config,reporting,command,call"
        (etc / "manager.conf").write_text(
            f"[general]\nenabled = yes\nport = {ami_port}\nbindaddr = 127.0.0.1\n"
            f"[{USER}]\nsecret = {SECRET}\nread = {classes}\nwrite = {classes}\n"
        )
        for name, path in confs.items():
            (etc / name).symlink_to(path)
        mods = d / "modules"
        for so in (build / "lib" / "asterisk" / "modules").glob("*.so"):
            (mods / so.name).symlink_to(so)
        for driver in drivers:
            src, dst = _MODULES[driver]
            (mods / dst).symlink_to(build / "drivers" / src)

    @property
    def asterisk_conf(self) -> Path:
        return self.root / "asterisk.conf"

    @property
    def stdout_path(self) -> Path:
        """Where Asterisk's own stdout and stderr go."""
        return self.root / "stdout"

    @property
    def log_path(self) -> Path:
        return self.root / "log" / "full"

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""
