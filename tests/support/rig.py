"""End-to-end rig: umockdev sticks + modem simulators + the test Asterisk + `dongled run`
as a real subprocess under umockdev-wrapper with a real NOTIFY_SOCKET."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import cast

from tests.support.devguard import SITE_DIR
from tests.support.fake_asterisk import FakeAsterisk
from tests.support.fake_asterisk_quectel import make_fake_asterisk
from tests.support.modemsim import E1550_USB, StickSim, UsbModel
from tests.support.real_asterisk import RealAsterisk
from tests.support.testbed import FakeStick, Testbed

ROOT = Path(__file__).resolve().parents[2]
PARKED_DATA = "/dev/null/dongled-stick-absent-data"
LTE_VIDS = ("2c7c", "05c6", "1e0e")  # Quectel, Quectel EC20 (Qualcomm id), SIMCom
_RE_CLASSES = ("system", "config", "reporting", "command")  # RE is driven by CLI commands


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


class Rig:
    # How `dongled run` is started: verbose for the tests' log assertions.
    run_args: tuple[str, ...] = ("run", "--verbose")
    ready_timeout = 20.0

    def __init__(
        self,
        tmp: Path,
        tb: Testbed,
        n: int,
        *,
        model: UsbModel = E1550_USB,
        interval: float = 1.0,
        answer_delay: float = 0.0,
        sims: Sequence[StickSim] | None = None,
        personality: str = "chan_dongle",
        models: Sequence[UsbModel] | None = None,
        real: bool = False,
    ) -> None:
        """`real`: the real Asterisk and driver(s) (tests/support/real_asterisk.py) instead of
        the test Asterisk. `models`: one per stick (default: `model` for all). With two drivers
        (`chan_dongle+quectel-im`), LTE modules' sections (`quectel<i>`) go into
        quectel.conf, the Huawei sticks' (`dongle<i>`) into dongle.conf."""
        self.tmp, self.tb, self.model = tmp, tb, model
        self.models = list(models) if models is not None else [model] * n
        mixed = "+" in personality
        self.names = [
            f"quectel{i}" if mixed and m.vid in LTE_VIDS else f"dongle{i}"
            for i, m in enumerate(self.models)
        ]
        self.lock_dir = tmp / "lock"
        self.lock_dir.mkdir()
        self.state_dir = tmp / "run"
        self.conf = tmp / "dongle.conf"
        self.imeis = [make_imei(i) for i in range(n)]
        self.sims = (
            list(sims)
            if sims is not None
            else [
                StickSim(imei, f"2500100000{i:05d}", answer_delay=answer_delay)
                for i, imei in enumerate(self.imeis)
            ]
        )
        self.next_tty = 0
        self.sticks: list[FakeStick] = []
        for i in range(n):
            ttys = self.take_ttys(len(self.models[i].interfaces))
            self.sticks.append(
                tb.add_stick(self.models[i], self.sims[i], ttys, usb_port=str(i + 1))
            )
        # Modules with USB audio: data= and alsadev= (IM's quec_uac=1, RE's uac=on), no audio=.
        self.uac = model.sound_interface is not None
        switch = "uac=on" if personality.endswith("quectel-re") else "quec_uac=1"
        self.quectel_conf = tmp / "quectel.conf"
        self.confs = [self.conf, self.quectel_conf] if mixed else [self.conf]
        for path in self.confs:
            header = HEADER
            if real or (
                personality.endswith("quectel-re") and (path == self.quectel_conf or not mixed)
            ):
                # RE opens devices on this timer and dongled reads it: the fake's must match.
                # The real drivers retry the configured paths on it (a test waits for that).
                header = header.replace("interval=15 ", f"interval={interval:g}  ")
            body = header + "".join(
                uac_section_text(i, self.imeis[i], s.data_port.devnode, card_alsadev(s), switch)
                if self.uac
                else section_text(
                    i, self.imeis[i], s.data_port.devnode, s.audio_port.devnode, self.names[i]
                )
                for i, s in enumerate(self.sticks)
                if (path == self.quectel_conf) == self.names[i].startswith("quectel")
            )
            path.write_bytes(body.encode())
        self.originals = {path: path.read_bytes() for path in self.confs}
        self.personality = personality
        self.real: RealAsterisk | None = None
        self.asterisk: FakeAsterisk
        if real:
            self.real = self._real_asterisk(personality, mixed, tb)
            # Duck-typed: the real one offers what the rig and the shared scenarios use (the
            # listing, foreign bindings, hazards, actions, waits, an admin's reload); a test
            # that calls a model-only member on a real rig fails at run time, loudly.
            self.asterisk = cast(FakeAsterisk, self.real)
        elif mixed:
            re_fork = {"quectel_interval": interval, "write_classes": _RE_CLASSES}
            self.asterisk = make_fake_asterisk(
                personality, lock_dir=str(self.lock_dir), dongle_conf=str(self.conf),
                quectel_conf=str(self.quectel_conf), interval=interval,
                **(re_fork if personality.endswith("quectel-re") else {}),
            )  # fmt: skip
        elif personality == "chan_dongle":
            self.asterisk = FakeAsterisk(
                str(self.conf), lock_dir=str(self.lock_dir), interval=interval
            )
        elif personality == "quectel-re":  # CLI only: the AMI user needs the command class
            self.asterisk = make_fake_asterisk(
                personality, lock_dir=str(self.lock_dir), quectel_conf=str(self.conf),
                interval=interval, quectel_interval=interval, write_classes=_RE_CLASSES,
            )  # fmt: skip
        else:  # one chan_quectel fork: its config is the rig's file (quectel.conf's syntax)
            self.asterisk = make_fake_asterisk(
                personality, lock_dir=str(self.lock_dir), quectel_conf=str(self.conf),
                interval=interval,
            )  # fmt: skip
        self.sync_cards()
        self.asterisk.start()
        self.daemon: subprocess.Popen[bytes] | None = None
        self.notify_path = tmp / "notify.sock"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_path))
        self.notify.settimeout(0.1)
        self.notifications: list[str] = []
        self.settings = tmp / "dongled.toml"
        self.extra_env: dict[str, str] = {}  # added to the daemon's environment
        self.write_settings()

    def _real_asterisk(self, personality: str, mixed: bool, tb: Testbed) -> RealAsterisk:
        drivers = personality.split("+")
        if mixed:
            confs = {"dongle.conf": self.conf, "quectel.conf": self.quectel_conf}
        else:
            confs = {"dongle.conf" if personality == "chan_dongle" else "quectel.conf": self.conf}
        return RealAsterisk(self.tmp, drivers, confs, self.lock_dir, env=tb.env())

    @property
    def original(self) -> bytes:
        """The hand-written dongle.conf (the rig's one file with one driver)."""
        return self.originals[self.conf]

    @original.setter
    def original(self, content: bytes) -> None:
        self.originals[self.conf] = content

    def take_ttys(self, count: int) -> list[int]:
        first = self.next_tty
        self.next_tty += count
        return list(range(first, first + count))

    def write_settings(
        self, tables: dict[str, dict[str, object]] | None = None, **extra: object
    ) -> None:
        """Top-level keys (`extra` overrides the rig's), then [ami] and any other tables."""
        drivers = {
            "chan_dongle": "chan_dongle",
            "quectel-im": "chan_quectel-im",
            "chan_dongle+quectel-im": "chan_dongle+chan_quectel-im",
            "quectel-re": "chan_quectel-re",
            "chan_dongle+quectel-re": "chan_dongle+chan_quectel-re",
        }
        driver = drivers[self.personality]
        files: dict[str, object] = (
            {"chan_dongle": str(self.conf), "chan_quectel": str(self.quectel_conf)}
            if "+" in driver  # the rig's one file, under the key of the driver that reads it
            else {("chan_dongle" if driver == "chan_dongle" else "chan_quectel"): str(self.conf)}
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
            f"port = {self.asterisk.port}",
            'username = "dongled"',
            'secret = "s3cret"',
            "timeout = 2.0",
            "backoff_max = 1.0",
        ]
        self.settings.write_text("\n".join(lines) + "\n")

    # ---- the daemon ----------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        """A dongled process's environment: the testbed's sticks, this checkout's code."""
        env = self.tb.env()
        env["PYTHONPATH"] = f"{SITE_DIR}:{ROOT}"  # SITE_DIR: the device guard
        env.pop("JOURNAL_STREAM", None)
        env.pop("WATCHDOG_USEC", None)  # a watchdog of the test runner's own is not ours
        env.update(self.extra_env)
        return env

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`dongled --config <rig settings> ARGS` as its own process, as an admin runs it
        (a process of its own: chan_dongle's locks name another pid than dongled's)."""
        return subprocess.run(
            ["umockdev-wrapper", sys.executable, "-m", "dongled", "--config", str(self.settings),
             *args],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=str(self.tmp),
            check=False,
        )  # fmt: skip

    def start_daemon(self, wait_ready: bool = True) -> None:
        env = self._env()
        env["NOTIFY_SOCKET"] = str(self.notify_path)
        self.log_path = self.tmp / "daemon.log"
        log = self.log_path.open("ab")
        self.daemon = subprocess.Popen(
            [
                "umockdev-wrapper",
                sys.executable,
                "-m",
                "dongled",
                "--config",
                str(self.settings),
                *self.run_args,
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(self.tmp),
        )
        log.close()
        if wait_ready:
            self.wait_notification("READY=1", self.ready_timeout)

    def stop_daemon(self) -> int:
        proc, self.daemon = self.daemon, None
        if proc is None:
            return 0
        proc.terminate()
        try:
            return proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise

    def daemon_log(self) -> str:
        return self.log_path.read_text(errors="replace") if hasattr(self, "log_path") else ""

    def poll_notifications(self) -> None:
        while True:
            try:
                self.notifications.append(self.notify.recv(4096).decode())
            except (TimeoutError, BlockingIOError):
                return

    def wait_notification(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll_notifications()
            if any(text in n for n in self.notifications):
                return
            self.assert_daemon_alive()
        raise TimeoutError(f"no {text!r} from the daemon; log:\n{self.daemon_log()}")

    def assert_daemon_alive(self) -> None:
        assert self.daemon is not None and self.daemon.poll() is None, (
            f"daemon exited ({self.daemon and self.daemon.returncode}); log:\n{self.daemon_log()}"
        )

    def status(self) -> dict[str, object]:
        path = self.state_dir / "status.json"
        return json.loads(path.read_text()) if path.exists() else {}

    # ---- the sticks ----------------------------------------------------------------------

    def status_stick(self, usb_port: str) -> dict[str, object]:
        """The daemon's status row of the stick at `usb_port` (e.g. "1-1.2")."""
        sticks = self.status().get("sticks", [])
        assert isinstance(sticks, list)
        row = next(s for s in sticks if s["usb_port"] == usb_port)
        assert isinstance(row, dict)
        return row

    def unplug(self, *indexes: int) -> None:
        for i in indexes:
            self.tb.unplug(self.sticks[i])
            self.sync_cards()

    def replug(self, i: int, ttys: Sequence[int] | None = None) -> None:
        if ttys is None:
            ttys = self.take_ttys(len(self.models[i].interfaces))
        self.tb.replug(self.sticks[i], ttys)
        self.sync_cards()

    def sync_cards(self) -> None:
        """Bring the real Asterisk's /dev up to date with the testbed. Tell the test Asterisk
        whose module each ALSA card is now (what opening it would reach), as the testbed
        numbered and named them."""
        if self.real is not None:
            self.real.sync_ttys()
        cards = getattr(self.asterisk, "alsa_cards", None)
        if cards is None:
            return
        now = {s.sound_card.id: s.sim.imei for s in self.sticks if s.sound_card is not None}
        cards.update(now)
        for gone in set(cards) - set(now):
            if cards[gone]:  # a card of no module (RE's uac=ext) stays: the test set it
                cards.pop(gone, None)

    # ---- what must hold ------------------------------------------------------------------

    def device_right(self, i: int) -> bool:
        entry = self.asterisk.devices_snapshot().get(self.names[i])
        stick = self.sticks[i]
        if self.uac:  # the ALSA device it opened last (at its current connection)
            opens = [n for d, n in getattr(self.asterisk, "alsa_opens", []) if d == f"dongle{i}"]
            voice = bool(opens) and opens[-1] == card_alsadev(stick) != ""
        else:
            voice = entry is not None and entry["AudioSetting"] == stick.audio_port.devnode
        return (
            entry is not None
            and entry["State"] == "Free"
            and entry["IMEIState"] == self.imeis[i]
            and entry["DataState"] == stick.data_port.devnode
            and voice
        )

    def wait_all_right(self, indexes: Sequence[int] | None = None, timeout: float = 15.0) -> float:
        """Wait until each plugged stick runs on its own device; returns the wait in seconds."""
        idx = list(range(len(self.sticks))) if indexes is None else list(indexes)
        start = time.monotonic()
        try:
            self.asterisk.wait_for(
                lambda: all(self.device_right(i) for i in idx),
                timeout,
                what="every device on its own stick",
            )
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\ndaemon log:\n{self.daemon_log()}") from None
        took = time.monotonic() - start
        test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
        print(f"\n[recovery] {test}: {len(idx)} device(s) right {took:.3f} s after the wait began")
        return took

    def assert_never_foreign(self) -> None:
        assert self.asterisk.foreign_bindings == [], (
            f"Asterisk bound a device to a foreign IMEI: {self.asterisk.foreign_bindings}"
        )
        assert self.asterisk.hazards == [], self.asterisk.hazards

    def assert_no_foreign_audio(self) -> None:
        """No device ever ran one module's data port with another module's ALSA card."""
        mixed = [h for h in self.asterisk.hazards if "another module's audio" in h]
        assert mixed == [], mixed

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

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop_daemon()
        if self.real is not None:
            self.real.close()
        else:
            self.asterisk.stop()
        self.notify.close()


@contextlib.contextmanager
def rig(tmp: Path, n: int, **kw: object) -> Iterator[Rig]:
    with Testbed() as tb:
        r = Rig(tmp, tb, n, **kw)  # type: ignore[arg-type]
        try:
            yield r
            r.assert_no_foreign_audio()  # every rig test, whatever else it checks
            if r.real is not None:  # the simulators knew every command the real driver sent
                unknown = {s.imei: s.unknown for s in r.sims if s.unknown}
                assert unknown == {}, f"commands the simulators do not know: {unknown}"
        finally:
            r.close()


def wait_until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.01)
