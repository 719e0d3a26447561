"""An admin's first day, replayed on a fresh box (issue 22): README.md's steps, then the day.

For each channel driver (chan_dongle, chan_quectel IM, chan_quectel RE) a throw-away machine
with a real systemd 252 and journald (tests/support/systemd_box.py: an overlay of this Debian 12
machine whose upper layer is a tmpfs; never the live root) gets what installing Asterisk leaves
(its user, the driver's file without `imei=`), then the admin follows the README literally:

- install: the Debian package (`sudo ./build-deb.sh && sudo apt install ./dist/dongled_*.deb`,
  built in the box from the tracked files unless `--deb` names one already built);
- step 1: `imei=` added by hand to each section (an editor's save);
- step 2: the README's `[dongled]` user in manager.conf, the secret file made with the README's
  two commands, and the keys set under the template's existing `[ami]`;
- step 3: `systemctl restart dongled`, `dongled status`.

Then the day: a hand edit that swaps two sections' ports (saved, no reload), the same slip
followed at once by the admin's reload of the driver (a foreign binding), a bad settings file
(the README's old step 2: a second `[ami]`), `dongled status --check` with every line right and
with a stick pulled. It prints what the admin types and sees, in order, and the times
(`time.monotonic()`, CLOCK_MONOTONIC, shared by every process of the machine).

What is not real, and why:
- Asterisk is the test Asterisk (tests/support/box_asterisk.py: a real AMI server on loopback
  with a model of each driver), run in the box's PID namespace, on an ephemeral port: the
  settings also get `port =` (the README keeps the default 5038). It enforces the user, secret
  and read/write classes of the README's manager.conf block (it reads no manager.conf itself);
  for chan_quectel the write classes the README's chan_quectel section names.
- The sticks are umockdev's testbed with pty modem simulators, reaching the packaged unit
  through the test-only drop-in of tests/project/test_deb_package.py; what the udev rules do to a
  stick's ttys (group dialout, 0660) the script does (the box has no udevd).
- The admin's reload is the test Asterisk's `dongle reload now` (`core reload` for
  chan_quectel), asked over its standard input instead of typed at `asterisk -r`.

Run as root from the repository root (about 2 minutes a driver with `--deb`):

    umockdev-wrapper .venv/bin/python -m bench.admin_day [--runs 5] [--deb dist/dongled_*.deb]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from bench.edits import timeline
from tests.support.box_site import APT_ENV, DROPIN_TESTBED
from tests.support.devguard import RUNNER_ENV, SITE_DIR
from tests.support.modemsim import E1550_USB, EC25, EC25_USB, StickSim, UsbModel
from tests.support.rig import ROOT, make_imei
from tests.support.systemd_box import SystemdBox, SystemdBoxError, box_unavailable_reason
from tests.support.testbed import FakeStick, Testbed

DRIVERS = ("chan_dongle", "quectel-im", "quectel-re")
SETTING = {
    "chan_dongle": "chan_dongle",
    "quectel-im": "chan_quectel-im",
    "quectel-re": "chan_quectel-re",
}
STOP = {"chan_dongle": "DongleStop", "quectel-im": "QuectelStop", "quectel-re": "quectel stop"}
SETTINGS = "/etc/dongled/dongled.toml"
N = 2

_HEADER = """\
; {driver} configuration -- as the admin keeps it, comments and all
[general]
interval={interval}                     ; seconds between the driver's reconnect passes

[defaults]
context=from-gsm
group=0
rxgain=0
txgain=0
"""


def out(text: str = "") -> None:
    print(text, flush=True)


def step(title: str) -> None:
    out(f"\n=== {title}")


# ---- the README, read as the admin reads it -----------------------------------------------


def readme_manager_block(readme: str) -> str:
    """Step 2's manager.conf `[dongled]` block."""
    part = readme[readme.index("**2. Give dongled") :]
    m = re.search(r"```ini\n(\[dongled\]\n.*?)```", part, re.S)
    if m is None:
        raise SystemExit("README.md: step 2 has no ```ini [dongled] block")
    return m.group(1)


def readme_classes(readme: str, block: str, driver: str) -> tuple[str, str]:
    """(read, write) classes for `driver`: step 2's block, or for chan_quectel the write
    classes its `driver = ...` line in the README's chan_quectel section names."""
    read = re.search(r"^read = (\S+)", block, re.M)
    write = re.search(r"^write = (\S+)", block, re.M)
    if read is None or write is None:
        raise SystemExit("README.md: step 2's block lacks read = or write =")
    if driver == "chan_dongle":
        return read.group(1), write.group(1)
    line = re.search(rf'driver = "{SETTING[driver]}"[^\n]*?`write = ([\w,]+)`', readme)
    if line is None:
        raise SystemExit(f"README.md names no write classes for {SETTING[driver]}")
    return read.group(1), line.group(1)


