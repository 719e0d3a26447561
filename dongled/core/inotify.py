"""A small typed inotify(7) binding over libc (ctypes): enough to watch directories.

Directories, not files: editors save by writing a new file and renaming it over the old one,
which a watch on the old file's inode never sees. The descriptor is non-blocking, so the
event loop reads it with add_reader whenever it is readable.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
from dataclasses import dataclass

__all__ = [
    "IN_ATTRIB",
    "IN_CLOSE_WRITE",
    "IN_CREATE",
    "IN_DELETE",
    "IN_DELETE_SELF",
    "IN_IGNORED",
    "IN_MODIFY",
    "IN_MOVED_FROM",
    "IN_MOVED_TO",
    "IN_MOVE_SELF",
    "IN_Q_OVERFLOW",
    "INotify",
    "Notice",
]

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len (struct inotify_event)


@dataclass(frozen=True, slots=True)
class Notice:
    """One inotify event: the watch it came from, what happened, the entry's name."""

    wd: int
    mask: int
    name: str


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.inotify_init1.argtypes = [ctypes.c_int]
    libc.inotify_init1.restype = ctypes.c_int
    libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    libc.inotify_add_watch.restype = ctypes.c_int
    libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.inotify_rm_watch.restype = ctypes.c_int
    return libc


def _raise(what: str, path: str | None = None) -> None:
    err = ctypes.get_errno()
    raise OSError(err, f"{what}: {os.strerror(err)}", path)


class INotify:
    """One inotify instance. Raises OSError when the kernel refuses (no inotify, limits)."""

    def __init__(self) -> None:
        self._libc = _libc()
        fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            _raise("inotify_init1")
        self._fd: int | None = fd

    def fileno(self) -> int:
        if self._fd is None:
            raise ValueError("inotify instance is closed")
        return self._fd

    def add_watch(self, path: str, mask: int) -> int:
        """Watch the directory `path` for `mask`; returns its watch descriptor (the same one
        again for a directory already watched)."""
        wd = self._libc.inotify_add_watch(self.fileno(), os.fsencode(path), mask | IN_ONLYDIR)
        if wd < 0:
            _raise("inotify_add_watch", path)
        return int(wd)

    def rm_watch(self, wd: int) -> None:
        """Stop a watch; one the kernel already dropped (directory gone) is no error."""
        self._libc.inotify_rm_watch(self.fileno(), wd)

    def read(self) -> list[Notice]:
        """The events queued now (none when there are none: the descriptor never blocks)."""
        try:
            data = os.read(self.fileno(), 65536)
        except BlockingIOError:
            return []
        out: list[Notice] = []
        offset = 0
        while offset + _HEADER.size <= len(data):
            wd, mask, _cookie, length = _HEADER.unpack_from(data, offset)
            offset += _HEADER.size
            raw = data[offset : offset + length].split(b"\0", 1)[0]
            offset += length
            out.append(Notice(wd, mask, os.fsdecode(raw)))
        return out

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
