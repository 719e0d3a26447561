"""The real Asterisk 20 with the real chan_dongle / chan_quectel, for the real-driver tier.

Built by tests/real/build.sh into a cache outside the checkout. Each instance runs from a
private tree in the test's temp dir (real_asterisk_tree.py: its own asterisk.conf, AMI on a free
loopback port, the chosen driver(s), the rig's config file(s)), in a mount namespace of its own
with the testbed's ttys in its own /dev (real_asterisk_ns.py): nothing outside the test's
sandbox is touched, and it opens the testbed's ttys, where the modem simulators answer.

The same interface as the test Asterisk where the rig needs it: `port`, `start()`, `stop()`,
`devices_snapshot()`, `foreign_bindings`, `hazards`, `wait_for()`, `admin_reload()`. A thread
polls the listing every POLL seconds and records every device seen running an IMEI other
than its section's `imei=` (read from the config files at each poll).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from tests.support.amiproxy import AmiProxy
from tests.support.real_asterisk_ns import NamespacedAsterisk, TtySync
from tests.support.real_asterisk_tree import SECRET, USER, AsteriskTree

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "tests" / "real" / "build.sh"
POLL = 0.02  # s between listings: a foreign binding lasting longer than this is seen
_IMEI_LINE = re.compile(rb"^\s*imei\s*=\s*([0-9]{15})\b", re.M)
_SECTION = re.compile(rb"^\s*\[([^\]]+)\]", re.M)


def build_dir() -> Path | None:
    """The built tree: DONGLED_REAL_ASTERISK, or built (or found cached) from the tarballs
    in DONGLED_REAL_SOURCES. None when neither is given."""
    built = os.environ.get("DONGLED_REAL_ASTERISK")
    if built:
        return Path(built)
    sources = os.environ.get("DONGLED_REAL_SOURCES")
    if not sources:
        return None
    out = subprocess.run(
        ["bash", str(BUILD_SCRIPT), sources], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"building the real Asterisk failed:\n{out.stderr[-4000:]}")
    path = Path(out.stdout.strip().splitlines()[-1])
    os.environ["DONGLED_REAL_ASTERISK"] = str(path)  # once per test session
    return path


def require_build() -> Path:
    """The built tree, or skip (a user's clone without the sources); never skip under CI."""
    path = build_dir()
    if path is None or not (path / ".complete").exists():
        why = (
            "the real-driver tier needs the real Asterisk: set DONGLED_REAL_SOURCES to a "
            "directory with asterisk-20.20.1.tar.xz, chan_dongle-*.tar.xz, "
            "chan_quectel-im-*.tar.xz, chan_quectel-re-*.tar.xz and SHA256SUMS (see "
            "docs/real-drivers.md), or DONGLED_REAL_ASTERISK to a tree tests/real/build.sh made"
        )
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    if os.geteuid() != 0:
        pytest.skip("the real-driver tier mounts a private /run/lock: it needs root")
    return path


def _expected_imeis(confs: Sequence[Path]) -> dict[str, str]:
    """Section name -> its imei=, from the files as they are now."""
    want: dict[str, str] = {}
    for path in confs:
        with contextlib.suppress(OSError):
            text = path.read_bytes()
            heads = [(m.start(), m.group(1).decode()) for m in _SECTION.finditer(text)]
            for m in _IMEI_LINE.finditer(text):
                names = [name for start, name in heads if start < m.start()]
                if names:
                    want[names[-1]] = m.group(1).decode()
    return want


class AmiSession:
    """A plain synchronous AMI session (the harness's own, not dongled's client)."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = bytearray()
        self.next_id = 0
        self._line()  # banner
        reply = self.action({"Action": "Login", "Username": USER, "Secret": SECRET,
                             "Events": "off"})  # fmt: skip
        if reply[0].get("Response") != "Success":
            raise ConnectionError(f"login refused: {reply}")

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("Asterisk hung up")
            self.buf += chunk
        end = self.buf.index(b"\r\n") + 2
        line = bytes(self.buf[:end])
        del self.buf[:end]
        return line

    def _message(self) -> list[tuple[str, str]]:
        pairs: list[tuple[str, str]] = []
        while True:
            line = self._line().decode(errors="replace").rstrip("\r\n")
            if not line:
                if pairs:
                    return pairs
                continue
            key, _, value = line.partition(":")
            pairs.append((key.strip(), value.strip()))

    def action(self, headers: Mapping[str, str], until: str = "") -> list[dict[str, str]]:
        """Send an action; its response, and with `until` the events up to that one."""
        self.next_id += 1
        aid = f"rig{self.next_id}"
        text = "".join(f"{k}: {v}\r\n" for k, v in {**headers, "ActionID": aid}.items())
        self.sock.sendall(text.encode() + b"\r\n")
        out: list[dict[str, str]] = []
        while True:
            pairs = self._message()
            msg = dict(pairs)
            if msg.get("ActionID") != aid:
                continue  # an event or a late reply of no interest
            if "Output" in msg:  # Command: each output line is a header of its own
                msg["Output"] = "\n".join(v for k, v in pairs if k == "Output")
            out.append(msg)
            if not until or msg.get("Event") == until or msg.get("Response") == "Error":
                return out

    def command(self, line: str) -> str:
        return self.action({"Action": "Command", "Command": line})[0].get("Output", "")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def parse_re_devices(output: str) -> dict[str, dict[str, str]]:
    """RE's `quectel show devices` rows: the ID, the State (10 characters wide, after the
    5-wide group), and the IMEI, found by its shape (the header does not match the rows)."""
    devices: dict[str, dict[str, str]] = {}
    for line in output.splitlines()[1:]:
        if len(line) < 30 or not line.strip():
            continue
        name = line[:12].strip()
        state = line[19:29].strip()
        state = {"Not connec": "Not connected", "GSM not re": "GSM not registered"}.get(
            state, state
        )  # the listing cuts State at 10 characters
        imei = next((t for t in line[30:].split() if re.fullmatch(r"[0-9]{15}", t)), "")
        devices[name] = {"Device": name, "State": state, "IMEIState": imei}
    return devices


def parse_re_settings(output: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in output.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


class RealAsterisk:
    """One real Asterisk with `drivers` loaded ("chan_dongle", "quectel-im", "quectel-re"):
    its tree (`AsteriskTree`), its process (`NamespacedAsterisk`), and here what it shows."""

    def __init__(
        self,
        tmp: Path,
        drivers: Sequence[str],
        confs: Mapping[str, Path],
        lock_dir: Path,
        *,
        env: Mapping[str, str],
        interval: float = 1.0,
    ) -> None:
        """`confs`: file name Asterisk reads ("dongle.conf", "quectel.conf") -> the rig's
        file. `env`: the testbed's environment (umockdev's preload and UMOCKDEV_DIR)."""
        self.build = require_build()
        self.tmp = tmp / "asterisk"
        self.drivers = list(drivers)
        self.confs = dict(confs)
        self.lock_dir = lock_dir
        self.env = dict(env)
        self.interval = interval
        self.ami_port = _free_port()
        # dongled talks to Asterisk through a proxy that records its actions and outlives
        # an Asterisk restart (the port dongled was given stays the same).
        self.proxy = AmiProxy(self.ami_port)
        self.proxy.start()
        self.port = self.proxy.port
        self._snapshot: dict[str, dict[str, str]] = {}
        self._foreign: list[tuple[float, str, str, str]] = []
        self._hazards: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self.polls = 0
        self._running: dict[str, str] = {}  # device -> the IMEI the last listing showed
        self.tree = AsteriskTree(self.tmp, self.build, self.drivers, self.confs, self.ami_port)
        self.ttys = TtySync(self.env)
        self.process = NamespacedAsterisk(self.tree, self.build, lock_dir, self.ttys)

    @property
    def log_path(self) -> Path:
        return self.tree.log_path

    def log(self) -> str:
        return self.tree.log()

    # ---- running -------------------------------------------------------------------------

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.process.proc

    def start(self, timeout: float = 30.0) -> None:
        self.process.start()
        proc = self.process.proc
        assert proc is not None
        deadline = time.monotonic() + timeout
        while True:
            try:
                AmiSession(self.ami_port).close()  # AMI answers a login: it is up
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the real Asterisk did not come up (exit {proc.poll()}):\n"
                        f"{self.tree.stdout_path.read_text(errors='replace')[-3000:]}\n"
                        f"{self.log()[-3000:]}"
                    ) from None
                time.sleep(0.1)
        self._stop.clear()
        self._poller = threading.Thread(target=self._poll_loop, daemon=True)
        self._poller.start()
        self.wait_for(lambda: self.polls > 0, 10, what="a first listing")

    def testbed_ttys(self) -> dict[str, str]:
        """The testbed's ttys now: /dev name -> the pty slave it is."""
        return self.ttys.testbed_ttys()

    def sync_ttys(self) -> None:
        """Make Asterisk's /dev show the testbed's ttys as they are now: a vanished stick's
        tty gone at once, a new one bound to its pty. Called by the rig right after each
        plug and unplug."""
        self.process.sync_ttys()

    def stop(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(5)
            self._poller = None
        exited = self.process.stop()
        if exited is not None:
            self._hazard(f"Asterisk had exited by itself: {exited}")

    def close(self) -> None:
        """Stop Asterisk and the proxy in front of it."""
        self.stop()
        self.proxy.stop()

    @property
    def actions(self) -> list[tuple[float, str, dict[str, str]]]:
        """Every action dongled sent (the proxy's record)."""
        return self.proxy.actions

    def restart(self) -> None:
        """Asterisk stopped and started again (the same private tree and AMI port)."""
        self.stop()
        self.start()

    def __enter__(self) -> RealAsterisk:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def alive(self) -> bool:
        return self.process.alive()

    # ---- what it shows -------------------------------------------------------------------

    def listing(self, session: AmiSession) -> dict[str, dict[str, str]]:
        devices: dict[str, dict[str, str]] = {}
        for driver in self.drivers:
            if driver == "quectel-re":
                rows = parse_re_devices(session.command("quectel show devices"))
                for name, row in rows.items():
                    settings = parse_re_settings(
                        session.command(f"quectel show device settings {name}")
                    )
                    row["DataSetting"] = settings.get("Data", "")
                    row["AudioSetting"] = settings.get("Audio", settings.get("Audio UAC", ""))
                    connected = row["State"] not in ("Stopped", "Not connec", "")
                    row["DataState"] = row["DataSetting"] if connected else ""
                    devices[name] = row
                continue
            prefix = "Dongle" if driver == "chan_dongle" else "Quectel"
            for msg in session.action(
                {"Action": f"{prefix}ShowDevices"}, until=f"{prefix}ShowDevicesComplete"
            ):
                if msg.get("Event") == f"{prefix}DeviceEntry":
                    devices[msg["Device"]] = msg
        return devices

    def _poll_loop(self) -> None:
        session: AmiSession | None = None
        while not self._stop.is_set():
            try:
                if session is None:
                    session = AmiSession(self.ami_port)
                devices = self.listing(session)
            except (OSError, ConnectionError, KeyError):
                if session is not None:
                    session.close()
                session = None
                if self.proc is not None and self.proc.poll() is not None:
                    self._hazard(f"Asterisk died: exit {self.proc.returncode}")
                    return
                time.sleep(0.1)
                continue
            want = _expected_imeis(list(self.confs.values()))
            now = time.monotonic()
            with self._lock:
                self._snapshot = devices
                self.polls += 1
                for name, entry in devices.items():
                    imei = entry.get("IMEIState", "")
                    foreign = bool(imei) and name in want and imei != want[name]
                    if foreign and self._running.get(name) != imei:  # a new binding
                        self._foreign.append((now, name, entry.get("DataState", ""), imei))
                    self._running[name] = imei
            time.sleep(POLL)
        if session is not None:
            session.close()

    def _hazard(self, what: str) -> None:
        with self._lock:
            self._hazards.append(what)

    @property
    def crashes(self) -> list[str]:
        return self.hazards

    def wait_for_state(self, device: str, state: str, timeout: float = 5.0) -> dict[str, str]:
        self.wait_for(
            lambda: self.devices_snapshot().get(device, {}).get("State") == state,
            timeout,
            what=f"{device} {state}",
        )
        return self.devices_snapshot()[device]

    @property
    def foreign_bindings(self) -> list[tuple[float, str, str, str]]:
        """(when, device, its data tty, the IMEI it ran) for each time a listing first showed
        a device on a stick other than its section's (polled every POLL s)."""
        with self._lock:
            return list(self._foreign)

    @property
    def hazards(self) -> list[str]:
        """Asterisk crashed or exited by itself, or logged a segfault."""
        with self._lock:
            found = list(self._hazards)
        if "segfault" in self.log().lower():
            found.append("'segfault' in Asterisk's log")
        return found

    def devices_snapshot(self) -> dict[str, dict[str, str]]:
        with self._lock:
            return {k: dict(v) for k, v in self._snapshot.items()}

    def wait_for(self, pred: Callable[[], bool], timeout: float = 5.0, *, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"real Asterisk: no {what} within {timeout:g} s; devices: "
                    f"{_brief(self.devices_snapshot())}"
                )
            if not self.alive():
                raise AssertionError(f"real Asterisk died:\n{self.log()[-3000:]}")
            time.sleep(0.01)

    def cli(self, line: str) -> str:
        """A CLI command over AMI (as an admin's `asterisk -rx`)."""
        session = AmiSession(self.ami_port)
        try:
            return session.command(line)
        finally:
            session.close()

    def admin_reload(self) -> None:
        """An admin's reload of every loaded driver."""
        for driver in self.drivers:
            self.cli("dongle reload now" if driver == "chan_dongle" else "quectel reload now")


def _brief(devices: Mapping[str, Mapping[str, str]]) -> str:
    return "; ".join(
        f"{n}: {d.get('State')} {d.get('IMEIState')} {d.get('DataState')}"
        for n, d in sorted(devices.items())
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def copy_log(asterisk: RealAsterisk, dest: Path) -> None:
    """Keep Asterisk's log beside the test's other files (for a failing test's report)."""
    with contextlib.suppress(OSError):
        shutil.copy(asterisk.log_path, dest)
