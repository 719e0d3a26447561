"""Talking AT to a simulated stick's port from a test: open it, send a command, read up to
its final result code."""

from __future__ import annotations

import os
import select
import time

FINALS = (b"\r\nOK\r\n", b"\r\nERROR\r\n")


def read_until_final(fd: int, timeout: float = 2.0) -> bytes:
    """Read from an opener fd until a final result code (or the timeout)."""
    deadline = time.monotonic() + timeout
    out = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        out += chunk
        if out.endswith(FINALS) or (b"+CME ERROR:" in out and out.endswith(b"\r\n")):
            break
    return out


def opener(path: str) -> int:
    return os.open(path, os.O_RDWR | os.O_NOCTTY)


def at(fd: int, command: str, timeout: float = 2.0) -> bytes:
    os.write(fd, command.encode() + b"\r")
    return read_until_final(fd, timeout)