# ---- the test Asterisk ---------------------------------------------------------------------


class Asterisk:
    """tests/support/box_asterisk.py in the box's PID namespace; `ask()` one request."""

    def __init__(
        self,
        box: SystemdBox,
        tb: Testbed,
        driver: str,
        conf: str,
        secret: str,
        read: str,
        write: str,
    ) -> None:
        self._notes = Path(tb.root_dir).parent / f"asterisk-{os.getpid()}-{driver}.err"
        self._seen = 0
        stderr = self._notes.open("w")
        env = {
            **tb.env(),
            "LD_PRELOAD": "libumockdev-preload.so.0",
            "PYTHONPATH": f"{SITE_DIR}:{ROOT}",
            RUNNER_ENV: str(os.getpid()),
        }
        self.proc = subprocess.Popen(
            [
                "nsenter",
                "-t",
                str(box.pid),
                "-p",
                "--",
                sys.executable,
                "-m",
                "tests.support.box_asterisk",
                str(box.path(conf)),
                str(box.path("/run/lock")),
                "--personality",
                driver,
                "--secret",
                secret,
                "--read",
                read,
                "--write",
                write,
            ],
            env=env,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        stderr.close()
        assert self.proc.stdout is not None
        assert self.proc.stdin is not None
        self._in, self._out = self.proc.stdin, self.proc.stdout
        line = self._out.readline()
        if not line.strip().isdigit():
            self.close()
            raise SystemdBoxError(f"the test Asterisk did not start: {line!r}")
        self.port = int(line)

    def ask(self, request: str) -> object:
        self._in.write(request + "\n")
        self._in.flush()
        return json.loads(self._out.readline())

    def devices(self) -> dict[str, dict[str, str]]:
        got = self.ask("devices")
        assert isinstance(got, dict)
        return got

    def records(self) -> dict[str, list[list[Any]]]:
        got = self.ask("records")
        assert isinstance(got, dict)
        return got

    def notes(self) -> list[str]:
        """What the test Asterisk's model said (stderr) since the last call: the hazards a
        real driver would run into (an admin's reload onto ports another device holds)."""
        text = self._notes.read_text(errors="replace")
        new, self._seen = text[self._seen :], len(text)
        return [f"(test Asterisk: {line})" for line in new.splitlines() if line.strip()]

    def close(self) -> None:
        try:
            self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


# ---- one driver's day ----------------------------------------------------------------------


class Day:
    def __init__(self, driver: str, tb: Testbed, box: SystemdBox, readme: str) -> None:
        self.driver, self.tb, self.box, self.readme = driver, tb, box, readme
        self.conf = (
            "/etc/asterisk/dongle.conf" if driver == "chan_dongle" else "/etc/asterisk/quectel.conf"
        )
        model: UsbModel = E1550_USB if driver == "chan_dongle" else EC25_USB
        self.imeis = [make_imei(900 + i) for i in range(N)]
        sims = [
            StickSim(imei, f"25001000009{i:04d}")
            if driver == "chan_dongle"
            else EC25(imei, f"25001000009{i:04d}")
            for i, imei in enumerate(self.imeis)
        ]
        per = len(model.interfaces)
        self.next_tty = per * N
        self.sticks: list[FakeStick] = [
            tb.add_stick(model, sims[i], list(range(per * i, per * (i + 1))), usb_port=str(i + 1))
            for i in range(N)
        ]
        self.asterisk: Asterisk | None = None
        self.figures: dict[str, list[float]] = {}

    # -- what the admin types, and sees --

    def sh(
        self, command: str, *, show: bool = True, lines: int = 0
    ) -> subprocess.CompletedProcess[str]:
        """`command` in the box, as root with sudo's PATH, printed as the admin sees it."""
        proc = self.box.run("sh", "-c", command, check=False, cwd="/root", env=APT_ENV, timeout=600)
        if show:
            text = (proc.stdout + proc.stderr).rstrip("\n")
            if lines and text.count("\n") >= lines:
                text = "\n".join(text.splitlines()[-lines:])
                text = f"[... last {lines} lines]\n{text}"
            out(f"# {command}")
            if text:
                out(text)
            out(f"[exit {proc.returncode}]")
        return proc

    def grant(self, stick: FakeStick) -> None:
        """What the udev rules do to a stick's ttys (the box has no udevd)."""
        dialout = int(self.box.run("getent", "group", "dialout").stdout.split(":")[2])
        for port in stick.ports.values():
            pty = os.readlink(os.path.join(self.tb.root_dir, "dev", f"ttyUSB{port.tty_number}"))
            os.chown(pty, -1, dialout)
            os.chmod(pty, 0o660)

    def save(self, text: str) -> None:
        """The admin's editor saving the driver's file: a new file, renamed over the old one,
        with its owner and mode kept (vim as root does this)."""
        target = self.box.path(self.conf)
        st = target.stat()
        tmp = target.parent / f".{target.name}.swp-save"
        tmp.write_text(text)
        os.chown(tmp, st.st_uid, st.st_gid)
        os.chmod(tmp, st.st_mode & 0o7777)
        os.replace(tmp, target)

    def section(self, i: int, with_imei: bool) -> str:
        s = self.sticks[i]
        imei = f"imei={self.imeis[i]}\n" if with_imei else ""
        return (
            f"\n[dongle{i}]\n{imei}data={s.data_port.devnode}\naudio={s.audio_port.devnode}\n"
            f"context=city-{i}\n"
        )

    def conf_text(self, with_imei: bool) -> str:
        name = "chan_dongle" if self.driver == "chan_dongle" else "chan_quectel"
        # RE opens a device one interval after load and dongled reads it: the test's 1 s
        interval = 1 if self.driver == "quectel-re" else 15
        return _HEADER.format(driver=name, interval=interval) + "".join(
            self.section(i, with_imei) for i in range(N)
        )

    def right(self, i: int, devices: dict[str, dict[str, str]] | None = None) -> bool:
        entry = (devices if devices is not None else self.ast.devices()).get(f"dongle{i}")
        s = self.sticks[i]
        return (
            entry is not None
            and entry.get("State") == "Free"
            and entry.get("IMEIState") == self.imeis[i]
            and entry.get("DataState") == s.data_port.devnode
            and entry.get("AudioSetting") == s.audio_port.devnode
        )

    def all_right(self) -> bool:
        devices = self.ast.devices()
        return all(self.right(i, devices) for i in range(N))

    @property
    def ast(self) -> Asterisk:
        assert self.asterisk is not None
        return self.asterisk

    def wait(
        self, pred: Callable[[], bool], timeout: float, what: str, poll: float = 0.005
    ) -> float:
        start = time.monotonic()
        while not pred():
            if time.monotonic() - start > timeout:
                raise AssertionError(
                    f"not within {timeout} s: {what}\n"
                    + self.box.journal("-u", "dongled", "-n", "40", "-o", "short-precise")
                )
            time.sleep(poll)
        return time.monotonic() - start

    def journal_since(self, wall: float, grep: str = "") -> None:
        args = f"--since=@{int(wall)} -o short-precise"
        cmd = f"journalctl -u dongled {args} --no-pager" + (
            f" | grep -E {shlex.quote(grep)}" if grep else ""
        )
        self.sh(cmd)

    # -- the README --

    def asterisk_installed(self) -> None:
        step(f"Before dongled: Asterisk with {SETTING[self.driver]} installed ({self.driver})")
        self.box.run("rm", "-f", "/usr/sbin/policy-rc.d")  # Docker's: no part of a booted box
        self.box.run(
            "useradd", "--system", "--user-group", "--home-dir", "/var/lib/asterisk", "asterisk"
        )
        for home in ("/etc/asterisk", "/var/lib/asterisk"):
            self.box.run("install", "-d", "-o", "asterisk", "-g", "asterisk", home)
        self.box.write(self.conf, self.conf_text(with_imei=False))
        for stick in self.sticks:
            self.grant(stick)
        # the README's manager.conf user, as the admin will add it in step 2; the test
        # Asterisk enforces the same user, secret and classes from the start
        self.block = readme_manager_block(self.readme)
        self.secret = re.search(r"^secret = (\S+)", self.block, re.M).group(1)  # type: ignore[union-attr]
        read, write = readme_classes(self.readme, self.block, self.driver)
        self.asterisk = Asterisk(
            self.box, self.tb, self.driver, self.conf, self.secret, read, write
        )
        self.wait(self.all_right, 30, "the test Asterisk runs every stick")
        self.sh(f"ls -l {self.conf}; cat {self.conf}")
        out(f"(the test Asterisk: AMI on 127.0.0.1:{self.ast.port}, user dongled,")
        out(f" read = {read}, write = {write}, as the README's manager.conf block says)")
        self.box.write("/etc/systemd/system/dongled.service.d/50-testbed.conf", DROPIN_TESTBED)

    def install(self, deb: str | None) -> str:
        step("Install (README: on Debian, the package)")
        box = self.box
        files = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout
        box.path("/root/dongled").mkdir()
        tar = subprocess.run(
            ["tar", "--null", "-T", "-", "-cf", "-"],
            cwd=ROOT,
            input=files,
            capture_output=True,
            check=True,
        )
        subprocess.run(
            ["tar", "-xf", "-", "-C", str(box.path("/root/dongled"))], input=tar.stdout, check=True
        )
        if deb is None:
            self.sh("cd /root/dongled && ./build-deb.sh", lines=3)
            built = sorted(box.path("/root/dongled/dist").glob("dongled_*.deb"))
            if not built:
                raise SystemExit("build-deb.sh built nothing")
            deb = str(
                Path(tempfile.mkdtemp(prefix="dongled-day-deb-", dir="/var/tmp")) / built[-1].name
            )
            shutil.copy(built[-1], deb)
        else:
            out(f"(the package built once by ./build-deb.sh in the first box: {Path(deb).name})")
            (box.path("/root/dongled/dist")).mkdir(exist_ok=True)
            shutil.copy(deb, box.path(f"/root/dongled/dist/{Path(deb).name}"))
        self.sh("cd /root/dongled && apt install -y ./dist/dongled_*.deb", lines=6)
        self.sh("systemctl --no-pager status dongled", lines=12)
        self.sh("dongled status")
        return deb

    def step1(self) -> None:
        step("Step 1: name each device's stick with imei= (the admin's editor)")
        wall = time.time()
        self.save(self.conf_text(with_imei=True))
        out(f"(saved {self.conf} with imei= in [dongle0] and [dongle1]; a second later:)")
        time.sleep(1.0)
        self.journal_since(wall)
        self.sh(f"grep -E '^\\[|^imei|^data|^audio' {self.conf}")
        self.sh("dongled status")

    def step2(self) -> None:
        step("Step 2: the AMI user (README's block, its secret file, the settings)")
        box = self.box
        manager = f"[general]\nenabled = yes\nbindaddr = 127.0.0.1\n\n{self.block}"
        box.write("/etc/asterisk/manager.conf", manager, 0o640)
        out("(added to /etc/asterisk/manager.conf, then `manager reload`; the test Asterisk")
        out(" enforced the same user, secret and classes from its start)")
        out(self.block.rstrip())
        secret_steps = re.search(r"```sh\n(sudo install -m 0640.*?)```", self.readme, re.S)
        if secret_steps is None:
            raise SystemExit("README.md: step 2 has no `sudo install -m 0640 ...` block")
        for cmd in secret_steps.group(1).splitlines():
            self.sh(cmd)
        text = box.path(SETTINGS).read_text()
        edits = [
            ('# username = "dongled"', 'username = "dongled"'),
            ('# secret_file = ""', 'secret_file = "/etc/dongled/ami-secret"'),
            ("# port = 5038", f"port = {self.ast.port}"),  # test-only: the test Asterisk's port
        ]
        if self.driver != "chan_dongle":  # README, chan_quectel sites
            edits.append(('# driver = "chan_dongle"', f'driver = "{SETTING[self.driver]}"'))
        for old, new in edits:
            if text.count(f"\n{old}\n") != 1:
                raise SystemExit(f"{SETTINGS}: the template has no line {old!r}")
            text = text.replace(f"\n{old}\n", f"\n{new}\n")
        box.path(SETTINGS).write_text(text)
        self.sh(f"grep -nE '^(driver|\\[ami\\]|username|secret_file|port)( |$)' {SETTINGS}")

    def step3(self) -> None:
        step("Step 3: start and check")
        self.sh("systemctl restart dongled")
        took = self.wait(self.all_right, 30, "every device right after the restart")
        out(f"(every device Free on its own stick {took:.2f} s after the restart returned)")
        self.wait(lambda: self.sh("dongled status", show=False).returncode == 0, 10, "status 0")
        self.sh("dongled status")
        self.sh("systemctl --no-pager status dongled", lines=12)

    # -- the day --

    def swapped(self) -> str:
        text = self.box.path(self.conf).read_text()
        a, b = self.sticks
        for x, y in (
            (a.data_port.devnode, b.data_port.devnode),
            (a.audio_port.devnode, b.audio_port.devnode),
        ):
            text = text.replace(x, "\0").replace(y, x).replace("\0", y)
        return text

    def settle(self) -> None:
        self.wait(self.all_right, 30, "every device right")
        self.wait(lambda: self.sh("dongled status", show=False).returncode == 0, 10, "status 0")

    def swap_saved(self, runs: int) -> None:
        step("The day: a slip swaps [dongle0]'s and [dongle1]'s data=/audio=, saved (no reload)")
        path = self.box.path(self.conf)
        for k in range(runs):
            self.settle()
            original = path.read_bytes()
            wall = time.time()
            self.save(self.swapped())
            back = self.wait(partial(_same, path, original), 10, "the file put back")
            right = self.wait(self.all_right, 10, "every device right") + back
            self.figures.setdefault("save -> file put back", []).append(back * 1000)
            self.figures.setdefault("save -> all right", []).append(right * 1000)
            if k == 0:
                out(f"(saved; the file was put back {back * 1000:.0f} ms after the save)")
                self.journal_since(wall, "conf|hand|edit|written|foreign|mismatch")
        out(
            f"save -> file put back, ms, {runs} runs: {_fmt(self.figures['save -> file put back'])}"
        )
        out(f"save -> all right, ms, {runs} runs: {_fmt(self.figures['save -> all right'])}")

    def swap_and_reload(self, runs: int) -> None:
        reload = "dongle reload now" if self.driver == "chan_dongle" else "core reload"
        step(f"The day: the same slip, saved, then at once `{reload}` in the Asterisk CLI")
        path = self.box.path(self.conf)
        slowest: tuple[float, list[str]] = (0.0, [])
        for k in range(runs):
            self.settle()
            original = path.read_bytes()
            before = len(self.ast.records()["foreign"])
            saved = time.monotonic()
            wall = time.time()
            self.save(self.swapped())
            start = time.monotonic()
            self.ast.ask("reload")
            self.wait(partial(_same, path, original), 10, "the file put back")
            self.wait(self.all_right, 20, "every device right")
            right = time.monotonic() - start
            rec = self.ast.records()
            foreign = rec["foreign"][before:]
            self.figures.setdefault("reload -> all right", []).append(right * 1000)
            stops: list[tuple[str, str, str, float | None]] = []
            for t, device, data, imei in foreign:
                stop = _stop_after(rec["actions"], float(t), str(device), STOP[self.driver])
                ms = None if stop is None else (stop - float(t)) * 1000
                stops.append((str(device), str(data), str(imei), ms))
            for *_, ms in stops:  # every one, not only the run's first
                if ms is not None:
                    self.figures.setdefault("foreign binding -> stop", []).append(ms)
            self.figures.setdefault("foreign bindings a run", []).append(len(stops))
            never = [s for s in stops if s[3] is None]
            if never:
                out(f"!! foreign bindings never stopped: {never}")
                self.figures.setdefault("never stopped", []).append(len(never))
            lines = timeline(rec["bindings"], rec["actions"], saved, start)
            if right > slowest[0]:
                slowest = (right, lines)
            if k == 0:
                for line in self.ast.notes():
                    out(line)
                for device, data, imei, ms in stops:
                    out(f"(the test Asterisk's record: {device} came up on {data}, IMEI {imei},")
                    out(f" not its own; dongled's stop {ms if ms is None else round(ms)} ms later)")
                out(f"(every device right {right * 1000:.0f} ms after the reload)")
                self.journal_since(wall, "foreign|mismatch|stop|reload|written|verified")
                self.sh(f"grep -E '^\\[|^data|^audio' {self.conf}")
                self.sh("dongled status")
        self.ast.notes()  # the same hazard each run
        out(f"(the slowest run, {slowest[0] * 1000:.0f} ms: ms from the admin's reload)")
        for line in slowest[1]:
            out(f"  {line}")
        f = self.figures
        out(f"reload -> all right, ms, {runs} runs: {_fmt(f['reload -> all right'])}")
        bound = f.get("foreign binding -> stop", [])
        out(
            f"foreign binding -> its stop, ms ({len(bound)} bindings in {runs} runs): {_fmt(bound)}"
        )

    def bad_settings(self) -> None:
        step("The day: bad settings (a second [ami] appended, the README's old step 2)")
        box = self.box
        good = box.path(SETTINGS).read_text()
        self.sh(f"printf '\\n[ami]\\nusername = \"dongled\"\\n' >> {SETTINGS}")
        self.sh("systemctl restart dongled")
        time.sleep(3.0)  # six times RestartSec=500ms: a restart loop would show by now
        self.sh("systemctl --no-pager status dongled", lines=8)
        props = self.sh(
            "systemctl show dongled -p ActiveState -p Result -p ExecMainStatus -p NRestarts"
        )
        restarts = re.search(r"NRestarts=(\d+)", props.stdout)
        self.figures["bad settings: NRestarts"] = [float(restarts.group(1)) if restarts else -1]
        self.sh("dongled status --check")
        self.save_settings(good)
        out("(the admin deletes the two lines again)")
        self.sh("systemctl restart dongled")
        self.settle()
        self.sh("systemctl is-active dongled")

    def save_settings(self, text: str) -> None:
        path = self.box.path(SETTINGS)
        st = path.stat()
        path.write_text(text)
        os.chown(path, st.st_uid, st.st_gid)

    def checks(self) -> None:
        step("Monitoring: dongled status --check (a Nagios check's first line)")
        self.settle()
        self.sh("dongled status --check")
        self.tb.unplug(self.sticks[1])
        out("(stick 1 pulled out)")
        self.wait(
            lambda: self.sh("dongled status --check", show=False).returncode == 2, 15, "CRITICAL"
        )
        self.sh("dongled status --check")
        self.sh("dongled status")
        per = len(self.sticks[1].ports)
        self.tb.replug(self.sticks[1], list(range(self.next_tty, self.next_tty + per)))
        self.next_tty += per
        self.grant(self.sticks[1])
        out(f"(stick 1 plugged back, now on {self.sticks[1].data_port.devnode})")
        self.wait(lambda: self.sh("dongled status --check", show=False).returncode == 0, 30, "OK")
        self.sh("dongled status --check")


def _same(path: Path, content: bytes) -> bool:
    return path.read_bytes() == content


def _stop_after(actions: Sequence[Sequence[Any]], t: float, device: str, verb: str) -> float | None:
    """When dongled's first stop of `device` after `t` reached the test Asterisk."""
    for at, name, headers in actions:
        said = str(name) if str(name).lower() != "command" else str(headers.get("Command", ""))
        if (
            float(at) > t
            and said.lower().startswith(verb.lower())
            and (headers.get("Device") == device or said.split()[-1] == device)
        ):
            return float(at)
    return None


def _fmt(values: Sequence[float]) -> str:
    if not values:
        return "-"
    s = sorted(values)
    each = ", ".join(f"{v:.0f}" for v in values)
    return f"median {s[len(s) // 2]:.0f}, max {s[-1]:.0f} ({each})"


def one_day(
    driver: str, deb: str | None, runs: int, readme: str
) -> tuple[str | None, dict[str, list[float]]]:
    with Testbed() as tb:
        os.chmod(tb.root_dir, 0o1777)
        os.chmod(os.path.join(tb.root_dir, "ioctl", "_default"), 0o666)
        box = SystemdBox(tb.root_dir)
        day = Day(driver, tb, box, readme)
        try:
            day.asterisk_installed()
            deb = day.install(deb)
            day.step1()
            day.step2()
            day.step3()
            day.swap_saved(runs)
            day.swap_and_reload(runs)
            day.bad_settings()
            day.checks()
        finally:
            if day.asterisk is not None:
                day.asterisk.close()
            box.close()
    return deb, day.figures


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--drivers", default=",".join(DRIVERS))
    p.add_argument(
        "--deb", help="a package built by ./build-deb.sh (default: build it in the first box)"
    )
    p.add_argument("--runs", type=int, default=5, help="of each edit, timed")
    args = p.parse_args(argv)
    reason = box_unavailable_reason()
    if reason:
        raise SystemExit(f"no systemd box here: {reason}")
    readme = (ROOT / "README.md").read_text()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    when = time.strftime("%Y-%m-%d %H:%M")
    out(f"The admin's day, {when} UTC, commit {commit}, kernel {os.uname().release}")
    deb = args.deb
    results = {}
    for driver in args.drivers.split(","):
        deb, results[driver] = one_day(driver, deb, args.runs, readme)
    step("Figures (ms; the box's journal, the unit, the package and the edits all real)")
    for driver, figs in results.items():
        for name, values in figs.items():
            out(f"{driver:12} {name:26} {_fmt(values)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
