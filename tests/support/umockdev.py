"""The umockdev testbed itself, driven through ctypes (no PyGObject): devices from text, uevents,
the pty masters of tty nodes. `tests.support.testbed.Testbed` builds fake sticks on it.

The process owning a `Testbed` must run under ``umockdev-wrapper`` (the preload); so must any
subprocess that should see it, started with ``env=testbed.env()``.

umockdev 0.17.16 behaviour this module works around (seen):

- A new testbed serves ``ioctl/_default`` with a handler that fails every ioctl on a testbed
  node with ENOTTY (pyserial breaks). Deleting it is worse: opening a testbed /dev node then
  makes the preload print "Failed to connect to ioctl socket" and exit(1). The constructor
  replaces it with `_IoctlPassthrough`, which lets every ioctl run for real on the pty.
  Each stick also gets its usbfs node ``/dev/bus/usb/001/NNN``. It is a plain file, and only a
  kernel can reset a port, so `_IoctlPassthrough` answers USBDEVFS_RESET with success itself
  and counts it (`Testbed.usb_resets`).
- ``remove_device()`` sends no uevent, does not remove children, and only unlinks the /dev node
  when the device has an ``A: dev=`` attribute: we send the ``remove`` uevents ourselves, remove
  children first and unlink the node ourselves.
- uevents go to each monitor over an AF_UNIX datagram socket with a non-blocking sendmsg,
  and EAGAIN (more than net.unix.max_dgram_qlen = 10 undelivered events) makes umockdev
  abort() the whole process. The constructor raises that limit to 1024 when it can (root);
  monitors must be created after the Testbed and drained promptly.
- The testbed keeps every tty's pty master in a private table that ``remove_device()`` never
  cleans, and re-adding a node whose name is still in the table (or whose symlink still exists)
  aborts the process. We take each master out of that table right after the tty is added (so
  the port, not the testbed, owns and closes it) and the same ttyUSB number can come back.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import os
import selectors
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar, cast

__all__ = ["DEVICE_LOCK", "TestbedError", "Umockdev", "serialized"]

_GOBJECT_SIZE: Final = 24  # GTypeInstance* + guint ref_count (+pad) + GData*: x86_64
_PRIV_DEV_FD_SLOT: Final = 6  # root_dir, sys_dir, 3 regexes, ev_sender, dev_fd (0.17.x)


_REQ: Final = struct.Struct("=QQQ")  # the preload's ioctl_request: three unsigned longs
_REQ_IOCTL: Final = 1
_REQ_RES: Final = 2
_RES_DONE: Final = 3
_RES_RUN: Final = 4
_USBDEVFS_RESET: Final = 0x5514  # _IO('U', 20), on a /dev/bus/usb node


# The preload is not safe against a /dev lookup in one thread (the test Asterisk's realpath
# and open of a tty) racing the removal of that node in another: it asserts and aborts
# (seen once in a 1000-cycle soak). Every testbed change and the test Asterisk's opens hold
# this lock, so they never interleave.
DEVICE_LOCK = threading.RLock()

_F = TypeVar("_F", bound=Callable[..., Any])


def serialized(fn: _F) -> _F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with DEVICE_LOCK:
            return fn(*args, **kwargs)

    return cast(_F, wrapper)


class _IoctlPassthrough:
    """Serves ``ioctl/_default``: every ioctl on a testbed node runs for real on the pty.

    umockdev's own default handler answers ENOTTY to every ioctl (pyserial's tcgetattr
    fails), and without any socket at ``ioctl/_default`` the preload calls exit(1) when a
    testbed /dev node is opened. The preload protocol: the client sends (1, request, arg);
    we answer (4 = RUN, 0, 0); it runs the real ioctl and sends (2, result, errno); we answer
    (3 = DONE, result, errno). One thread, idle in select(), serves every process of the
    testbed (subprocesses under umockdev-wrapper connect to the same socket path).
    """

    def __init__(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        self._listener.listen(64)
        self._listener.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listener, selectors.EVENT_READ, None)
        self._wake_r, self._wake_w = socket.socketpair()
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._buffers: dict[socket.socket, bytearray] = {}
        self.usb_resets = 0
        self._thread = threading.Thread(target=self._run, name="umockdev-ioctl", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            for key, _ in self._sel.select():
                if key.fileobj is self._wake_r:
                    self._shutdown()
                    return
                if key.fileobj is self._listener:
                    with contextlib.suppress(BlockingIOError):
                        conn = self._listener.accept()[0]
                        self._buffers[conn] = bytearray()
                        self._sel.register(conn, selectors.EVENT_READ, None)
                    continue
                if isinstance(key.fileobj, socket.socket):
                    self._serve(key.fileobj)

    def _serve(self, conn: socket.socket) -> None:
        try:
            data = conn.recv(4096)
        except OSError:
            data = b""
        if not data:
            self._sel.unregister(conn)
            del self._buffers[conn]
            conn.close()
            return
        buf = self._buffers[conn]
        buf += data
        while len(buf) >= _REQ.size:
            cmd, arg1, arg2 = _REQ.unpack_from(buf)
            del buf[: _REQ.size]
            if cmd == _REQ_IOCTL and arg1 == _USBDEVFS_RESET:
                # Only a kernel can reset a port: answer success and count it. What the
                # kernel does next (the stick re-enumerates) is up to the test.
                self.usb_resets += 1
                reply = _REQ.pack(_RES_DONE, 0, 0)
            elif cmd == _REQ_IOCTL:
                reply = _REQ.pack(_RES_RUN, 0, 0)
            elif cmd == _REQ_RES:
                reply = _REQ.pack(_RES_DONE, arg1, arg2)
            else:  # reads/writes are never forwarded for the default handler
                reply = _REQ.pack(_RES_RUN, 0, 0)
            conn.setblocking(True)
            conn.sendall(reply)

    def _shutdown(self) -> None:
        for conn in list(self._buffers):
            conn.close()
        self._buffers.clear()
        self._listener.close()
        self._wake_r.close()
        self._sel.close()

    def close(self) -> None:
        if self._thread.is_alive():
            self._wake_w.send(b"\0")
            self._thread.join()
        self._wake_w.close()


_DGRAM_QLEN: Final = "/proc/sys/net/unix/max_dgram_qlen"
_WANTED_EVENT_QUEUE: Final = 1024


def _raise_event_queue_len(wanted: int) -> int:
    """Raise the AF_UNIX datagram queue limit (root, per network namespace) if it is lower.

    umockdev delivers uevents over AF_UNIX datagram sockets with a non-blocking sendmsg and
    calls abort() on EAGAIN: with the default limit of 10 queued datagrams, a monitor that falls
    behind by 10 events (one 5-port stick is 16 events) kills the process owning the testbed.
    Only sockets created after the change get the new limit. Returns the limit in force.
    """
    try:
        with open(_DGRAM_QLEN, encoding="ascii") as f:
            current = int(f.read())
    except (OSError, ValueError):
        return 0
    if current >= wanted:
        return current
    try:
        with open(_DGRAM_QLEN, "w", encoding="ascii") as f:
            f.write(str(wanted))
    except OSError:
        return current
    return wanted


class TestbedError(RuntimeError):
    """The testbed cannot be used (no preload, libumockdev missing, bad device text)."""

    __test__ = False  # not a pytest test class, despite the name


class _GError(ctypes.Structure):
    _fields_ = [("domain", ctypes.c_uint32), ("code", ctypes.c_int), ("message", ctypes.c_char_p)]


def _load() -> tuple[ctypes.CDLL, ctypes.CDLL, ctypes.CDLL]:
    lib = ctypes.CDLL("libumockdev.so.0")
    glib = ctypes.CDLL("libglib-2.0.so.0")
    gobject = ctypes.CDLL("libgobject-2.0.so.0")
    vp, cp = ctypes.c_void_p, ctypes.c_char_p
    lib.umockdev_testbed_new.restype = vp
    lib.umockdev_testbed_new.argtypes = []
    lib.umockdev_testbed_add_from_string.restype = ctypes.c_int
    lib.umockdev_testbed_add_from_string.argtypes = [vp, cp, ctypes.POINTER(ctypes.c_void_p)]
    lib.umockdev_testbed_uevent.restype = None
    lib.umockdev_testbed_uevent.argtypes = [vp, cp, cp]
    lib.umockdev_testbed_remove_device.restype = None
    lib.umockdev_testbed_remove_device.argtypes = [vp, cp]
    lib.umockdev_testbed_get_dev_fd.restype = ctypes.c_int
    lib.umockdev_testbed_get_dev_fd.argtypes = [vp, cp]
    lib.umockdev_testbed_get_root_dir.restype = vp
    lib.umockdev_testbed_get_root_dir.argtypes = [vp]
    glib.g_free.restype = None
    glib.g_free.argtypes = [vp]
    glib.g_error_free.restype = None
    glib.g_error_free.argtypes = [vp]
    glib.g_hash_table_remove.restype = ctypes.c_int
    glib.g_hash_table_remove.argtypes = [vp, cp]
    gobject.g_object_unref.restype = None
    gobject.g_object_unref.argtypes = [vp]
    return lib, glib, gobject


@dataclass(slots=True)
class _Shared:
    tb: int
    root_dir: str
    in_use: bool = False


_SHARED: list[_Shared] = []


def _shared_testbed(lib: ctypes.CDLL, glib: ctypes.CDLL, gobject: ctypes.CDLL) -> _Shared:
    """The process's one umockdev testbed, made at first use and kept until exit.

    libumockdev 0.17 never frees a testbed's own ioctl listener (its socket, and the eventfd
    of the thread that serves it) after the last unref: about 2.4 fds a testbed, which pushed
    the suite's process past fd 1024, where pyserial's select() fails. Closing those fds
    behind libumockdev's back is no cure: its pending accept then fails with EBADF and it
    aborts the process ("Could not accept new connection", SIGTRAP; seen under load). So a
    process makes one testbed and each `Testbed` borrows it: every Testbed removes what it
    added when it closes, as it always did."""
    if not _SHARED:
        tb = lib.umockdev_testbed_new()
        if not tb:
            raise TestbedError("umockdev_testbed_new failed")
        raw = lib.umockdev_testbed_get_root_dir(tb)
        root_dir = ctypes.string_at(raw).decode()
        glib.g_free(raw)
        _SHARED.append(_Shared(tb=tb, root_dir=root_dir))
        atexit.register(gobject.g_object_unref, tb)  # its directory goes with it
    return _SHARED[0]


class Umockdev:
    """This process's umockdev testbed, borrowed while open (one user at a time: it sets
    $UMOCKDEV_DIR): add devices from text, send uevents, remove devices, take pty masters."""

    def __init__(self) -> None:
        if not self.available():
            raise TestbedError("not running under umockdev-wrapper (libumockdev-preload)")
        self._lib, self._glib, self._gobject = _load()
        shared = _shared_testbed(self._lib, self._glib, self._gobject)
        if shared.in_use:
            raise TestbedError("one Testbed per process at a time")
        shared.in_use = True
        self._shared: _Shared | None = shared
        self._tb: int | None = shared.tb
        self.root_dir: str = shared.root_dir
        self._dev_fd_table = self._find_dev_fd_table(shared.tb)
        self.event_queue_len = _raise_event_queue_len(_WANTED_EVENT_QUEUE)
        self._ioctl = _IoctlPassthrough(os.path.join(self.root_dir, "ioctl", "_default"))

    @staticmethod
    def available() -> bool:
        """Whether this process runs under the umockdev preload (umockdev-wrapper)."""
        try:
            with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
                return "libumockdev-preload" in maps.read()
        except OSError:
            return False

    def _find_dev_fd_table(self, tb: int) -> int:
        """The private GHashTable devnode -> pty master (layout checked against root_dir)."""
        priv = ctypes.c_void_p.from_address(tb + _GOBJECT_SIZE).value
        if not priv:
            raise TestbedError("unexpected UMockdevTestbed layout")
        slots = (ctypes.c_void_p * (_PRIV_DEV_FD_SLOT + 1)).from_address(priv)
        root, sys_dir = slots[0], slots[1]
        if (
            not root
            or not sys_dir
            or ctypes.string_at(root).decode() != self.root_dir
            or ctypes.string_at(sys_dir).decode() != os.path.join(self.root_dir, "sys")
        ):
            raise TestbedError("unexpected UMockdevTestbed private layout (umockdev version?)")
        table = slots[_PRIV_DEV_FD_SLOT]
        if not table:
            raise TestbedError("UMockdevTestbed has no dev_fd table")
        return int(table)

    @property
    def closed(self) -> bool:
        return self._tb is None

    @property
    def _handle(self) -> int:
        if self._tb is None:
            raise TestbedError("testbed is closed")
        return self._tb

    @property
    def usb_resets(self) -> int:
        """USBDEVFS_RESET ioctls sent to any stick's usbfs node so far."""
        return self._ioctl.usb_resets

    def env(self) -> dict[str, str]:
        """os.environ plus UMOCKDEV_DIR (set with setenv(3), invisible to os.environ)."""
        env = dict(os.environ)
        env["UMOCKDEV_DIR"] = self.root_dir
        return env

    @serialized
    def add_from_string(self, text: str) -> None:
        """Add devices in umockdev-record format; each paragraph emits an ``add`` uevent."""
        err = ctypes.c_void_p()
        ok = self._lib.umockdev_testbed_add_from_string(
            self._handle, text.encode(), ctypes.byref(err)
        )
        if err.value:
            gerr = _GError.from_address(err.value)
            message = (gerr.message or b"").decode(errors="replace")
            self._glib.g_error_free(err)
            raise TestbedError(f"add_from_string: {message}")
        if not ok:
            raise TestbedError("add_from_string failed")

    @serialized
    def uevent(self, sys_path: str, action: str) -> None:
        self._lib.umockdev_testbed_uevent(self._handle, sys_path.encode(), action.encode())

    @serialized
    def remove_device(self, sys_path: str) -> None:
        """Remove one device (no event; children are NOT removed: do them first)."""
        self._lib.umockdev_testbed_remove_device(self._handle, sys_path.encode())

    def take_dev_fd(self, devnode: str) -> int:
        """Take the pty master of `devnode` out of the testbed: the caller must close it."""
        fd = int(self._lib.umockdev_testbed_get_dev_fd(self._handle, devnode.encode()))
        if fd < 0:
            raise TestbedError(f"{devnode} has no pty master")
        self._glib.g_hash_table_remove(self._dev_fd_table, devnode.encode())
        return fd

    def close(self) -> None:
        """Give the testbed back: it stays for this process's next user (`_shared_testbed`)."""
        if self._tb is None:
            return
        self._tb = None
        self._ioctl.close()
        if self._shared is not None:
            self._shared.in_use = False
            self._shared = None
