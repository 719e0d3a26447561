"""chan_dongle's device state machine for the test Asterisk, run for real against real ttys.

Everything here runs on the FakeAsterisk's own event loop thread, except `Journal`, whose
methods are thread-safe (the test thread reads it while the loop writes it).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import re
import termios
from collections.abc import Callable
from dataclasses import dataclass, field

from .fake_asterisk_conf import ConfFile, ConfParseError, parse_conf
from .fake_asterisk_control import DeviceControl
from .fake_asterisk_journal import Headers, Journal
from .fake_asterisk_ttys import RefusedError, TtyClaims

_LOGGER = logging.getLogger(__name__)

EmitEvent = Callable[[str, Headers], None]

# Keys whose change makes a reload restart the device (chan_dongle's reload.c).
_RESTART_KEYS = ("u2diag", "resetdongle", "callwaiting")
_FINALS = ("OK", "ERROR", "COMMAND NOT SUPPORT", "TOO MANY PARAMETERS")
_FINAL_PREFIXES = ("+CME ERROR", "+CMS ERROR")
_UNSOLICITED = ("RING", "NO CARRIER", "BUSY", "NO ANSWER", "BOOT", "RSSI", "MODE")
_DIGITS = re.compile(r"^(?:\+C(?:GSN|IMI):\s*)?(\d{6,17})$")
# The +CREG <stat> names of chan_dongle's GSM_regstate2str() (chan_quectel IM has the same):
# 0..5, anything else (-1: not connected or not asked yet) "Unknown".
_REG_NAMES = (
    "Not registered, not searching",
    "Registered, home network",
    "Not registered, but searching",
    "Registration denied",
    "Unknown",
    "Registered, roaming",
)
_REGISTERED = frozenset({1, 5})  # what chan_dongle's at_parse_creg() counts as registered


def regstate_name(status: int) -> str:
    """`GSMRegistrationStatus` as chan_dongle prints a +CREG <stat>."""
    return _REG_NAMES[status] if 0 <= status < len(_REG_NAMES) else "Unknown"


def rssi_text(rssi: int) -> str:
    """`RSSI` as chan_dongle prints its +CSQ/^RSSI value: the number, then rssi2dBm()."""
    if rssi <= 0:
        dbm = "<= -113 dBm"
    elif rssi <= 30:
        dbm = f"{2 * rssi - 113} dBm"
    elif rssi == 31:
        dbm = ">= -51 dBm"
    else:
        dbm = "unknown or unmeasurable"
    return f"{rssi}, {dbm}"


_MAX_LINE_BUFFER = 4096

# Settings shown in DongleDeviceEntry, with chan_dongle's defaults: (field, conf key, default).
_ENTRY_SETTINGS = (
    ("ChannelLanguage", "language", "en"),
    ("Context", "context", "default"),
    ("Exten", "exten", ""),
    ("Group", "group", "0"),
    ("RXGain", "rxgain", "0"),
    ("TXGain", "txgain", "0"),
    ("U2DIAG", "u2diag", "-1"),
    ("UseCallingPres", "usecallingpres", "No"),
    ("DefaultCallingPres", "callingpres", "Presentation Allowed, Passed Screen"),
    ("AutoDeleteSMS", "autodeletesms", "Yes"),
    ("DisableSMS", "disablesms", "No"),
    ("ResetDongle", "resetdongle", "Yes"),
    ("SMSPDU", "smspdu", "Yes"),
    ("CallWaitingSetting", "callwaiting", "auto"),
    ("DTMF", "dtmf", "relax"),
    ("MinimalDTMFGap", "mindtmfgap", "45"),
    ("MinimalDTMFDuration", "mindtmfduration", "80"),
    ("MinimalDTMFInterval", "mindtmfinterval", "200"),
)


@dataclass(frozen=True, slots=True)
class DeviceSettings:
    name: str
    data: str
    audio: str
    imei: str
    imsi: str
    values: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    def restart_key(self) -> tuple[str, ...]:
        extra = tuple(self.values.get(k, "") for k in _RESTART_KEYS)
        return (self.data, self.audio, self.imei, self.imsi, *extra)


def device_settings(conf: ConfFile, journal: Journal) -> dict[str, DeviceSettings]:
    """chan_dongle's reading of the parsed file: one DeviceSettings per usable device section."""
    defaults = conf.find("defaults")
    result: dict[str, DeviceSettings] = {}
    for section in conf.sections:
        if section.template or section.name in ("general", "defaults"):
            continue
        name = section.name
        if name in result:
            journal.log(f"[{name}] duplicate device section ignored")
            continue
        values: dict[str, str] = {}
        if defaults is not None:
            for key, value in defaults.items:
                values[key] = value
        for key, value in section.items:
            values[key] = value
        data = section.first("data") or ""
        audio = section.first("audio") or ""
        ids = {}
        for key in ("imei", "imsi"):
            value = section.first(key) or ""
            if value and len(value) != 15:
                journal.log(f"[{name}] {key}={value} has not 15 characters: ignored")
                value = ""
            ids[key] = value
        if bool(data) != bool(audio):
            journal.log(f"[{name}] data_tty and audio_tty should use together: skipped")
            continue
        if not data and not ids["imei"] and not ids["imsi"]:
            journal.log(f"[{name}] neither ttys nor imei/imsi set: skipped")
            continue
        result[name] = DeviceSettings(name, data, audio, ids["imei"], ids["imsi"], values)
    return result


