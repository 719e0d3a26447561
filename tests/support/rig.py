"""End-to-end rig: umockdev sticks + modem simulators + the test Asterisk + `dongled run`
as a real subprocess under umockdev-wrapper with a real NOTIFY_SOCKET.

A `Rig` is made of its files (`rig_files.RigFiles`: the hand-written driver config and the
settings), its daemon (`rig_daemon.DaemonRunner`), the testbed's sticks and an Asterisk (the
test one, or the real one of tests/real); it keeps the waits and checks tests share."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import cast

from tests.support.devguard import SITE_DIR
from tests.support.fake_asterisk import FakeAsterisk
from tests.support.fake_asterisk_quectel import make_fake_asterisk
from tests.support.modemsim import E1550_USB, EC25, EC25_USB, StickSim, UsbModel
from tests.support.real_asterisk import RealAsterisk
from tests.support.rig_daemon import ROOT, DaemonRunner
from tests.support.rig_files import (
    HEADER,
    LTE_VIDS,
    RigFiles,
    card_alsadev,
    make_imei,
    section_text,
    uac_section_text,
)
from tests.support.testbed import FakeStick, Testbed

__all__ = [
    "FAST_RECOVERY",
    "HEADER",
    "LTE_VIDS",
    "MIXED_MODELS",
    "PARKED_DATA",
    "ROOT",
    "Rig",
    "card_alsadev",
    "journal",
    "make_imei",
    "mixed_rig",
    "rig",
    "section_text",
    "uac_section_text",
    "wait_until",
]

PARKED_DATA = "/dev/null/dongled-stick-absent-data"
MIXED_MODELS = [E1550_USB, EC25_USB, E1550_USB, EC25_USB]
# [recovery] settings that climb the ladder fast (the tests of recovery and of its bugs).
FAST_RECOVERY: dict[str, object] = {"backoff": 0.4, "backoff_max": 0.4, "max_rounds": 1}
_RE_CLASSES = ("system", "config", "reporting", "command")  # RE is driven by CLI commands


class Rig:
    # How `dongled run` is started: verbose for the tests' log assertions.
    run_args: tuple[str, ...] = ("run", "--verbose")
    ready_timeout = 20.0
    # The test Asterisk with one driver, chan_dongle (the benchmark brings its own).
    asterisk_class: type[FakeAsterisk] = FakeAsterisk

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
        self.personality = personality
        self.files = files = RigFiles(tmp, personality)
        self.lock_dir, self.state_dir = files.lock_dir, files.state_dir
        self.settings = files.settings
        self.conf, self.quectel_conf, self.confs = files.conf, files.quectel_conf, files.confs
        self.models = list(models) if models is not None else [model] * n
        self.names = [
            f"quectel{i}" if files.mixed and m.vid in LTE_VIDS else f"dongle{i}"
            for i, m in enumerate(self.models)
        ]
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
        files.write_confs(
            self.sticks, self.imeis, self.names, uac=self.uac, interval=interval, real=real
        )
        self.real: RealAsterisk | None = None
        self.asterisk: FakeAsterisk
        if real:
            self.real = self._real_asterisk(tb)
            # Duck-typed: the real one offers what the rig and the shared scenarios use (the
            # listing, foreign bindings, hazards, actions, waits, an admin's reload); a test
            # that calls a model-only member on a real rig fails at run time, loudly.
            self.asterisk = cast(FakeAsterisk, self.real)
        else:
            self.asterisk = self._fake_asterisk(interval)
        self.sync_cards()
        self.asterisk.start()
        self.runner = DaemonRunner(tmp, self.settings)
        self.extra_env: dict[str, str] = {}  # added to the daemon's environment
        self.write_settings()

    def _fake_asterisk(self, interval: float) -> FakeAsterisk:
        personality, lock_dir = self.personality, str(self.lock_dir)
        if self.files.mixed:
            re_fork = {"quectel_interval": interval, "write_classes": _RE_CLASSES}
            return make_fake_asterisk(
                personality, lock_dir=lock_dir, dongle_conf=str(self.conf),
                quectel_conf=str(self.quectel_conf), interval=interval,
                **(re_fork if self.files.kind.cli_only else {}),
            )  # fmt: skip
        if self.files.kind.fork is None:
            return self.asterisk_class(str(self.conf), lock_dir=lock_dir, interval=interval)
        if self.files.kind.cli_only:  # the AMI user needs the command class
            return make_fake_asterisk(
                personality, lock_dir=lock_dir, quectel_conf=str(self.conf),
                interval=interval, quectel_interval=interval, write_classes=_RE_CLASSES,
            )  # fmt: skip
        # one chan_quectel fork: its config is the rig's file (quectel.conf's syntax)
        return make_fake_asterisk(
            personality, lock_dir=lock_dir, quectel_conf=str(self.conf), interval=interval
        )

    def _real_asterisk(self, tb: Testbed) -> RealAsterisk:
        drivers = self.files.kind.parts
        if self.files.mixed:
            confs = {"dongle.conf": self.conf, "quectel.conf": self.quectel_conf}
        else:
            confs = {"quectel.conf" if self.files.kind.fork else "dongle.conf": self.conf}
        return RealAsterisk(self.tmp, drivers, confs, self.lock_dir, env=tb.env())

    # ---- the files -----------------------------------------------------------------------

    @property
    def originals(self) -> dict[Path, bytes]:
        """Each config file as hand-written (what `assert_only_ports_changed` compares to)."""
        return self.files.originals

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
        self.files.write_settings(self.asterisk.port, tables, **extra)

    # ---- the daemon ----------------------------------------------------------------------

    @property
    def daemon(self) -> subprocess.Popen[bytes] | None:
        """The running `dongled run`, if any (None once stopped, or set so by a test that
        ended it itself)."""
        return self.runner.proc

    @daemon.setter
    def daemon(self, proc: subprocess.Popen[bytes] | None) -> None:
        self.runner.proc = proc

    @property
    def notifications(self) -> list[str]:
        return self.runner.notifications

    @property
    def notify(self) -> socket.socket:
        return self.runner.notify

    @property
    def log_path(self) -> Path:
        return self.runner.log_path

    def daemon_env(self) -> dict[str, str]:
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
        return self.runner.cli(self.daemon_env(), *args)

    def start_daemon(self, wait_ready: bool = True) -> None:
        self.runner.start(self.daemon_env(), self.run_args)
        if wait_ready:
            self.wait_notification("READY=1", self.ready_timeout)

    def stop_daemon(self) -> int:
        return self.runner.stop()

    def daemon_log(self) -> str:
        return self.runner.log()

    def poll_notifications(self) -> None:
        self.runner.poll_notifications()

    def wait_notification(self, text: str, timeout: float) -> None:
        self.runner.wait_notification(text, timeout)

    def assert_daemon_alive(self) -> None:
        self.runner.assert_alive()

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
        self.files.assert_only_ports_changed()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop_daemon()
        if self.real is not None:
            self.real.close()
        else:
            self.asterisk.stop()
        self.runner.close()


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


def mixed_rig(tmp: Path, fork: str) -> contextlib.AbstractContextManager[Rig]:
    """One box, two drivers: chan_dongle's Huawei sticks beside `fork`'s ("quectel-im",
    "quectel-re") EC25 modules, alternating (MIXED_MODELS)."""
    sims: list[StickSim] = [
        (EC25 if model is EC25_USB else StickSim)(make_imei(i), f"2500100000{i:05d}")
        for i, model in enumerate(MIXED_MODELS)
    ]
    both = f"chan_dongle+{fork}"
    return rig(tmp, len(MIXED_MODELS), models=MIXED_MODELS, sims=sims, personality=both)


def journal(r: Rig, word: str) -> list[str]:
    """The daemon's log lines that hold `word`."""
    return [ln for ln in r.daemon_log().splitlines() if word in ln]


def wait_until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.01)
