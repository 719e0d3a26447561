"""umockdev testbed driven through ctypes (no PyGObject): fake USB sticks with real uevents.

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

import contextlib
import ctypes
import functools
import itertools
import os
import selectors
import socket
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, TypeVar, cast

from .modemsim import CDROM_MODE_USB, Role, SimPort, StickSim, UsbModel, serve

__all__ = ["FakePort", "FakeSoundCard", "FakeStick", "FakeUsbDevice", "Testbed", "TestbedError"]

HUB_PATH: Final = "/devices/pci0000:00/0000:00:14.0/usb1/1-1"
_ROOT_HUB: Final = "/devices/pci0000:00/0000:00:14.0/usb1"
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


def _serialized(fn: _F) -> _F:
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


@dataclass(slots=True, eq=False)
class FakePort:
    """One ttyUSBn of a fake stick."""

    tty_number: int
    interface: int
    role: Role
    sys_path: str
    """/sys/devices/... of the tty device (SUBSYSTEM=tty)."""
    sim_port: SimPort

    @property
    def devnode(self) -> str:
        return f"/dev/ttyUSB{self.tty_number}"

    @property
    def received(self) -> bytes:
        return self.sim_port.received


@dataclass(slots=True, frozen=True)
class FakeSoundCard:
    """The ALSA card of a module with USB audio: ``sound/cardN`` under its usb_device."""

    number: int
    id: str
    sys_path: str

    @property
    def alsa_name(self) -> str:
        return f"hw:{self.id}"


@dataclass(slots=True, eq=False, kw_only=True)
class FakeUsbDevice:
    """A usb_device in the testbed and the devices under it, parents first."""

    model: UsbModel
    usb_port: str
    devnum: int
    sys_paths: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"1-1.{self.usb_port}"

    @property
    def sys_path(self) -> str:
        """/sys/devices/... of the usb_device (what groups a stick's ports)."""
        return f"/sys{HUB_PATH}/{self.name}"


@dataclass(slots=True, eq=False, kw_only=True)
class FakeStick(FakeUsbDevice):
    """A fake stick: its usb_device, interfaces and ports, served by `sim`."""

    sim: StickSim
    ports: dict[int, FakePort] = field(default_factory=dict)
    """By bInterfaceNumber."""
    plugged: bool = False
    sound_card: FakeSoundCard | None = None
    """Its ALSA card while plugged, if the model has USB audio."""

    @property
    def data_port(self) -> FakePort:
        return self.ports[self.model.data_interface]

    @property
    def audio_port(self) -> FakePort:
        if self.model.audio_interface is None:
            raise LookupError(f"{self.model.name} has no voice port")
        return self.ports[self.model.audio_interface]

    @property
    def tty_numbers(self) -> list[int]:
        return [p.tty_number for p in self.ports.values()]

    def port_by_tty(self, tty_number: int) -> FakePort:
        return next(p for p in self.ports.values() if p.tty_number == tty_number)


def _usbfs_node(devnum: int) -> str:
    return f"bus/usb/001/{devnum:03d}"


def _paragraph(path: str, props: dict[str, str], attrs: dict[str, str], node: str = "") -> str:
    lines = [f"P: {path}"]
    lines += [f"E: {k}={v}" for k, v in props.items()]
    lines += [f"A: {k}={v}" for k, v in attrs.items()]
    if node:
        lines.append(f"N: {node}")
    return "\n".join(lines) + "\n\n"


def _open_fds() -> dict[int, str]:
    """This process's open fds and what each is (/proc/self/fd's link)."""
    out: dict[int, str] = {}
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            out[int(name)] = os.readlink(f"/proc/self/fd/{name}")
    return out


class Testbed:
    """A umockdev testbed (one per process at a time: it sets $UMOCKDEV_DIR)."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self) -> None:
        if not self.available():
            raise TestbedError("not running under umockdev-wrapper (libumockdev-preload)")
        self._lib, self._glib, self._gobject = _load()
        before = _open_fds()
        tb = self._lib.umockdev_testbed_new()
        # libumockdev keeps an eventfd and a socket of each testbed open after its last unref
        # (seen: ~2.4 fds per testbed); the suite's 400-odd testbeds then pushed the test
        # process past fd 1024, where pyserial's select() fails. close() reclaims the eventfds.
        self._own_fds = {fd: target for fd, target in _open_fds().items() if fd not in before}
        if not tb:
            raise TestbedError("umockdev_testbed_new failed")
        self._tb: int | None = tb
        raw = self._lib.umockdev_testbed_get_root_dir(tb)
        self.root_dir: str = ctypes.string_at(raw).decode()
        self._glib.g_free(raw)
        self._dev_fd_table = self._find_dev_fd_table(tb)
        self.event_queue_len = _raise_event_queue_len(_WANTED_EVENT_QUEUE)
        self._ioctl = _IoctlPassthrough(os.path.join(self.root_dir, "ioctl", "_default"))
        self._devnums = itertools.count(2)
        self._devices: list[FakeUsbDevice] = []
        self._base_paths: list[str] = []
        self._add_hub()

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

    # ---- low level -------------------------------------------------------------------------

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

    @_serialized
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

    @_serialized
    def uevent(self, sys_path: str, action: str) -> None:
        self._lib.umockdev_testbed_uevent(self._handle, sys_path.encode(), action.encode())

    @_serialized
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

    # ---- sticks ----------------------------------------------------------------------------

    def _add_hub(self) -> None:
        text = _paragraph(
            _ROOT_HUB,
            {"SUBSYSTEM": "usb", "DEVTYPE": "usb_device", "PRODUCT": "1d6b/2/606"},
            {"idVendor": "1d6b", "idProduct": "0002", "busnum": "1", "devnum": "1"},
        ) + _paragraph(
            HUB_PATH,
            {"SUBSYSTEM": "usb", "DEVTYPE": "usb_device", "PRODUCT": "5e3/608/6062"},
            {
                "idVendor": "05e3",
                "idProduct": "0608",
                "busnum": "1",
                "devnum": "2",
                "product": "USB2.0 Hub",
                "bDeviceClass": "09",
            },
        )
        self.add_from_string(text)
        self._base_paths = [f"/sys{_ROOT_HUB}", f"/sys{HUB_PATH}"]

    def _usb_device_paragraph(self, dev: FakeUsbDevice) -> str:
        model = dev.model
        n_if = max(1, len(model.interfaces))
        return _paragraph(
            f"{HUB_PATH}/{dev.name}",
            {
                "SUBSYSTEM": "usb",
                "DEVTYPE": "usb_device",
                "PRODUCT": f"{int(model.vid, 16):x}/{int(model.pid, 16):x}/0",
                "TYPE": "0/0/0",
                "BUSNUM": "001",
                "DEVNUM": f"{dev.devnum:03d}",
                "DEVNAME": f"/dev/{_usbfs_node(dev.devnum)}",
            },
            {
                "idVendor": model.vid,
                "idProduct": model.pid,
                "busnum": "1",
                "devnum": str(dev.devnum),
                "devpath": f"1.{dev.usb_port}",
                "manufacturer": model.manufacturer,
                "product": model.product,
                "bDeviceClass": "00",
                "bNumInterfaces": f"{n_if:2d}",
                "bConfigurationValue": "1",
                "speed": "480",
                "authorized": "1",  # what the recovery ladder's re-authorize step writes
            },
            node=_usbfs_node(dev.devnum),  # a plain file; its USBDEVFS_RESET is emulated
        )

    @_serialized
    def add_stick(
        self, model: UsbModel, sim: StickSim, tty_numbers: Sequence[int], *, usb_port: str
    ) -> FakeStick:
        """Plug a stick: usb_device -> interfaces -> usb-serial -> tty, with add uevents."""
        stick = FakeStick(model=model, usb_port=usb_port, devnum=0, sim=sim)
        self._plug(stick, tty_numbers)
        self._devices.append(stick)
        return stick

    def _plug(self, stick: FakeStick, tty_numbers: Sequence[int]) -> None:
        model = stick.model
        if len(tty_numbers) != len(model.interfaces):
            raise ValueError(f"{model.name} needs {len(model.interfaces)} tty numbers")
        if stick.plugged:
            raise TestbedError(f"{stick.name} is already plugged")
        stick.devnum = next(self._devnums)
        stick.ports = {}
        dev_path = f"{HUB_PATH}/{stick.name}"
        stick.sys_paths = [f"/sys{dev_path}"]
        self.add_from_string(self._usb_device_paragraph(stick))
        try:
            for (ifnum, role), tty_no in zip(model.interfaces, tty_numbers, strict=True):
                self._add_interface(stick, dev_path, ifnum, role, tty_no)
            if model.sound_interface is not None:
                self._add_sound_card(stick, dev_path, model.sound_interface)
        except BaseException:
            stick.plugged = True
            self._unplug(stick)
            raise
        stick.plugged = True

    def _add_sound_card(self, stick: FakeStick, dev_path: str, ifnum: int) -> None:
        """A USB Audio Class interface and its ALSA card, as snd-usb-audio registers it: the
        lowest free card number, and the model's id made unique with "_1", "_2"... (ALSA)."""
        cards = [d.sound_card for d in self._devices if isinstance(d, FakeStick)]
        taken = {c for c in cards if c is not None}
        number = min(set(range(len(taken) + 1)) - {c.number for c in taken})
        ids = {c.id for c in taken}
        base = stick.model.sound_card_id or "Audio"
        names = itertools.chain([base], (f"{base}_{n}" for n in itertools.count(1)))
        card_id = next(name for name in names if name not in ids)
        if_path = f"{dev_path}/{stick.name}:1.{ifnum}"
        card_path = f"{if_path}/sound/card{number}"
        text = _paragraph(
            if_path,
            {
                "SUBSYSTEM": "usb",
                "DEVTYPE": "usb_interface",
                "DRIVER": "snd-usb-audio",
                "INTERFACE": "1/1/0",
            },
            {"bInterfaceNumber": f"{ifnum:02x}", "bInterfaceClass": "01"},
        ) + _paragraph(card_path, {"SUBSYSTEM": "sound"}, {"id": card_id, "number": str(number)})
        stick.sys_paths += [f"/sys{if_path}", f"/sys{card_path}"]
        self.add_from_string(text)
        stick.sound_card = FakeSoundCard(number, card_id, f"/sys{card_path}")

    def _add_interface(
        self, stick: FakeStick, dev_path: str, ifnum: int, role: Role, tty_no: int
    ) -> None:
        if_path = f"{dev_path}/{stick.name}:1.{ifnum}"
        serial_path = f"{if_path}/ttyUSB{tty_no}"
        tty_path = f"{serial_path}/tty/ttyUSB{tty_no}"
        devnode = f"/dev/ttyUSB{tty_no}"
        text = (
            _paragraph(
                if_path,
                {
                    "SUBSYSTEM": "usb",
                    "DEVTYPE": "usb_interface",
                    "DRIVER": "option",
                    "INTERFACE": "255/255/255",
                    "PRODUCT": f"{int(stick.model.vid, 16):x}/{int(stick.model.pid, 16):x}/0",
                },
                {
                    "bInterfaceNumber": f"{ifnum:02x}",
                    "bAlternateSetting": " 0",
                    "bInterfaceClass": "ff",
                    "bInterfaceSubClass": "ff",
                    "bInterfaceProtocol": "ff",
                    "bNumEndpoints": "03",
                },
            )
            + _paragraph(
                serial_path,
                {"SUBSYSTEM": "usb-serial", "DRIVER": "option1"},
                {"port_number": "0"},
            )
            + _paragraph(
                tty_path,
                {
                    "SUBSYSTEM": "tty",
                    "DEVNAME": devnode,
                    "MAJOR": "188",
                    "MINOR": str(tty_no),
                },
                {},
                node=f"ttyUSB{tty_no}",
            )
        )
        stick.sys_paths += [f"/sys{if_path}", f"/sys{serial_path}", f"/sys{tty_path}"]
        self.add_from_string(text)
        master = self.take_dev_fd(devnode)
        try:
            sim_port = serve(stick.sim, master, role, f"ttyUSB{tty_no}")
        except BaseException:
            os.close(master)
            raise
        stick.ports[ifnum] = FakePort(tty_no, ifnum, role, f"/sys{tty_path}", sim_port)

    @_serialized
    def add_cdrom(self, *, usb_port: str, model: UsbModel = CDROM_MODE_USB) -> FakeUsbDevice:
        """A stick still in "CD-ROM mode": usb_device + one mass-storage interface, no tty."""
        dev = FakeUsbDevice(model=model, usb_port=usb_port, devnum=next(self._devnums))
        dev_path = f"{HUB_PATH}/{dev.name}"
        if_path = f"{dev_path}/{dev.name}:1.0"
        text = self._usb_device_paragraph(dev) + _paragraph(
            if_path,
            {
                "SUBSYSTEM": "usb",
                "DEVTYPE": "usb_interface",
                "DRIVER": "usb-storage",
                "INTERFACE": "8/6/80",
            },
            {
                "bInterfaceNumber": "00",
                "bInterfaceClass": "08",
                "bInterfaceSubClass": "06",
                "bInterfaceProtocol": "50",
            },
        )
        dev.sys_paths = [f"/sys{dev_path}", f"/sys{if_path}"]
        self.add_from_string(text)
        self._devices.append(dev)
        return dev

    def _remove_tree(self, dev: FakeUsbDevice) -> None:
        # remove events children first (tty, usb-serial, interface per interface; the device
        # last), then remove_device children first, then our own leftovers (the node symlink)
        for path in reversed(dev.sys_paths):
            self.uevent(path, "remove")
        for path in reversed(dev.sys_paths):
            if os.path.isdir(self.root_dir + path):
                self.remove_device(path)
        nodes = [_usbfs_node(dev.devnum)]
        if isinstance(dev, FakeStick):
            nodes += [f"ttyUSB{port.tty_number}" for port in dev.ports.values()]
        for name in nodes:
            node = os.path.join(self.root_dir, "dev", name)
            if os.path.lexists(node):
                os.unlink(node)
        dev.sys_paths = []

    def _unplug(self, stick: FakeStick) -> None:
        if not stick.plugged:
            return
        for port in stick.ports.values():  # the kernel hangs the ttys up first
            port.sim_port.unplug()
        self._remove_tree(stick)
        stick.plugged = False
        stick.sound_card = None

    @_serialized
    def unplug(self, device: FakeUsbDevice) -> None:
        """Pull the stick: ports hang up (opener sees HUP/EIO), remove uevents, sysfs gone."""
        if isinstance(device, FakeStick):
            self._unplug(device)
        else:
            self._remove_tree(device)
        if device in self._devices:
            self._devices.remove(device)

    @_serialized
    def rename_card(self, stick: FakeStick, card_id: str) -> FakeSoundCard:
        """Give the module's ALSA card another id in place, as writing its `id` attribute
        (or a udev rule) does; sends no uevent of its own (`uevent` does)."""
        card = stick.sound_card
        if card is None:
            raise TestbedError(f"{stick.name} has no sound card")
        with open(f"{self.root_dir}{card.sys_path}/id", "w", encoding="ascii") as f:
            f.write(card_id + "\n")
        stick.sound_card = FakeSoundCard(card.number, card_id, card.sys_path)
        return stick.sound_card

    @_serialized
    def replug(self, stick: FakeStick, tty_numbers: Sequence[int]) -> FakeStick:
        """The same stick (same sim, same USB port) comes back, on `tty_numbers`."""
        if stick.plugged:
            self.unplug(stick)
        self._plug(stick, tty_numbers)
        self._devices.append(stick)
        return stick

    @property
    def devices(self) -> Iterator[FakeUsbDevice]:
        return iter(list(self._devices))

    def close(self) -> None:
        """Unplug everything and destroy the testbed (its directory too)."""
        if self._tb is None:
            return
        for dev in reversed(self._devices):
            self.unplug(dev)
        for path in reversed(self._base_paths):
            self.uevent(path, "remove")
            self.remove_device(path)
        self._gobject.g_object_unref(self._tb)
        self._tb = None
        self._ioctl.close()
        now = _open_fds()
        for fd, target in self._own_fds.items():
            # Not its socket (the ioctl listener): closing it made umockdev abort the process
            # now and then ("Could not accept new connection: Bad file descriptor").
            if now.get(fd) == target and target.startswith("anon_inode:[eventfd]"):
                with contextlib.suppress(OSError):
                    os.close(fd)

    def __enter__(self) -> Testbed:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