class PortLostError(Exception):
    pass


class AtPort:
    """The open data and audio ttys of one device; AT lines from the data tty via add_reader."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        data_fd: int,
        audio_fd: int,
        on_lost: Callable[[AtPort, str], None],
        on_crash: Callable[[str], None],
        on_unsolicited: Callable[[str], None] | None = None,
    ) -> None:
        self._loop = loop
        self._on_unsolicited = on_unsolicited
        self.data_fd = data_fd
        self.audio_fd = audio_fd
        self._on_lost = on_lost
        self._on_crash = on_crash
        self._buf = bytearray()
        self._lines: asyncio.Queue[str] = asyncio.Queue()
        self.idle = False  # initialized: chan_dongle's command queue is empty
        self.closed = False
        self.reading = True
        loop.add_reader(data_fd, self._readable)

    def _readable(self) -> None:
        try:
            chunk = os.read(self.data_fd, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(f"read error: {exc.strerror}")
            return
        if not chunk:
            self._lost("end of file (hang-up)")
            return
        _LOGGER.debug("fd %d << %r", self.data_fd, chunk)
        self._buf += chunk
        while True:
            cut = min(
                (i for i in (self._buf.find(b"\r"), self._buf.find(b"\n")) if i >= 0), default=-1
            )
            if cut < 0:
                break
            raw = bytes(self._buf[:cut]).decode("ascii", errors="ignore")
            line = "".join(c for c in raw if c.isprintable()).strip()  # line noise dropped
            del self._buf[: cut + 1]
            if not line:
                continue
            if not self.idle:
                self._lines.put_nowait(line)
            elif line in _FINALS or line.startswith(_FINAL_PREFIXES):
                # A final reply with no command in flight: the real chan_dongle pops an
                # empty queue here and segfaults (seen with a shifted stream, 2 of 3 runs).
                self._on_crash(f"final reply {line!r} with an empty command queue")
            elif self._on_unsolicited is not None:
                self._on_unsolicited(line)
        if len(self._buf) > _MAX_LINE_BUFFER:
            self._buf.clear()

    def _lost(self, reason: str) -> None:
        if not self.closed:
            self.close()
            self._on_lost(self, reason)

    def initialized(self) -> None:
        """The init sequence is done: chan_dongle's command queue is empty from now on, so
        a final reply still unread (a shifted stream's last one) has nothing to answer."""
        self.idle = True
        while not self._lines.empty():
            line = self._lines.get_nowait()
            if line in _FINALS or line.startswith(_FINAL_PREFIXES):
                self._on_crash(f"final reply {line!r} with an empty command queue")

    def stop_reading(self) -> None:
        """The monitor thread is terminating: it reads no more, but its fds are still open."""
        if self.reading and not self.closed:
            self.reading = False
            self._loop.remove_reader(self.data_fd)

    def last_command(self) -> None:
        """The terminating monitor's last command (a keep-alive `AT`), whose reply it never
        reads: whoever reads this tty next gets it."""
        with contextlib.suppress(OSError):
            os.write(self.data_fd, b"AT\r")

    def check(self) -> None:
        """The monitor's tcgetattr check: raises OSError when the tty has gone."""
        termios.tcgetattr(self.data_fd)

    async def command(self, cmd: str) -> tuple[str, list[str]]:
        """Send `cmd`, return (final result, other lines); echo lines are dropped.

        The caller bounds the wait (chan_dongle's per-command timeout)."""
        if self.closed:
            raise PortLostError(cmd)
        try:
            os.write(self.data_fd, cmd.encode("ascii") + b"\r")
        except OSError as exc:
            raise PortLostError(f"{cmd}: {exc.strerror}") from exc
        info: list[str] = []
        while True:
            line = await self._lines.get()
            if line.upper() == cmd.upper():
                continue
            if line in _FINALS or line.startswith(_FINAL_PREFIXES):
                return line, info
            info.append(line)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.reading:
            self._loop.remove_reader(self.data_fd)
        for fd in {self.data_fd, self.audio_fd}:
            # A real ttyUSB drops TIOCEXCL when its last opener closes it; the simulator keeps
            # its own pty end open, so clear it by hand or the port stays "exclusive" forever.
            with contextlib.suppress(OSError):
                fcntl.ioctl(fd, termios.TIOCNXCL)
            with contextlib.suppress(OSError):
                os.close(fd)


@dataclass(slots=True)
class Identity:
    manufacturer: str = ""
    model: str = ""
    firmware: str = ""
    imei: str = ""
    imsi: str = ""
    voice: bool = False
    registration: int = -1  # the +CREG <stat>; -1 (the driver's reset value): none yet
    rssi: int = 0  # the +CSQ <rssi>; 0 is the driver's reset value too
    provider: str = "NONE"
    number: str = "Unknown"


class InitError(Exception):
    pass


def answer_plain(lines: list[str]) -> str:
    """The first line that looks like a bare answer (not unsolicited, not junk)."""
    for line in lines:
        if line.startswith(("^", "+")) or line in _UNSOLICITED:
            continue
        if line.isprintable():
            return line
    return ""


def answer_prefixed(lines: list[str], prefix: str) -> str | None:
    for line in lines:
        if line.upper().startswith(prefix):
            return line[len(prefix) :].strip()
    return None


def answer_number(lines: list[str]) -> str:
    for line in lines:
        match = _DIGITS.match(line)
        if match:
            return match.group(1)
    return ""


def reg_status(lines: list[str], prefix: str) -> int | None:
    """The <stat> of a `+CREG: <n>,<stat>[,...]` answer."""
    fields = (answer_prefixed(lines, prefix) or "").split(",")
    if len(fields) >= 2 and fields[1].strip().isdigit():
        return int(fields[1])
    return None


def creg_unsolicited(line: str) -> int | None:
    """The <stat> of an unsolicited `+CREG: <stat>[,<lac>,<ci>]` (after AT+CREG=2); the
    query's form `<n>,<stat>[,...]` has two or four fields."""
    if not line.startswith("+CREG:"):
        return None
    fields = [f.strip() for f in line[len("+CREG:") :].split(",")]
    stat = fields[1] if len(fields) in (2, 4) else fields[0]
    return int(stat) if stat.isdigit() else None


def csq_value(lines: list[str]) -> int | None:
    """The <rssi> of a `+CSQ: <rssi>,<ber>` answer."""
    value = (answer_prefixed(lines, "+CSQ:") or "").split(",")[0].strip()
    return int(value) if value.isdigit() else None


class Device:
    def __init__(self, settings: DeviceSettings) -> None:
        self.settings = settings
        self.state = "Not connected"
        self.desired = "start"
        self.port: AtPort | None = None
        self.identity = Identity()
        self.locks: list[tuple[str, bytes]] = []  # lock file, the content we wrote
        self.reals: list[str] = []
        self.init_task: asyncio.Task[None] | None = None
        self.closing: asyncio.TimerHandle | None = None  # stopped, ttys not yet let go

    @property
    def name(self) -> str:
        return self.settings.name

    def entry(self) -> dict[str, str]:
        s = self.settings
        ident = self.identity
        connected = self.port is not None
        entry = {
            "Device": s.name,
            "AudioSetting": s.audio,
            "DataSetting": s.data,
            "IMEISetting": s.imei,
            "IMSISetting": s.imsi,
        }
        for name, key, default in _ENTRY_SETTINGS:
            entry[name] = s.values.get(key, default)
        entry.update(
            {
                "State": self.state,
                # The configured paths, connected or not: the real chan_dongle copies them into
                # its state at every connect attempt and again when it disconnects (the model
                # showed empty values for a stopped device, and the release wait waited for
                # them to empty: it never ended against the real one).
                "AudioState": s.audio,
                "DataState": s.data,
                "Voice": "Yes" if ident.voice else "No",
                "SMS": "Yes" if connected else "No",
                "Manufacturer": ident.manufacturer,
                "Model": ident.model,
                "Firmware": ident.firmware,
                "IMEIState": ident.imei,
                "IMSIState": ident.imsi,
                "GSMRegistrationStatus": regstate_name(ident.registration),
                "RSSI": rssi_text(ident.rssi),
                "Mode": "No Service",
                "Submode": "No service",
                "ProviderName": ident.provider,
                "LocationAreaCode": "",
                "CellID": "",
                "SubscriberNumber": ident.number,
                "SMSServiceCenter": "",
                "UseUCS2Encoding": "Yes",
                "USSDUse7BitEncoding": "No",
                "USSDUseUCS2Decoding": "Yes",
                "TasksInQueue": "0",
                "CommandsInQueue": "0",
                "CallWaitingState": "Disabled",
                "CurrentDeviceState": "start" if connected else "stop",
                "DesiredDeviceState": self.desired,
                "CallsChannels": "0",
                "Active": "0",
                "Held": "0",
                "Dialing": "0",
                "Alerting": "0",
                "Incoming": "0",
                "Waiting": "0",
                "Releasing": "0",
                "Initializing": "0",
            }
        )
        return entry


class ChanDongle:
    """The devices of one chan_dongle instance; every method runs on the loop thread."""

    registered: frozenset[int] = _REGISTERED  # +CREG statuses it calls registered
    lock_files = True  # False: RE's TIOCEXCL + flock() (see TtyClaims)

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        conf_path: str,
        *,
        lock_dir: str,
        init_timeout: float,
        journal: Journal,
        emit: EmitEvent,
        close_delay: float = 0.1,
        holders: dict[str, Device] | None = None,
    ) -> None:
        self.loop = loop
        self.close_delay = close_delay
        self._conf_path = conf_path
        self._init_timeout = init_timeout
        self.journal = journal
        self._emit = emit
        self.devices: dict[str, Device] = {}
        self.ttys = TtyClaims(
            lock_dir,
            journal,
            lock_files=self.lock_files,
            holders=holders,
            open_path=self._open_path,
        )
        self.control = DeviceControl(self)
        self._tasks: set[asyncio.Task[None]] = set()

    # --- configuration -------------------------------------------------------------------

    opens_at_load = True  # False: the first interval pass opens the devices

    def _read_settings(self, conf: ConfFile) -> dict[str, DeviceSettings]:
        """The driver's reading of its config file (a chan_quectel fork reads other keys)."""
        return device_settings(conf, self.journal)

    def load(self) -> None:
        """Module load: read the file and open every device (a file that does not parse: none)."""
        try:
            conf = parse_conf(self._conf_path)
        except ConfParseError as exc:
            self.journal.hazard(f"load: dongle.conf does not parse ({exc}): chan_dongle declined")
            return
        for settings in self._read_settings(conf).values():
            device = Device(settings)
            self.devices[device.name] = device
            if self.opens_at_load:
                self.open_device(device)

    def reload(self, source: str) -> None:
        """chan_dongle's reload: restart changed devices and EVERY stopped device."""
        self.journal.count_reload()
        self.journal.log(f"reload ({source})")
        try:
            conf = parse_conf(self._conf_path)
        except ConfParseError as exc:
            self.journal.hazard(
                f"reload ({source}): dongle.conf does not parse ({exc}): the real chan_dongle "
                "may crash Asterisk here; old config kept"
            )
            return
        wanted = self._read_settings(conf)
        for name in [n for n in self.devices if n not in wanted]:
            self.journal.log(f"[{name}] removed by reload")
            self.release(self.devices.pop(name), "removed")
        old = self.devices
        self.devices = {}
        for name, settings in wanted.items():
            device = old.get(name)
            if device is None:
                device = Device(settings)
                self.devices[name] = device
                self.open_device(device)
                continue
            self.devices[name] = device
            changed = device.settings.restart_key() != settings.restart_key()
            stopped = device.desired == "stop"
            device.settings = settings
            if changed:
                self.journal.log(f"[{name}] settings changed: restarting")
                self.release(device, "restart")
            if changed or stopped:
                device.desired = "start"
                self.open_device(device)

    # --- device control (AMI/CLI): see DeviceControl -------------------------------------------

    def interval_pass(self) -> None:
        for device in list(self.devices.values()):
            port = device.port
            if port is not None:
                try:
                    port.check()
                except (OSError, termios.error) as exc:  # termios.error is no OSError
                    self._port_lost(port, f"tcgetattr: {exc}")
            elif device.desired == "start":
                self.open_device(device)

    def entries(self, name: str | None = None) -> list[dict[str, str]]:
        return [d.entry() for d in self.devices.values() if name in (None, "", d.name)]

    def shutdown(self) -> None:
        """Asterisk going away: close every tty. Our lock files are removed (see FakeAsterisk)."""
        for device in self.devices.values():
            self.release(device, "shutdown", events=False)
        self.devices.clear()

    async def aclose(self) -> None:
        self.shutdown()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- opening and closing ------------------------------------------------------------------

    def _port_fail(self, path: str, errno: int) -> None:
        self._event(
            "DonglePortFail",
            [("Device", path), ("Message", "Open Failed"), ("ErrorCode", str(errno))],
        )

    def _event(self, name: str, headers: Headers) -> None:
        self._emit(name, headers)

    def _status(self, device: Device, status: str) -> None:
        self._event("DongleStatus", [("Device", device.name), ("Status", status)])

    def _open_path(self, path: str) -> str:
        """What open() is given for a configured path (the benchmark swaps in the pty)."""
        return path

    def open_device(self, device: Device, *, still_closing: bool = False) -> None:
        if device.port is not None or device.desired != "start":
            return
        settings = device.settings
        if not settings.data:
            return  # chan_dongle's own IMEI discovery: not modelled, never finds anything
        device.state = "Not connected"
        fds: list[int] = []
        for path in self._tty_paths(settings):
            try:
                if fds and os.path.realpath(path) in device.reals:
                    # audio and data on one tty (tests only): share the open file description
                    fds.append(os.dup(fds[0]))
                    continue
                fd, closing = self.ttys.open_tty(device, path)
                fds.append(fd)
                still_closing = still_closing or (closing and path == settings.data)
            except RefusedError:
                self.ttys.undo_open(device, fds)
                return
            except OSError as exc:
                self.journal.log(f"[{device.name}] unable to open {path}: {exc.strerror}")
                self.ttys.undo_open(device, fds)
                self._port_fail(path, exc.errno or 0)
                return
        port = AtPort(
            self.loop,
            fds[0],
            fds[-1],
            self._port_lost,
            lambda text: self.journal.crash(f"[{device.name}] {text}"),
            lambda line: self._unsolicited(device, line),
        )
        if still_closing:
            # The closing monitor's keep-alive `AT` went out on this tty in the same
            # millisecond as the new opener's first command and its `OK` reaches the new
            # opener (seen in a real stick's log): every reply of the init shifts by one.
            port.last_command()
        device.port = port
        device.state = "Not initialized"
        self._status(device, "Connect")
        task = self.loop.create_task(self._initialize(device, port))
        device.init_task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _tty_paths(self, settings: DeviceSettings) -> tuple[str, ...]:
        """The ttys a device opens, data first (with USB audio, only the data tty)."""
        return (settings.data, settings.audio)

    def release(self, device: Device, reason: str, *, events: bool = True) -> None:
        """Close the ttys, remove our locks, forget what the modem said."""
        task = device.init_task
        device.init_task = None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        if device.closing is not None:
            device.closing.cancel()
            device.closing = None
        port = device.port
        device.port = None
        if port is not None:
            port.close()
            self.journal.log(f"[{device.name}] closed ({reason})")
        self.ttys.unlock(device)
        device.identity = Identity()
        device.state = "Stopped" if device.desired == "stop" else "Not connected"
        if port is not None and events:
            # disconnect_dongle: pvt_on_remove_last_channel (Free) even with no call, then
            # Disconnect.
            self._status(device, "Free")
            self._status(device, "Disconnect")

    def _port_lost(self, port: AtPort, reason: str) -> None:
        for device in self.devices.values():
            if device.port is port:
                self.journal.log(f"[{device.name}] Lost connection to Dongle ({reason})")
                self.release(device, "lost")
                return
        port.close()

    # --- the AT conversation -----------------------------------------------------------------

    async def _initialize(self, device: Device, port: AtPort) -> None:
        try:
            identity = await self._converse(port)
        except (InitError, PortLostError, TimeoutError) as exc:
            if device.port is port:
                self.journal.log(f"[{device.name}] initialization failed: {exc!r}")
                device.init_task = None
                self.release(device, "init failed")
            return
        if device.port is not port:
            return
        device.init_task = None
        port.initialized()
        device.identity = identity
        device.state = self._ready_state(device, identity)
        imei_setting = device.settings.imei
        foreign = bool(imei_setting) and imei_setting != identity.imei
        self.journal.binding(device.name, device.settings.data, identity.imei, foreign)
        if foreign:
            self.journal.log(
                f"[{device.name}] bound to IMEI {identity.imei}, section says {imei_setting}"
            )
        # As chan_dongle: its init reads the registration (AT+CREG?) before its last command,
        # whose answer sends Initialize; Free is sent only when the last channel of a call
        # goes (and at a disconnect), never as a readiness signal.
        if identity.registration >= 0:
            registered = identity.registration in self.registered
            self._status(device, "Register" if registered else "Unregister")
        self._status(device, "Initialize")

    def _unsolicited(self, device: Device, line: str) -> None:
        """An initialized device's unsolicited lines: `+CREG:` (the network took or dropped
        the SIM) moves it between Free and GSM not registered, as chan_dongle's
        at_response_creg() does; `^RSSI:` is its new signal."""
        ident = device.identity
        if line.startswith("^RSSI:") and line[6:].strip().isdigit():
            ident.rssi = int(line[6:].strip())
            return
        stat = creg_unsolicited(line)
        if stat is None:
            return
        ident.registration = stat
        if device.state in ("Free", "GSM not registered"):
            up = stat in self.registered
            device.state = "Free" if up else "GSM not registered"
            self._status(device, "Register" if up else "Unregister")

    def _ready_state(self, device: Device, identity: Identity) -> str:
        """The state after the AT conversation: chan_dongle's state string for an initialized
        device its network does not take is 'GSM not registered'. (No +CREG: answer at all
        stays Free here: the fake does not model chan_dongle waiting for one.)"""
        reg = identity.registration
        return "GSM not registered" if reg >= 0 and reg not in self.registered else "Free"

    async def _converse(self, port: AtPort) -> Identity:
        return await dongle_conversation(port, self._init_timeout)


