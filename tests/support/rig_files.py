"""The rig's files: the hand-written driver config(s) (dongle.conf / quectel.conf) a rig
starts from, and the settings file `dongled` reads."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from tests.support.fake_asterisk_quectel import PERSONALITY
from tests.support.testbed import FakeStick

LTE_VIDS = ("2c7c", "05c6", "1e0e")  # Quectel, Quectel EC20 (Qualcomm id), SIMCom
# What the settings' `driver` is for each of the rig's personalities.


def make_imei(i: int) -> str:
    """A Luhn-valid IMEI per index (real sticks have valid ones; dongled refuses others)."""
    body = f"35693803{i:06d}"
    total = 0
    for pos, ch in enumerate(reversed(body)):
        d = int(ch)
        if pos % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return body + str((10 - total % 10) % 10)


HEADER = """\
; chan_dongle configuration of the contact centre -- edited by hand, keep the comments!
;-- block comment: the cities' sticks live below --;
[general]
interval=15                     ; seconds between chan_dongle's reconnect passes
smsdb=/var/lib/asterisk/smsdb   ; SMS store

[defaults]
context=dongle-incoming         ; default incoming context
group=0                         ; calling group
rxgain=0
txgain=0
autodeletesms=yes
resetdongle=yes
u2diag=-1                       ; leave the stick's diag setting alone
usecallingpres=yes
callingpres=allowed_passed_screen
disablesms=no
language=en
mindtmfgap=45
callwaiting=auto
initstate=start
"""


def section_text(i: int, imei: str, data: str, audio: str, name: str = "") -> str:
    return (
        f"\n[{name or f'dongle{i}'}]\n"
        f"imei={imei}        ; SIM of city {i}\n"
        f"data={data}   ; AT port\n"
        f"audio = {audio}   ; voice port\n"
        f"context=city-{i}               ; this city's queue\n"
        f"group={i % 3 + 1}\n"
    )


def uac_section_text(i: int, imei: str, data: str, alsadev: str, switch: str = "quec_uac=1") -> str:
    """A chan_quectel section whose voice is the module's USB sound card (`switch`: IM's
    quec_uac=1, RE's uac=on)."""
    return (
        f"\n[dongle{i}]\n"
        f"imei={imei}        ; SIM of city {i}\n"
        f"data={data}   ; AT port\n"
        f"{switch:<22} ; voice over the module's USB sound card\n"
        f"alsadev = {alsadev}   ; its ALSA card\n"
        f"context=city-{i}               ; this city's queue\n"
        f"group={i % 3 + 1}\n"
    )


def card_alsadev(stick: FakeStick) -> str:
    """What dongled writes as alsadev= for a plugged module with USB audio."""
    return f"hw:CARD={stick.sound_card.id}" if stick.sound_card is not None else ""


class RigFiles:
    """Where a rig's files live in `tmp`, what the config files were when written, and the
    settings. With two drivers (a `+` personality) quectel.conf holds the LTE modules'
    sections, dongle.conf the others'; with one, `conf` is the one file, in the syntax of
    the driver that reads it."""

    def __init__(self, tmp: Path, personality: str) -> None:
        self.personality = personality
        self.kind = PERSONALITY[personality]
        self.mixed = self.kind.mixed
        self.lock_dir = tmp / "lock"
        self.lock_dir.mkdir()
        self.state_dir = tmp / "run"
        self.conf = tmp / "dongle.conf"
        self.quectel_conf = tmp / "quectel.conf"
        self.confs = [self.conf, self.quectel_conf] if self.mixed else [self.conf]
        self.settings = tmp / "dongled.toml"
        self.originals: dict[Path, bytes] = {}

    def write_confs(
        self,
        sticks: Sequence[FakeStick],
        imeis: Sequence[str],
        names: Sequence[str],
        *,
        uac: bool,
        interval: float,
        real: bool,
    ) -> None:
        """The hand-written file(s), one section per stick; kept in `originals`. Modules with
        USB audio (`uac`) get data= and alsadev= (IM's quec_uac=1, RE's uac=on), no audio=."""
        re_fork = self.kind.opens_on_timer
        switch = self.kind.fork.uac_on if self.kind.fork is not None else ""
        for path in self.confs:
            header = HEADER
            if real or (re_fork and (path == self.quectel_conf or not self.mixed)):
                # RE opens devices on this timer and dongled reads it: the fake's must match.
                # The real drivers retry the configured paths on it (a test waits for that).
                header = header.replace("interval=15 ", f"interval={interval:g}  ")
            body = header + "".join(
                uac_section_text(i, imeis[i], s.data_port.devnode, card_alsadev(s), switch)
                if uac
                else section_text(i, imeis[i], s.data_port.devnode, s.audio_port.devnode, names[i])
                for i, s in enumerate(sticks)
                if (path == self.quectel_conf) == names[i].startswith("quectel")
            )
            path.write_bytes(body.encode())
        self.originals = {path: path.read_bytes() for path in self.confs}

    def write_settings(
        self,
        ami_port: int,
        tables: dict[str, dict[str, object]] | None = None,
        **extra: object,
    ) -> None:
        """Top-level keys (`extra` overrides the rig's), then [ami] and any other tables."""
        driver = self.kind.dongled_driver
        files: dict[str, object] = (
            {"chan_dongle": str(self.conf), "chan_quectel": str(self.quectel_conf)}
            if self.mixed  # else the rig's one file, under the key of the driver that reads it
            else {("chan_quectel" if self.kind.fork else "chan_dongle"): str(self.conf)}
        )
        tables = {"drivers": files, **(tables or {})}
        top: dict[str, object] = {
            "driver": driver,
            "lock_dir": str(self.lock_dir),
            "state_dir": str(self.state_dir),
            "at_timeout": 1.0,
            "verify_timeout": 10.0,
            **extra,
        }
        lines = [f"{k} = {json.dumps(v)}" for k, v in top.items()]
        for name, table in tables.items():
            lines += [f"[{name}]"] + [f"{k} = {json.dumps(v)}" for k, v in table.items()]
        lines += [
            "[ami]",
            f"port = {ami_port}",
            'username = "dongled"',
            'secret = "s3cret"',
            "timeout = 2.0",
            "backoff_max = 1.0",
        ]
        self.settings.write_text("\n".join(lines) + "\n")

    def assert_only_ports_changed(self) -> None:
        """Every line but data=/audio= (alsadev=) values is byte-identical to the
        hand-written file(s)."""
        for path, original in self.originals.items():
            old = original.splitlines(keepends=True)
            new = path.read_bytes().splitlines(keepends=True)
            assert len(old) == len(new), path
            for a, b in zip(old, new, strict=True):
                if a != b:
                    key = a.split(b"=", 1)[0].strip()
                    assert key in (b"data", b"audio", b"alsadev"), (path, a, b)
                    assert a.split(b";", 1)[1:] == b.split(b";", 1)[1:], (path, a, b)
