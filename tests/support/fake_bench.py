"""The bench the test Asterisk's tests share: simulated sticks at stable names (symlinks to
pty slaves), a dongle.conf and a quectel.conf, and helpers to set them up and ask the fake.

The fixtures `bench`, `make_fake`, `qbench` and `make_q` that build on these are in
tests/conftest.py.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .ami_client import TIMEOUT, Ami, Msg
from .fake_asterisk import FakeAsterisk
from .modemsim import PtyModem, Role, StickSim, pty_modem

IMEI_A = "351234567890123"
IMEI_B = "351234567890999"
IMSI_A = "250014567890123"
IMSI_B = "250019876543210"
INTERVAL = 0.5
TIOCGEXCL = 0x80045440  # _IOR('T', 0x40, int), not in termios


@dataclass
class Plugged:
    sim: StickSim
    data: PtyModem
    audio: PtyModem
    links: list[Path]


class Bench:
    """Simulated sticks whose ports appear at stable names (symlinks to pty slaves)."""

    def __init__(self, root: Path) -> None:
        self.dev = root / "dev"
        self.dev.mkdir()
        self.locks = root / "lock"
        self.locks.mkdir()
        self.conf = root / "dongle.conf"
        self._plugged: list[Plugged] = []

    def path(self, name: str) -> str:
        return str(self.dev / name)

    def plug(self, sim: StickSim, data: str, audio: str) -> Plugged:
        data_port = pty_modem(sim, Role.PCUI)
        audio_port = pty_modem(sim, Role.SILENT)
        links = []
        for name, port in ((data, data_port), (audio, audio_port)):
            link = self.dev / name
            tmp = self.dev / f".{name}.tmp"
            tmp.symlink_to(port.path)
            os.replace(tmp, link)
            links.append(link)
        plugged = Plugged(sim, data_port, audio_port, links)
        self._plugged.append(plugged)
        return plugged

    def unplug(self, plugged: Plugged) -> None:
        for link in plugged.links:
            if os.readlink(link) in (plugged.data.path, plugged.audio.path):
                link.unlink()
        plugged.data.unplug()
        plugged.audio.unplug()

    def close(self) -> None:
        for plugged in self._plugged:
            plugged.data.close()
            plugged.audio.close()

    def write_conf(self, *sections: tuple[str, str, str, str]) -> None:
        """(name, data, audio, imei) per device section."""
        lines = ["[general]", "interval=15", "", "[defaults]", "context=dongle-incoming", ""]
        for name, data, audio, imei in sections:
            lines += [f"[{name}]", f"data={data}", f"audio={audio}", f"imei={imei}", ""]
        self.conf.write_text("\n".join(lines))


def one_stick(bench: Bench, imei: str = IMEI_A, imsi: str = IMSI_A) -> Plugged:
    """dongle0 configured on ttyUSB2/ttyUSB1 with IMEI_A, and a stick with `imei` there."""
    bench.write_conf(("dongle0", bench.path("ttyUSB2"), bench.path("ttyUSB1"), IMEI_A))
    return bench.plug(StickSim(imei, imsi), "ttyUSB2", "ttyUSB1")


def stick_pulled(bench: Bench, make_fake: Callable[..., FakeAsterisk]) -> FakeAsterisk:
    """dongle0 came up on its stick (one_stick), then the stick was pulled."""
    mine = one_stick(bench)
    fake = make_fake()
    fake.wait_for_state("dongle0", "Free", TIMEOUT)
    bench.unplug(mine)
    fake.wait_for_state("dongle0", "Not connected", 0.5)
    return fake


class QBench(Bench):
    """The chan_dongle test bench plus a quectel.conf."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.qconf = root / "quectel.conf"

    def write_qconf(self, *sections: str, interval: int = 15) -> None:
        """Each section as text after its [name] line."""
        text = f"[general]\ninterval={interval}\n\n[defaults]\ncontext=quectel-incoming\n\n"
        self.qconf.write_text(text + "\n".join(sections))

    def section(self, name: str, *lines: str) -> str:
        return f"[{name}]\n" + "".join(f"{line}\n" for line in lines)


def one_module(
    qbench: QBench, sim: StickSim, *extra: str, name: str = "quectel0", imei: str = IMEI_A
) -> None:
    """`name` on ttyUSB2 (data) / ttyUSB1 (audio) naming `imei`, and `sim` plugged there."""
    qbench.write_qconf(
        qbench.section(
            name,
            f"data={qbench.path('ttyUSB2')}",
            f"audio={qbench.path('ttyUSB1')}",
            f"imei={imei}",
            *extra,
        )
    )
    qbench.plug(sim, "ttyUSB2", "ttyUSB1")


async def command(fake: FakeAsterisk, text: str) -> Msg | None:
    """One AMI Command (None: Asterisk hung up without answering)."""
    ami = await Ami.connect(fake.port)
    await ami.login(events="off")
    await ami.send([("Action", "Command"), ("Command", text), ("ActionID", "c1")])
    reply = await ami.read()
    await ami.close()
    return reply


def output(fake: FakeAsterisk, text: str) -> list[str]:
    reply = asyncio.run(command(fake, text))
    assert reply is not None
    return reply.get_all("Output")


def held(path: str) -> tuple[bool, bool]:
    """(TIOCEXCL set, flock taken) on the tty at `path`, as a probe would find them."""
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        (exclusive,) = struct.unpack("i", fcntl.ioctl(fd, TIOCGEXCL, b"\0" * 4))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return bool(exclusive), True
        return bool(exclusive), False
    finally:
        os.close(fd)


def write_classes() -> dict[str, Any]:
    return {"write_classes": ("system", "config", "reporting", "command")}