async def dongle_conversation(port: AtPort, command_timeout: float) -> Identity:
    """chan_dongle's initialization of a device: its identity, its network's status."""
    ident = Identity()

    async def ask(cmd: str, *, fatal: bool = True) -> list[str] | None:
        async with asyncio.timeout(command_timeout):
            final, lines = await port.command(cmd)
        if final == "OK":
            return lines
        if fatal:
            raise InitError(f"{cmd} answered {final}")
        return None

    await ask("AT")
    await ask("ATE0")
    ident.manufacturer = answer_plain(await ask("AT+CGMI", fatal=False) or [])
    ident.model = answer_plain(await ask("AT+CGMM", fatal=False) or [])
    ident.firmware = answer_plain(await ask("AT+CGMR", fatal=False) or [])
    ident.imei = answer_number(await ask("AT+CGSN") or [])
    ident.imsi = answer_number(await ask("AT+CIMI") or [])
    voice = await ask("AT^CVOICE?", fatal=False)
    ident.voice = voice is not None and (answer_prefixed(voice, "^CVOICE:") or "").startswith("0")
    # Status queries: neither an ERROR nor silence stops the initialization here.
    try:
        creg = reg_status(await ask("AT+CREG?", fatal=False) or [], "+CREG:")
        ident.registration = -1 if creg is None else creg
        cops = answer_prefixed(await ask("AT+COPS?", fatal=False) or [], "+COPS:")
        if cops and '"' in cops:
            ident.provider = cops.split('"')[1]
        csq = csq_value(await ask("AT+CSQ", fatal=False) or [])
        ident.rssi = ident.rssi if csq is None else csq
    except TimeoutError:
        pass
    return ident
