"""The test Asterisk for the systemd box, run in the box's PID namespace.

chan_dongle and dongled judge each other's UUCP locks by pid: a lock whose pid is no live
process is stale. On a real machine both run in one PID namespace. The test Asterisk in the
pytest process would be outside the box's: the unit would take its locks for stale ones and
could not tell a port Asterisk holds from a stuck one. So the systemd tests start it in a
process of its own, entered into the box's PID namespace (`nsenter -p`), but in the host's
mount namespace and under umockdev's preload, where the testbed's ttys are.

`python -m tests.support.box_asterisk CONF LOCK_DIR` prints the AMI port, serves until its
standard input closes, then stops. `show_devices()` is what the tests ask it, over AMI.

bench/admin_day.py runs it with a channel driver (`--personality`, as
tests/support/fake_asterisk_quectel.py names them), the AMI user's secret and classes as the
admin's manager.conf gives them, and asks it over its standard input, one line each, answered
by one JSON line: `reload` (an admin's `dongle reload now` / `quectel reload now` at the CLI),
`devices` (the device listing) and `records` (foreign bindings and the AMI actions received,
with their CLOCK_MONOTONIC times, which every process of the machine shares).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.support.fake_asterisk import FakeAsterisk

__all__ = ["show_devices"]


def _read_until(sock: socket.socket, buf: bytearray, marker: bytes) -> bytes:
    while marker not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the test Asterisk hung up")
        buf += chunk
    end = buf.index(marker) + len(marker)
    head = bytes(buf[:end])
    del buf[:end]
    return head


def show_devices(port: int, timeout: float = 5.0) -> dict[str, dict[str, str]]:
    """DongleShowDevices over AMI: device name -> its entry's headers."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        buf = bytearray()
        _read_until(sock, buf, b"\r\n")  # banner
        sock.sendall(b"Action: Login\r\nUsername: dongled\r\nSecret: s3cret\r\n\r\n")
        if b"Success" not in _read_until(sock, buf, b"\r\n\r\n"):
            raise ConnectionError("the test Asterisk refused the login")
        sock.sendall(b"Action: DongleShowDevices\r\nActionID: box\r\n\r\n")
        devices: dict[str, dict[str, str]] = {}
        while True:
            block = _read_until(sock, buf, b"\r\n\r\n").decode(errors="replace")
            headers: dict[str, str] = {}
            for line in block.split("\r\n"):
                if ": " in line:
                    key, value = line.split(": ", 1)
                    headers[key] = value
            if headers.get("Event") == "DongleDeviceEntry":
                devices[headers.get("Device", "")] = headers
            if headers.get("EventList") == "Complete" or headers.get("Response") == "Error":
                return devices


def _serve(argv: list[str]) -> None:
    from tests.support.fake_asterisk_quectel import PERSONALITY, make_fake_asterisk
    from tests.support.fake_asterisk_quectel_module import RE

    p = argparse.ArgumentParser()
    p.add_argument("conf")
    p.add_argument("lock_dir")
    p.add_argument("--personality", default="chan_dongle")
    p.add_argument("--secret", default="s3cret")
    p.add_argument("--read", default="system,call", help="the AMI user's read classes")
    p.add_argument("--write", default="system,config,reporting", help="its write classes")
    args = p.parse_args(argv)
    chosen = PERSONALITY[args.personality]  # one driver: its file is `conf`
    dongle = chosen.fork is None
    # RE opens its devices one [general] interval after load: the same 1 s as the passes
    extra: dict[str, object] = {"quectel_interval": 1.0} if chosen.fork is RE else {}
    asterisk = make_fake_asterisk(
        args.personality, lock_dir=args.lock_dir, interval=1.0, secret=args.secret,
        read_classes=args.read.split(","), write_classes=args.write.split(","),
        dongle_conf=args.conf if dongle else None, quectel_conf=None if dongle else args.conf,
        **extra,
    )  # fmt: skip
    asterisk.start()
    try:
        print(asterisk.port, flush=True)
        for line in sys.stdin:
            print(json.dumps(_answer(asterisk, line.strip())), flush=True)
    finally:
        asterisk.stop()


def _answer(asterisk: FakeAsterisk, ask: str) -> object:
    if ask == "reload":
        asterisk.admin_reload()
        return {}
    if ask == "devices":
        return asterisk.devices_snapshot()
    if ask == "records":
        return {
            "foreign": list(asterisk.foreign_bindings),
            "bindings": list(asterisk.bindings_log),
            "actions": list(asterisk.actions),
        }
    return {"error": f"unknown request {ask!r}"}


if __name__ == "__main__":
    _serve(sys.argv[1:])
