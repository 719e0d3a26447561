"""The test Asterisk for the systemd box, run in the box's PID namespace.

chan_dongle and dongled judge each other's UUCP locks by pid: a lock whose pid is no live
process is stale. On a real machine both run in one PID namespace. The test Asterisk in the
pytest process would be outside the box's: the unit would take its locks for stale ones and
could not tell a port Asterisk holds from a stuck one. So the systemd tests start it in a
process of its own, entered into the box's PID namespace (`nsenter -p`), but in the host's
mount namespace and under umockdev's preload, where the testbed's ttys are.

`python -m tests.support.box_asterisk CONF LOCK_DIR` prints the AMI port, serves until its
standard input closes, then stops. `show_devices()` is what the tests ask it, over AMI.
"""

from __future__ import annotations

import socket
import sys

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


def _serve(conf: str, lock_dir: str) -> None:
    from tests.support.fake_asterisk import FakeAsterisk

    asterisk = FakeAsterisk(conf, lock_dir=lock_dir, interval=1.0)
    asterisk.start()
    try:
        print(asterisk.port, flush=True)
        sys.stdin.read()
    finally:
        asterisk.stop()


if __name__ == "__main__":
    _serve(sys.argv[1], sys.argv[2])
