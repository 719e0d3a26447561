"""Fake Huawei USB GSM sticks served on pty masters, quirks included.

One background thread (a selector) serves every simulated port of the process, so twenty
sticks with five ports each cost one thread and no CPU while idle.

A `StickSim` is one stick: identity (IMEI, IMSI, model, firmware), per-stick echo state and
the quirks of real hardware. A stick's ports are attached to the thread with a role:

- ``pcui``: the AT port (chan_dongle's ``data``), answers AT commands;
- ``modem``: interface 0, answers AT as well (why a table alone cannot pick the data port);
- ``silent``: voice/audio or diag port, swallows everything and never answers.

Each port records every byte it receives (with ``time.monotonic()`` stamps) and every command
line it parsed, so tests can assert what the code under test sent, and where.

pty facts this module is built on (seen on Linux 6.x):

- Reading a master while no slave is open fails with EIO and poll reports POLLHUP for ever:
  each port therefore keeps one slave fd open itself (and never reads it), so the master never
  hangs up and the thread never spins.
- Bytes written to a master wait in the slave's input queue until someone reads them, even
  across closes and re-opens. A real ttyUSB discards them when its last opener closes. The
  thread watches the slave node with inotify (IN_OPEN/IN_CLOSE) and, when the last opener
  closes, drops the answers still scheduled and flushes the unread input (TCIFLUSH).
- A pty keeps the exclusive mode (TIOCEXCL) its opener set after that opener closed; a real
  ttyUSB's goes with its last close. The thread clears it at the last close too.
- Closing the master hangs the slave up: the opener's poll reports POLLIN|POLLERR|POLLHUP, read
  returns b"" (pyserial raises SerialException "device reports readiness to read but returned
  no data") and write fails with EIO. That is what `SimPort.unplug` does.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import errno
import fcntl
import heapq
import itertools
import os
import random
import selectors
import struct
import termios
import threading
import time
import tty
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Final

__all__ = [
    "CDROM_MODE_USB",
    "E171_LAYOUT_21_USB",
    "E171_LAYOUT_32_USB",
    "E173",
    "E173_USB",
    "E1550",
    "E1550_USB",
    "E1612",
    "E1750",
    "E1750_USB",
    "EC25",
    "EC25_UAC_USB",
    "EC25_USB",
    "K3765",
    "K3765_USB",
    "SIM7600",
    "SIM7600_USB",
    "USB_MODELS",
    "E171Layout21",
    "E171Layout32",
    "EC25Uac",
    "PtyModem",
    "Received",
    "Role",
    "SimPort",
    "StickSim",
    "UsbModel",
    "Violation",
    "pty_modem",
    "serve",
    "served_port_count",
    "server_thread",
]


class Role(enum.StrEnum):
    """What a port of a stick does with bytes it receives."""

    PCUI = "pcui"
    MODEM = "modem"
    SILENT = "silent"


@dataclass(slots=True, frozen=True, kw_only=True)
class UsbModel:
    """A USB identity and interface layout of a real stick (one per layout)."""

    name: str
    vid: str
    pid: str
    product: str
    interfaces: tuple[tuple[int, Role], ...]
    audio_interface: int | None
    """bInterfaceNumber of the voice port (chan_dongle's ``audio``); None if no voice port."""
    manufacturer: str = "HUAWEI"
    """The usb_device's ``manufacturer`` attribute."""
    sound_interface: int | None = None
    """bInterfaceNumber of a USB Audio Class interface: the module also has an ALSA card."""
    sound_card_id: str = ""
    """The ALSA card id the kernel derives from the USB strings (before de-duplication)."""

    @property
    def data_interface(self) -> int:
        """bInterfaceNumber of the PCUI (AT) port (chan_dongle's ``data``)."""
        return next(num for num, role in self.interfaces if role is Role.PCUI)

    @property
    def vid_pid(self) -> str:
        return f"{self.vid}:{self.pid}"


_M, _S, _P = Role.MODEM, Role.SILENT, Role.PCUI

E1550_USB: Final = UsbModel(
    name="E1550",
    vid="12d1",
    pid="1001",
    product="HUAWEI Mobile",
    interfaces=((0, _M), (1, _S), (2, _P)),
    audio_interface=1,
)
E173_USB: Final = UsbModel(
    name="E173",
    vid="12d1",
    pid="1436",
    product="HUAWEI Mobile",
    interfaces=((0, _M), (1, _S), (2, _S), (3, _S), (4, _P)),
    audio_interface=3,
)
E1750_USB: Final = UsbModel(
    name="E1750",
    vid="12d1",
    pid="1436",
    product="HUAWEI Mobile",
    interfaces=((0, _M), (1, _S), (2, _S), (3, _S), (4, _P)),
    audio_interface=3,
)
E171_LAYOUT_32_USB: Final = UsbModel(
    name="E171",
    vid="12d1",
    pid="1506",
    product="HUAWEI Mobile",
    interfaces=((0, _M), (1, _S), (2, _S), (3, _P)),
    audio_interface=2,
)
"""E171 with the AT^SETPORT layout giving {data, audio} = {3, 2} (chan_dongle's table entry)."""
E171_LAYOUT_21_USB: Final = UsbModel(
    name="E171",
    vid="12d1",
    pid="1506",
    product="HUAWEI Mobile",
    interfaces=((0, _M), (1, _S), (2, _P)),
    audio_interface=1,
)
"""The same 12d1:1506 with the other AT^SETPORT layout: {data, audio} = {2, 1}."""
K3765_USB: Final = UsbModel(
    name="K3765",
    vid="12d1",
    pid="1465",
    product="Vodafone Mobile Broadband (Huawei)",
    interfaces=((0, _M), (1, _S), (2, _P)),
    audio_interface=1,
)
CDROM_MODE_USB: Final = UsbModel(
    name="CD-ROM mode",
    vid="12d1",
    pid="1446",
    product="HUAWEI Mobile",
    interfaces=(),
    audio_interface=None,
)
"""A stick before usb_modeswitch: one mass-storage interface, no tty at all."""

EC25_USB: Final = UsbModel(
    name="EC25",
    vid="2c7c",
    pid="0125",
    product="Android",
    manufacturer="Android",
    interfaces=((0, _S), (1, _S), (2, _P), (3, _M)),
    audio_interface=1,
)
"""Quectel EC25 (EC21 alike): if0 DIAG, if1 NMEA = serial voice port, if2 AT, if3 second AT.

if4 (the network interface) has no tty and is not modelled."""
EC25_UAC_USB: Final = UsbModel(
    name="EC25 (UAC)",
    vid="2c7c",
    pid="0125",
    product="Android",
    manufacturer="Android",
    interfaces=((0, _S), (1, _S), (2, _P), (3, _M)),
    audio_interface=None,
    sound_interface=5,
    sound_card_id="Android",
)
"""The EC25 with USB audio enabled: voice over an ALSA card whose id comes from the USB product
string "Android" (a second module gets "Android_1"). The interface number of the audio
function is our guess (unverified); the card's place in sysfs (under the usb_device) is not."""
SIM7600_USB: Final = UsbModel(
    name="SIM7600",
    vid="1e0e",
    pid="9001",
    product="SimTech, Incorporated",
    manufacturer="SimTech, Incorporated",
    interfaces=((0, _S), (1, _S), (2, _P), (3, _M), (4, _S)),
    audio_interface=4,
)
"""SIMCom SIM7600: if0 DIAG, if1 GPS, if2 AT, if3 second AT, if4 audio."""

USB_MODELS: Final[dict[str, UsbModel]] = {
    "E1550": E1550_USB,
    "E173": E173_USB,
    "E1750": E1750_USB,
    "E171-32": E171_LAYOUT_32_USB,
    "E171-21": E171_LAYOUT_21_USB,
    "K3765": K3765_USB,
    "CDROM": CDROM_MODE_USB,
    "EC25": EC25_USB,
    "EC25-UAC": EC25_UAC_USB,
    "SIM7600": SIM7600_USB,
}

_CME_CODES: Final = {"SIM not inserted": "10", "memory failure": "23"}  # 3GPP 27.007 9.2
_VIOLATION_PREFIXES: Final = ("ATZ", "AT+CFUN", "AT^CURC", "AT^U2DIAG", "AT^SETPORT")

# Commands a modem acknowledges with a bare OK, as the simulators do: the settings and queries
# of the real chan_dongle's and both chan_quectel forks' init and polls (seen against them in
# the real-driver tier) whose answer the drivers do not need. Anything else answered by the
# generic OK is recorded in `StickSim.unknown`: the real tier fails on it (a command a real
# driver sends that the simulator does not know is a finding).
_ACKNOWLEDGED: Final = (
    "ATZ", "AT+COPS=", "AT+CREG=", "AT+CEREG=", "AT+CSSN=", "AT+CMGF=", "AT+CSCS=",
    "AT+CNMI=", "AT^DSCI=", "AT+VTD=", "AT+QTONEDET=", "AT+QINDCFG=", "AT+QPCMV=", "AT+CNUM",
    "AT+CMGL=", "AT+QMIC", "AT+QRXGAIN", "AT+QSPN", "AT+CLIP=", "AT+CLVL", "AT+CPCMREG=",
)  # fmt: skip
_MAX_LINE: Final = 4096
_MAX_PENDING: Final = 1 << 16


@dataclass(slots=True, frozen=True)
class Received:
    """One chunk read from a port's master, stamped with time.monotonic()."""

    time: float
    data: bytes


@dataclass(slots=True, frozen=True)
class Violation:
    """A state-changing command (ATZ, AT+CFUN...) a probe must never send."""

    time: float
    port: str
    command: str


class StickSim:
    """One simulated stick, shared by all its ports.

    Quirk switches (all off by default, combinable):

    - ``imei_only_in_ati``: AT+CGSN/AT+GSN answer ERROR, the IMEI is only in ATI;
    - ``cgsn_memory_failure``: AT+CGSN/AT+GSN answer ``+CME ERROR: memory failure``;
    - ``imsi=None``: no SIM (AT+CIMI, AT+CPIN?, AT^ICCID? answer ``+CME ERROR: SIM not inserted``);
    - ``answer_delay``: seconds before each answer (echo is immediate); > a timeout = "slow";
    - ``mute``: AT ports echo nothing and answer nothing;
    - ``unsolicited``: lines (``^RSSI:17``, ``RING``...) injected into every answer, between the
      answer lines and before the final result;
    - ``garbage``: random non-ASCII bytes sent before each answer;
    - ``unplug_on``: a command prefix (e.g. ``"AT+CGSN"``); answering it sends half the answer,
      then the port vanishes (master closed: the opener sees HUP/EOF, writes fail with EIO);
    - ``boot_delay``: seconds after the stick's ports appear (plugged, or back after a
      replug) during which it is still booting: AT ports echo and answer nothing, as real
      sticks do for seconds after enumeration (longer after a mode switch);
    - ``registered=False``: the network does not take it (``+CREG: 0,2``, searching);
    - ``ati_imei``: what ATI's ``IMEI:`` line shows instead of the IMEI (e.g. a masked
      ``35693803*******``, as some firmwares print it); ``""``: no such line;
    - ``voice_answer``: the final result a voiceless stick gives to ``AT^CVOICE?``
      (``ERROR``; some firmwares say ``COMMAND NOT SUPPORT``);
    - ``leading``: lines sent before every answer's own lines (boot messages such as ``RDY``
      or ``+QIND: PB DONE`` that land in the first answers after a module starts);
    - ``csq``: the signal ``AT+CSQ`` reports (17: -79 dBm; 99: not known).
    """

    manufacturer: ClassVar[str] = "huawei"
    default_model: ClassVar[str] = "E1550"
    default_firmware: ClassVar[str] = "11.608.12.02.21"
    default_imei_only_in_ati: ClassVar[bool] = False
    usb: ClassVar[UsbModel] = E1550_USB

    def __init__(
        self,
        imei: str,
        imsi: str | None = "250011234567890",
        *,
        model: str | None = None,
        firmware: str | None = None,
        voice: bool = True,
        echo: bool = True,
        answer_delay: float = 0.0,
        imei_only_in_ati: bool | None = None,
        cgsn_memory_failure: bool = False,
        mute: bool = False,
        unsolicited: Sequence[str] = (),
        garbage: bool = False,
        unplug_on: str | None = None,
        iccid: str | None = None,
        seed: int | None = None,
        boot_delay: float = 0.0,
        registered: bool = True,
        ati_imei: str | None = None,
        voice_answer: str = "ERROR",
        leading: Sequence[str] = (),
        csq: int = 17,
    ) -> None:
        self.ati_imei = ati_imei
        self.voice_answer = voice_answer
        self.leading = tuple(leading)
        self.imei = imei
        self.imsi = imsi
        self.model = model if model is not None else self.default_model
        self.firmware = firmware if firmware is not None else self.default_firmware
        self.voice = voice
        self.echo = echo
        self.answer_delay = answer_delay
        self.imei_only_in_ati = (
            self.default_imei_only_in_ati if imei_only_in_ati is None else imei_only_in_ati
        )
        self.cgsn_memory_failure = cgsn_memory_failure
        self.mute = mute
        self.unsolicited = tuple(unsolicited)
        self.garbage = garbage
        self.unplug_on = unplug_on.upper() if unplug_on is not None else None
        self.boot_delay = boot_delay
        self.registered = registered  # False: the network does not take it (searching)
        self.csq = csq
        self.booted_at = 0.0  # time.monotonic() from which it answers
        self.iccid = iccid if iccid is not None else ("8970" + (imsi or "0" * 15))[:20]
        self.rng = random.Random(seed if seed is not None else imei)
        self.violations: list[Violation] = []
        self.unknown: list[str] = []  # commands answered OK only for want of knowing them
        self.cmee = 2  # AT+CMEE: 0 plain ERROR, 1 numeric, 2 verbose (reset at power-on)
        self.ports: list[SimPort] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(imei={self.imei!r}, imsi={self.imsi!r}, model={self.model!r})"

    # ---- AT answers (called on the server thread) -------------------------------------------

    def answer(self, command: str) -> list[str] | None:
        """The lines (info lines then the final) answering `command`; None = no answer."""
        if self.mute:
            return None
        cmd = command.upper()
        sim_missing = ["+CME ERROR: SIM not inserted"]
        if cmd.startswith("AT+CMEE=") and cmd[8:] in ("0", "1", "2"):
            self.cmee = int(cmd[8:])
            return ["OK"]
        if cmd in ("AT", ""):
            return ["OK"]
        if cmd in ("ATE0", "ATE"):
            self.echo = False
            return ["OK"]
        if cmd == "ATE1":
            self.echo = True
            return ["OK"]
        if cmd == "ATI":
            # one information block, lines separated by a single CRLF, as Huawei prints it
            shown = self.imei if self.ati_imei is None else self.ati_imei
            imei_line = f"IMEI: {shown}\r\n" if shown else ""
            info = (
                f"Manufacturer: {self.manufacturer}\r\nModel: {self.model}\r\n"
                f"Revision: {self.firmware}\r\n{imei_line}+GCAP: +CGSM,+DS,+ES"
            )
            return [info, "OK"]
        if cmd in ("AT+CGSN", "AT+GSN"):
            if self.cgsn_memory_failure:
                return ["+CME ERROR: memory failure"]
            if self.imei_only_in_ati:
                return ["ERROR"]
            return [self.imei, "OK"]
        if cmd == "AT+CIMI":
            return sim_missing if self.imsi is None else [self.imsi, "OK"]
        if cmd == "AT+CGMI":
            return [self.manufacturer, "OK"]
        if cmd == "AT+CGMM":
            return [self.model, "OK"]
        if cmd == "AT+CGMR":
            return [self.firmware, "OK"]
        if cmd == "AT^CVOICE?":
            return ["^CVOICE:0,8000,16,1", "OK"] if self.voice else [self.voice_answer]
        if cmd == "AT+CPIN?":
            return sim_missing if self.imsi is None else ["+CPIN: READY", "OK"]
        if cmd == "AT+CSQ":
            return [f"+CSQ: {self.csq},99", "OK"]
        if cmd == "AT+CREG?":
            if self.imsi is None:
                return ["+CREG: 0,0", "OK"]
            return ["+CREG: 0,1" if self.registered else "+CREG: 0,2", "OK"]
        if cmd == "AT+COPS?":
            return ["+COPS: 0" if self.imsi is None else '+COPS: 0,0,"MegaFon",2', "OK"]
        if cmd == "AT^ICCID?":
            return sim_missing if self.imsi is None else [f"^ICCID: {self.iccid}", "OK"]
        if cmd.startswith("AT+CPMS"):  # the SIM's SMS store: empty, 50 places
            return sim_missing if self.imsi is None else ["+CPMS: 0,50,0,50,0,50", "OK"]
        if cmd.startswith("AT+CMGR="):  # the drivers read every index at connect: all empty
            return ["+CMS ERROR: 321"]  # invalid memory index
        if cmd == "AT+CSCA?":
            return sim_missing if self.imsi is None else ['+CSCA: "+79168999100",145', "OK"]
        if not cmd.startswith(_ACKNOWLEDGED):
            with self._lock:
                self.unknown.append(command)
        return ["OK"]

    def reported(self, lines: list[str]) -> list[str]:
        """`lines` with a +CME ERROR final as AT+CMEE asks for it: after AT+CMEE=0 a real
        modem answers a plain ERROR (the real chan_dongle and IM send it, and wait for OK or
        ERROR: they do not know +CME ERROR and time out on it)."""
        if not lines or not lines[-1].startswith("+CME ERROR:") or self.cmee == 2:
            return lines
        if self.cmee == 0:
            return [*lines[:-1], "ERROR"]
        text = lines[-1].split(":", 1)[1].strip()
        code = _CME_CODES.get(text, text if text.isdigit() else "100")
        return [*lines[:-1], f"+CME ERROR: {code}"]

    def report(self, line: str) -> None:
        """Send an unsolicited line now (``+CREG: 2``: the network dropped the SIM;
        ``^RSSI:9``) on each of its AT (PCUI) ports that is plugged in, as a modem does
        between commands."""
        data = f"\r\n{line}\r\n".encode()

        def send(srv: _Server) -> None:
            for port in list(self.ports):
                if port.role is Role.PCUI and port in srv._ports:
                    srv._write(port, data)

        _server().call(send)

    def _frame(self, lines: list[str]) -> bytes:
        """Frame an answer, with garbage and unsolicited lines when those quirks are on."""
        body = [f"\r\n{line}\r\n".encode() for line in [*self.leading, *lines]]
        for urc in self.unsolicited:
            # anywhere after the first answer line (or at the start) and before the final
            pos = self.rng.randint(min(1, len(body) - 1), len(body) - 1)
            body.insert(pos, f"\r\n{urc}\r\n".encode())
        out = b"".join(body)
        if self.garbage:
            noise = bytes(self.rng.randrange(0x80, 0x100) for _ in range(self.rng.randint(1, 8)))
            out = noise + out
        return out


class E1550(StickSim):
    default_model = "E1550"
    default_firmware = "11.608.12.02.21"
    usb = E1550_USB


class E173(StickSim):
    default_model = "E173"
    default_firmware = "21.017.09.00.314"
    usb = E173_USB


class E1750(StickSim):
    default_model = "E1750"
    default_firmware = "11.126.08.01.00"
    usb = E1750_USB


class E171Layout32(StickSim):
    """E171 (12d1:1506) after AT^SETPORT gave {data 3, audio 2}."""

    default_model = "E171"
    default_firmware = "21.156.00.00.143"
    usb = E171_LAYOUT_32_USB


class E171Layout21(StickSim):
    """The same E171 (12d1:1506) with the other layout: {data 2, audio 1}."""

    default_model = "E171"
    default_firmware = "21.156.00.00.143"
    usb = E171_LAYOUT_21_USB


class K3765(StickSim):
    default_model = "K3765"
    default_firmware = "11.126.03.01.314"
    usb = K3765_USB


class E1612(StickSim):
    """Firmware whose AT+CGSN answers ERROR: the IMEI is only printed by ATI."""

    default_model = "E1612"
    default_firmware = "11.608.13.02.00"
    default_imei_only_in_ati = True
    usb = E1550_USB


class _LteModule(StickSim):
    """What Quectel and SIMCom LTE modules share: no Huawei ^ commands, LTE registration.

    Extra quirk: ``lte_only``: registered on LTE only (``+CEREG:`` status 1) while ``+CREG:``
    says "searching" (status 2), as a data-only SIM or a network without 2G/3G gives.
    """

    iccid_command: ClassVar[str] = ""
    iccid_prefix: ClassVar[str] = ""

    def __init__(
        self, imei: str, imsi: str | None = "250011234567890", *, lte_only: bool = False, **kw: Any
    ) -> None:
        self.lte_only = lte_only
        super().__init__(imei, imsi, **kw)

    def answer(self, command: str) -> list[str] | None:
        if self.mute:
            return None
        cmd = command.upper()
        no_sim = self.imsi is None
        if cmd.startswith("AT^DSCI"):
            return ["OK"]  # call status reports: both forks switch them on or off
        if cmd.startswith("AT^"):
            return ["ERROR"]  # AT^CVOICE?, AT^ICCID?... are Huawei's
        if cmd == self.iccid_command:
            return ["+CME ERROR: 10"] if no_sim else [f"{self.iccid_prefix}{self.iccid}", "OK"]
        if cmd == "AT+CREG?" and self.lte_only and not no_sim:
            return ["+CREG: 0,2", "OK"]
        if cmd == "AT+CEREG?":
            return ["+CEREG: 0,0" if no_sim else "+CEREG: 0,1", "OK"]
        vendor = self.vendor_answer(cmd)
        return vendor if vendor is not None else super().answer(command)

    def vendor_answer(self, cmd: str) -> list[str] | None:
        """The model's own commands (`cmd` upper-cased); None: the generic 3GPP answer."""
        return None


class EC25(_LteModule):
    """Quectel EC25 with voice over the serial NMEA port (if1): ``AT+QPCMV?`` says port 0.

    ATI prints no IMEI (manufacturer, model, revision only); the ICCID is ``AT+QCCID``;
    ``AT+CPCMREG?`` (SIMCom's) answers ERROR, which is how chan_quectel tells the two apart.
    """

    manufacturer = "Quectel"
    default_model = "EC25"
    default_firmware = "EC25EFAR06A06M4G"
    usb = EC25_USB
    iccid_command = "AT+QCCID"
    iccid_prefix = "+QCCID: "
    qpcmv_port: ClassVar[int] = 0  # 0 USB NMEA port, 1 debug UART, 2 USB sound card

    def vendor_answer(self, cmd: str) -> list[str] | None:
        if cmd == "ATI":
            return [f"{self.manufacturer}\r\n{self.model}\r\nRevision: {self.firmware}", "OK"]
        if cmd == "AT+QPCMV?":
            return [f"+QPCMV: {int(self.voice)},{self.qpcmv_port}", "OK"]
        if cmd in ("AT+CPCMREG?", "AT+CICCID", "AT+CCID"):
            return ["ERROR"]
        return None


class EC25Uac(EC25):
    """The EC25 with USB audio (UAC): voice on an ALSA card, ``AT+QPCMV?`` says port 2."""

    usb = EC25_UAC_USB
    qpcmv_port = 2


class SIM7600(_LteModule):
    """SIMCom SIM7600: ``AT+CGMR`` answers with a ``+CGMR:`` prefix, the ICCID is
    ``AT+CICCID`` (``+ICCID:``) or ``AT+CCID`` (bare), ``AT+QPCMV?``/``AT+QCCID`` are ERROR."""

    manufacturer = "SIMCOM INCORPORATED"
    default_model = "SIMCOM_SIM7600E-H"
    default_firmware = "LE20B04SIM7600M22"
    usb = SIM7600_USB
    iccid_command = "AT+CICCID"
    iccid_prefix = "+ICCID: "

    def vendor_answer(self, cmd: str) -> list[str] | None:
        if cmd == "AT+CGMR":
            return [f"+CGMR: {self.firmware}", "OK"]
        if cmd == "AT+CCID":
            return ["+CME ERROR: 10"] if self.imsi is None else [self.iccid, "OK"]
        if cmd == "AT+CPCMREG?":
            return ["+CPCMREG: 0", "OK"]
        if cmd in ("AT+QPCMV?", "AT+QCCID"):
            return ["ERROR"]
        return None


# ---- ports and the server thread ---------------------------------------------------------


class SimPort:
    """One simulated tty: a pty master served by the sim thread with a role."""

    def __init__(self, sim: StickSim, role: Role, master_fd: int, name: str) -> None:
        self.sim = sim
        self.role = Role(role)
        self.name = name
        self.master_fd = master_fd
        self.slave_path = _ptsname(master_fd)
        self.slave_fd = -1
        self.gone = threading.Event()
        self._chunks: list[Received] = []
        self._commands: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._line = bytearray()
        self._busy_until = 0.0
        self._generation = 0
        self._pending = bytearray()
        self._openers = 0
        self._wd = -1

    def __repr__(self) -> str:
        return f"SimPort({self.name!r}, {self.role.value}, {self.slave_path!r})"

    @property
    def chunks(self) -> list[Received]:
        """Every chunk received, in order, with its time.monotonic() stamp."""
        with self._lock:
            return list(self._chunks)

    @property
    def received(self) -> bytes:
        """All bytes received so far."""
        with self._lock:
            return b"".join(c.data for c in self._chunks)

    @property
    def commands(self) -> list[str]:
        """The CR-terminated command lines received (parsed on every role)."""
        with self._lock:
            return [c for _, c in self._commands]

    def clear(self) -> None:
        """Forget what was received so far."""
        with self._lock:
            self._chunks.clear()
            self._commands.clear()

    def unplug(self) -> None:
        """Make the port vanish: the master is closed, the opener sees HUP (read b'', EIO)."""
        _server().call(lambda srv: srv.drop(self))

    @property
    def unplugged(self) -> bool:
        return self.gone.is_set()


_TIOCGPTN: Final = 0x80045430  # not in typeshed
_TIOCGPTPEER: Final = 0x5441
_IN_OPEN: Final = 0x20
_IN_CLOSE: Final = 0x08 | 0x10
_IN_IGNORED: Final = 0x8000
_IN_NONBLOCK_CLOEXEC: Final = os.O_NONBLOCK | os.O_CLOEXEC
_EVENT_HEADER: Final = struct.Struct("iIII")


class _Inotify:
    """Just enough inotify (through libc) to count the openers of each slave node."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self.fd: int = self._libc.inotify_init1(_IN_NONBLOCK_CLOEXEC)
        if self.fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    def add(self, path: str) -> int:
        return int(self._libc.inotify_add_watch(self.fd, os.fsencode(path), _IN_OPEN | _IN_CLOSE))

    def remove(self, wd: int) -> None:
        self._libc.inotify_rm_watch(self.fd, wd)

    def read(self) -> Iterator[tuple[int, int]]:
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        pos = 0
        while pos + _EVENT_HEADER.size <= len(data):
            wd, mask, _cookie, length = _EVENT_HEADER.unpack_from(data, pos)
            pos += _EVENT_HEADER.size + length
            yield wd, mask


class _Server:
    """The single thread serving every SimPort of the process."""

    def __init__(self) -> None:
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._inotify = _Inotify()
        self._sel.register(self._inotify.fd, selectors.EVENT_READ, None)
        self._by_wd: dict[int, SimPort] = {}
        self._ports: set[SimPort] = set()
        self._timers: list[tuple[float, int, SimPort, int, bytes | None]] = []
        self._seq = itertools.count()
        self._calls: list[tuple[Callable[[_Server], None], threading.Event]] = []
        self._calls_lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="modemsim", daemon=True)
        self.thread.start()

    @property
    def port_count(self) -> int:
        return len(self._ports)

    def call(self, fn: Callable[[_Server], None]) -> None:
        """Run fn on the server thread and wait for it."""
        if threading.current_thread() is self.thread:
            fn(self)
            return
        done = threading.Event()
        with self._calls_lock:
            self._calls.append((fn, done))
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"\0")
        done.wait()

    # ---- operations, server thread only ----

    def attach(self, port: SimPort) -> None:
        # Hold a slave open so the master never reports POLLHUP (no EIO spin), raw mode so
        # the line discipline neither echoes nor translates CR/LF.
        # TIOCGPTPEER opens the slave without a path: under the umockdev preload every open()
        # of a /dev path is tracked in a 50-entry table that aborts the process when full.
        port.slave_fd = fcntl.ioctl(port.master_fd, _TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
        os.set_inheritable(port.slave_fd, False)
        tty.setraw(port.slave_fd)
        os.set_blocking(port.master_fd, False)
        port._wd = self._inotify.add(port.slave_path)
        if port._wd >= 0:
            self._by_wd[port._wd] = port
        self._sel.register(port.master_fd, selectors.EVENT_READ, port)
        if not any(p in self._ports for p in port.sim.ports):  # powered on: it boots
            port.sim.booted_at = time.monotonic() + port.sim.boot_delay
            port.sim.cmee = 2
        self._ports.add(port)
        port.sim.ports.append(port)

    def drop(self, port: SimPort) -> None:
        """Close the port: the master goes away, the opener sees a hangup."""
        if port not in self._ports:
            return
        self._ports.discard(port)
        port._generation += 1
        self._sel.unregister(port.master_fd)
        if port._wd >= 0:
            self._by_wd.pop(port._wd, None)
            self._inotify.remove(port._wd)
        os.close(port.master_fd)
        os.close(port.slave_fd)
        port.master_fd = port.slave_fd = -1
        port.gone.set()

    # ---- the loop ----

    def _run(self) -> None:
        while True:
            timeout = None
            if self._timers:
                timeout = max(0.0, self._timers[0][0] - time.monotonic())
            for key, mask in self._sel.select(timeout):
                port = key.data
                if port is None:
                    if key.fd == self._wake_r:
                        self._run_calls()
                    else:
                        self._on_inotify()
                elif isinstance(port, SimPort):
                    if mask & selectors.EVENT_READ and port in self._ports:
                        self._on_readable(port)
                    if mask & selectors.EVENT_WRITE and port in self._ports:
                        self._flush(port)
            self._run_timers()

    def _run_calls(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_r, 4096)
        with self._calls_lock:
            calls, self._calls = self._calls, []
        for fn, done in calls:
            try:
                fn(self)
            finally:
                done.set()

    def _on_inotify(self) -> None:
        for wd, mask in self._inotify.read():
            port = self._by_wd.get(wd)
            if port is None or mask & _IN_IGNORED:
                continue
            if mask & _IN_OPEN:
                port._openers += 1
            elif mask & _IN_CLOSE and port._openers > 0:
                port._openers -= 1
                if port._openers == 0:
                    self._last_close(port)

    def _last_close(self, port: SimPort) -> None:
        # like a real ttyUSB: what the modem sends while nobody has the port open is lost
        port._generation += 1
        port._busy_until = 0.0
        port._pending.clear()
        port._line.clear()
        with contextlib.suppress(OSError):
            termios.tcflush(port.slave_fd, termios.TCIFLUSH)
        # A real ttyUSB's tty goes away at its last close, and with it the exclusive mode its
        # opener set (the real chan_dongle and both chan_quectel forks set TIOCEXCL). A pty's
        # outlives every close while its master is open: clear it, or the next opener (dongled's
        # probe) sees a port "held" by a driver that let go of it long ago.
        with contextlib.suppress(OSError):
            fcntl.ioctl(port.slave_fd, termios.TIOCNXCL)

    def _on_readable(self, port: SimPort) -> None:
        try:
            data = os.read(port.master_fd, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            return
        if not data:
            return
        now = time.monotonic()
        port._openers = max(port._openers, 1)  # someone wrote, so someone has it open
        with port._lock:
            port._chunks.append(Received(now, data))
        port._line += data
        while True:
            cut = port._line.find(b"\r")
            if cut < 0:
                break
            raw = bytes(port._line[:cut])
            del port._line[: cut + 1]
            self._on_command(port, raw, now)
        if len(port._line) > _MAX_LINE:
            port._line.clear()

    def _on_command(self, port: SimPort, raw: bytes, now: float) -> None:
        text = raw.decode("ascii", "replace").strip(" \n\t\0")
        if not text:
            return
        with port._lock:
            port._commands.append((now, text))
        sim = port.sim
        upper = text.upper()
        if upper.startswith(_VIOLATION_PREFIXES):
            with sim._lock:
                sim.violations.append(Violation(now, port.name, text))
        if port.role is Role.SILENT or sim.mute or not upper.startswith("AT"):
            return
        if now < sim.booted_at:
            return  # still booting: deaf
        if sim.echo:
            self._write(port, raw + b"\r")
        lines = sim.answer(text)
        if lines is None:
            return
        lines = sim.reported(lines)
        answer = sim._frame(lines)
        due = max(now, port._busy_until) + sim.answer_delay
        port._busy_until = due
        if sim.unplug_on is not None and upper.startswith(sim.unplug_on):
            self._schedule(due, port, answer[: max(1, len(answer) // 2)])
            self._schedule(due + 0.005, port, None)
        else:
            self._schedule(due, port, answer)

    def _schedule(self, due: float, port: SimPort, data: bytes | None) -> None:
        heapq.heappush(self._timers, (due, next(self._seq), port, port._generation, data))

    def _run_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, port, generation, data = heapq.heappop(self._timers)
            if port not in self._ports or generation != port._generation:
                continue
            if data is None:
                self.drop(port)
            else:
                self._write(port, data)

    def _write(self, port: SimPort, data: bytes) -> None:
        if len(port._pending) + len(data) > _MAX_PENDING:
            return  # nobody reads: drop, like a modem talking to a closed port
        port._pending += data
        self._flush(port)

    def _flush(self, port: SimPort) -> None:
        while port._pending:
            try:
                n = os.write(port.master_fd, port._pending)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno != errno.EIO:
                    raise
                port._pending.clear()
                break
            del port._pending[:n]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if port._pending else 0)
        if self._sel.get_key(port.master_fd).events != events:
            self._sel.modify(port.master_fd, events, port)


_server_lock = threading.Lock()
_the_server: _Server | None = None


def _server() -> _Server:
    global _the_server
    with _server_lock:
        if _the_server is None:
            _the_server = _Server()
        return _the_server


def server_thread() -> threading.Thread:
    """The one thread serving every simulated port (for tests that count threads or CPU)."""
    return _server().thread


def served_port_count() -> int:
    return _server().port_count


def _ptsname(master_fd: int) -> str:
    (number,) = struct.unpack("I", fcntl.ioctl(master_fd, _TIOCGPTN, bytes(4)))
    return f"/dev/pts/{number}"


def serve(sim: StickSim, master_fd: int, role: Role | str, name: str) -> SimPort:
    """Serve an existing pty master (e.g. umockdev's) for `sim`; the port owns the fd now."""
    port = SimPort(sim, Role(role), master_fd, name)
    _server().call(lambda srv: srv.attach(port))
    return port


class PtyModem:
    """One simulated port on a plain os.openpty pair (no udev); a context manager."""

    def __init__(self, sim: StickSim, role: Role | str = Role.PCUI) -> None:
        master, slave = os.openpty()
        try:
            self.path = os.ttyname(slave)
        finally:
            os.close(slave)
        self.port = serve(sim, master, role, self.path)
        if self.port.slave_path != self.path:
            raise RuntimeError(f"pty path mismatch: {self.port.slave_path} != {self.path}")
        self.sim = sim

    @property
    def received(self) -> bytes:
        return self.port.received

    @property
    def chunks(self) -> list[Received]:
        return self.port.chunks

    @property
    def commands(self) -> list[str]:
        return self.port.commands

    def unplug(self) -> None:
        """The port vanishes for its opener (HUP: read returns b'', write fails with EIO)."""
        self.port.unplug()

    def close(self) -> None:
        self.port.unplug()

    def __enter__(self) -> PtyModem:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def pty_modem(sim: StickSim, role: Role | str = Role.PCUI) -> PtyModem:
    """A pty served as one port of `sim`; ``.path`` is the /dev/pts/N to open."""
    return PtyModem(sim, role)


# What a harmless probe may send: the test's check on what a simulator heard.
_STATE_CHANGING = ("ATZ", "AT&F", "AT+CFUN", "AT+QPOWD", "AT+CPOF", "AT+CRESET", "AT^")


def read_only(command: str) -> bool:
    """Whether `command` only reads: a query (`?`), an action without arguments that is not
    a reset, or `ATE0`/`ATE1` (echo). Anything with `=` sets something."""
    cmd = command.strip().upper()
    if cmd in ("ATE0", "ATE1", "AT"):
        return True
    if cmd.startswith(_STATE_CHANGING) or "=" in cmd:
        return False
    return cmd.startswith("AT")
