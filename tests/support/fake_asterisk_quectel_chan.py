"""chan_quectel's device model for the test Asterisk: the two forks in use.

docs/chan_quectel.md says what the forks do and which of it was seen on a real Asterisk. Both
forks reuse the chan_dongle model of `fake_asterisk_dongle` (ttys, the interval pass, reloads
that restart stopped devices); what differs is here:

- "im" (IchthysMaranatha, chan_dongle renamed): ten `Quectel*` AMI actions with chan_dongle's
  fields, `QuectelStatus`/`QuectelPortFail` events, `quec_uac=1` + `alsadev=`, `imei=`/`imsi=`
  known keys, LCK lock files plus TIOCEXCL, connects at load, disconnects on init errors.
- "re" (RoEdAl, a rewrite): no AMI actions and no events, only the CLI over `Action: Command`
  (`quectel ...` and the `simcom ...` aliases); `uac=on|ext` + `alsadev=`; unknown keys
  (`imei=`) silently ignored; TIOCEXCL + flock() and no lock files; the first connect one
  `interval` after load; never disconnects on AT errors; and `quectel show device state <dev>`
  on a device that has not registered since it connected kills Asterisk (a crash here: the
  journal counts it, sessions drop, ttys close, the listener goes away).

Their AMI actions, CLI and RE's device manager are in `fake_asterisk_quectel_module`; the
Asterisk personalities that host them in `fake_asterisk_quectel`.

The fake keeps the `imei=` a section names even where the fork ignores it: bindings to another
stick still show up in `foreign_bindings`, which is what dongled's tests check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .fake_asterisk_conf import ConfFile, ConfSection
from .fake_asterisk_dongle import (
    AtPort,
    ChanDongle,
    Device,
    DeviceSettings,
    Identity,
    InitError,
    answer_number,
    answer_plain,
    answer_prefixed,
    csq_value,
    reg_status,
    regstate_name,
)
from .fake_asterisk_journal import Headers, Journal

_IM_REGISTERED = frozenset({1, 5})
_RE_REGISTERED = frozenset({1, 4, 5, 6, 7, 8})
# RE's uac= (any case): these, or "ext"; anything else is warned about and read as off.
_TRUE = ("on", "yes", "true")
_FALSE = ("off", "no", "false")
# RE's gsm_regstate2str() has three names past chan_dongle's six (its typo kept).
_RE_REG_NAMES = {
    6: "Registered for<SMS only, home network",
    7: "Registered for \u201cSMS only\u201d, roaming",
    8: "Attached for emergency bearer services only",
}
# quectel show devices, as each fork prints it (C printf formats work with Python's %).
_RE_HEADER = "%-12.12s %-5.5s %-10.10s %-4.4s %-4.4s %-7.7s %-14.14s %-17.17s %-14.14s"
_RE_ROW = "%-12.12s %-5d %-10.10s %-4d %-4d %-7s %-14.14s %-17.17s %-16.16s %-16.16s %-14.14s"
_IM_HEADER = (
    "%-12.12s %-5.5s %-10.10s %-4.4s %-4.4s %-7.7s %-14.14s %-10.10s %-17.17s %-16.16s "
    "%-16.16s %-14.14s"
)
_IM_ROW = (
    "%-12.12s %-5d %-10.10s %-4d %-4d %-7d %-14.14s %-10.10s %-17.17s %-16.16s %-16.16s %-14.14s"
)


class QuectelJournal(Journal):
    """The chan_dongle journal plus Asterisk crashes and the ALSA devices opened."""

    def __init__(self) -> None:
        super().__init__()
        self._crashes: list[str] = []
        self._alsa: list[tuple[str, str]] = []

    def crash(self, text: str) -> None:
        self.hazard(f"CRASH: {text}")
        with self._lock:
            self._crashes.append(text)

    def alsa(self, device: str, name: str) -> None:
        with self._lock:
            self._alsa.append((device, name))

    @property
    def crashes(self) -> list[str]:
        with self._lock:
            return list(self._crashes)

    @property
    def alsa_opens(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._alsa)


@dataclass(frozen=True, slots=True)
class QuectelSettings(DeviceSettings):
    """A device section as one fork reads it; `imei` is kept even where the fork ignores it."""

    alsadev: str = ""  # set: USB audio (UAC), the audio tty is not opened
    external_card: bool = False  # RE's uac=ext: the card is not the module's own
    uses_imei: bool = True  # False: imei=/imsi= are unknown keys to this fork

    def restart_key(self) -> tuple[str, ...]:
        ids = (self.imei, self.imsi) if self.uses_imei else ()
        return (self.data, self.audio, self.alsadev, str(self.external_card), *ids)


@dataclass(slots=True)
class QuectelIdentity(Identity):
    iccid: str = ""
    initialized: bool = False
    act: int = 0


def _section_values(conf: ConfFile, section: ConfSection) -> dict[str, str]:
    values: dict[str, str] = {}
    defaults = conf.find("defaults")
    for key, value in (*(defaults.items if defaults else ()), *section.items):
        values[key] = value
    return values


def _device_sections(conf: ConfFile) -> list[ConfSection]:
    return [
        s for s in conf.sections if not s.template and s.name.lower() not in ("general", "defaults")
    ]


class ChanQuectel(ChanDongle):
    """The devices of one chan_quectel fork: what both share, and what `model` says the fork
    does its own way. Runs on the FakeAsterisk loop thread."""

    alsa_cards: Mapping[str, str] = {}
    """ALSA card name (what follows "hw:") -> IMEI of the module owning it, "" for a card of
    no module (a headset: what RE's uac=ext is for); set by the test."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        conf_path: str,
        *,
        model: ForkModel,
        journal: QuectelJournal,
        **kwargs: Any,
    ) -> None:
        self.model = model
        self.registered = model.registered
        self.opens_at_load = model.opens_at_load
        self.lock_files = model.lock_files
        self.cli_words = model.cli_words
        super().__init__(loop, conf_path, journal=journal, **kwargs)
        self.qjournal = journal

    def _read_settings(self, conf: ConfFile) -> dict[str, DeviceSettings]:
        return self.model.read_settings(conf, self.journal)

    async def _converse(self, port: AtPort) -> Identity:
        return await self.model.converse(self._asker(port), self.registered)

    # --- events, ports, ALSA -------------------------------------------------------------------

    def _event(self, name: str, headers: Headers) -> None:
        if self.model.raises_events:
            self._emit(name.replace("Dongle", "Quectel", 1), headers)

    def _tty_paths(self, settings: DeviceSettings) -> tuple[str, ...]:
        if isinstance(settings, QuectelSettings) and settings.alsadev:
            return (settings.data,)
        return super()._tty_paths(settings)

    def open_device(self, device: Device, *, still_closing: bool = False) -> None:
        settings = device.settings
        alsadev = settings.alsadev if isinstance(settings, QuectelSettings) else ""
        if alsadev and device.port is None and device.desired == "start":
            card = _alsa_card(alsadev)
            if card not in self.alsa_cards:
                self.journal.log(f"[{device.name}] unable to open ALSA device {alsadev}")
                return
            self.qjournal.alsa(device.name, alsadev)
        super().open_device(device, still_closing=still_closing)

    def _ready_state(self, device: Device, identity: Identity) -> str:
        assert isinstance(identity, QuectelIdentity)
        settings = device.settings
        if isinstance(settings, QuectelSettings) and settings.alsadev:
            owner = self.alsa_cards.get(_alsa_card(settings.alsadev), "")
            # An external card is no module's (owner ""); a module's card is only its own.
            if owner != identity.imei and not (settings.external_card and owner == ""):
                self.journal.hazard(
                    f"[{device.name}] data port of IMEI {identity.imei}, voice on "
                    f"{settings.alsadev} of IMEI {owner or '?'}: calls get another module's audio"
                )
        if not identity.initialized:
            return "Not initialized"
        if identity.registration not in self.registered:
            return "GSM not registered"
        return "Free"

    # --- the CLI (the same syntax in both forks) -----------------------------------------------

    def show_devices(self) -> list[str]:
        """`quectel show devices`: the fork's printf formats (RE's header has 9 columns and
        its rows 11 fields: the header misleads, as the real one does)."""
        header: tuple[str, ...] = ("ID", "Group", "State", "RSSI", "Mode", "Submode")
        header += ("Provider Name", "Model", "Firmware", "IMEI", "IMSI", "Number")
        if not self.model.submode_column:
            header = tuple(h for h in header if h not in ("Submode", "IMEI", "IMSI"))
        lines = [self.model.header_format % header]
        for device in self.devices.values():
            ident = _identity(device)
            submode = (0,) if self.model.submode_column else ()
            lines.append(
                self.model.row_format
                % (
                    *self._row_values(device),
                    *submode,
                    ident.provider,
                    ident.model,
                    ident.firmware,
                    ident.imei,
                    ident.imsi,
                    ident.number,
                )
            )
        return lines

    def show_device_state(self, name: str) -> list[str] | None:
        """`quectel show device state`: its lines; None when it crashes Asterisk."""
        device = self.devices.get(name)
        if device is None:
            return [f"Device {name} not found"]
        if self.model.state_of_unregistered_crashes and _identity(device).registration < 0:
            return None  # gsm_regstate2str(-1): reads before its name table, segfault
        ident = _identity(device)
        s = device.settings
        audio = ("Audio UAC", s.alsadev) if isinstance(s, QuectelSettings) and s.alsadev else None
        rows = [
            ("Device", name),
            ("State", device.state),
            audio or ("Audio", s.audio),
            ("Data", s.data),
            ("Voice", "Yes" if ident.voice else "No"),
            ("Manufacturer", ident.manufacturer),
            ("Model", ident.model),
            ("Firmware", ident.firmware),
            ("IMEI", ident.imei),
            ("IMSI", ident.imsi),
            ("ICCID", ident.iccid),
            ("GSM Registration Status", self._reg_name(ident.registration)),
        ]
        return ["-------------- Status -------------"] + [f"  {k:<24}: {v}" for k, v in rows]

    def show_device_settings(self, name: str) -> list[str]:
        """`quectel show device settings`: the ports the fork read at its last load (RE's
        cli.c prints these lines, then about twenty more settings this model leaves out)."""
        device = self.devices.get(name)
        if device is None:
            return [f"Device {name} not found"]
        s = device.settings
        audio = ("Audio UAC", s.alsadev) if isinstance(s, QuectelSettings) and s.alsadev else None
        rows = [
            ("Device", name),
            audio or ("Audio", s.audio),
            ("Audio format", "slin"),
            ("Data", s.data),
            ("Group", s.values.get("group", "0")),
        ]
        return ["------------- Settings ------------"] + [f"  {k:<24}: {v}" for k, v in rows]

    def _reg_name(self, status: int) -> str:
        return self.model.reg_names.get(status) or regstate_name(status)

    def entries(self, name: str | None = None) -> list[dict[str, str]]:
        """With `quectel_entries` (IM), QuectelDeviceEntry fields: chan_dongle's, ResetQuectel
        for ResetDongle, no SMSPDU or USSD lines, the ALSA device as AudioSetting/AudioState
        with USB audio."""
        if not self.model.quectel_entries:
            return super().entries(name)
        out = []
        for device, entry in zip(self.devices.values(), super().entries(None), strict=True):
            if name not in (None, "", device.name):
                continue
            renamed = {("ResetQuectel" if k == "ResetDongle" else k): v for k, v in entry.items()}
            for gone in ("SMSPDU", "USSDUse7BitEncoding", "USSDUseUCS2Decoding"):
                renamed.pop(gone, None)
            settings = device.settings
            if isinstance(settings, QuectelSettings) and settings.alsadev:
                renamed["AudioSetting"] = renamed["AudioState"] = settings.alsadev
            out.append(renamed)
        return out

    def _row_values(self, device: Device) -> tuple[Any, ...]:
        ident = _identity(device)
        group = device.settings.values.get("group", "0")
        return (
            device.name,
            int(group) if group.lstrip("-").isdigit() else 0,
            device.state,
            ident.rssi,
            ident.act,
        )

    # --- the AT conversation -------------------------------------------------------------------

    def _asker(self, port: AtPort) -> Ask:
        timeout = self._init_timeout

        async def ask(cmd: str) -> tuple[str, list[str]]:
            async with asyncio.timeout(timeout):
                return await port.command(cmd)

        return ask


def _identity(device: Device) -> QuectelIdentity:
    """What the modem said since it connected (nothing yet: registration -1)."""
    ident = device.identity
    return ident if isinstance(ident, QuectelIdentity) else QuectelIdentity(provider="", number="")


def _alsa_card(alsadev: str) -> str:
    """The card part of an ALSA name: "hw:Android" / "hw:CARD=Android,DEV=0" -> "Android"."""
    _, _, rest = alsadev.partition(":")
    card = rest.split(",")[0]
    return card.removeprefix("CARD=")


Ask = Callable[[str], Awaitable[tuple[str, list[str]]]]


@dataclass(frozen=True)
class ForkModel:
    """What one chan_quectel fork's device model does its own way, as data."""

    raises_events: bool  # IM's Quectel* events; RE raises no AMI events at all
    registered: frozenset[int]  # the +CREG statuses it counts as registered
    cli_words: tuple[str, ...]  # the CLI commands it registers
    opens_at_load: bool  # False: the first interval pass opens the devices (RE)
    lock_files: bool  # False: TIOCEXCL + flock() on the open tty instead (RE; see TtyClaims)
    header_format: str  # `quectel show devices`, its C printf formats
    row_format: str
    submode_column: bool
    reg_names: Mapping[int, str]  # +CREG names past chan_dongle's six
    quectel_entries: bool  # QuectelDeviceEntry renames chan_dongle's fields (IM)
    state_of_unregistered_crashes: bool  # `show device state` before a +CREG: segfault (RE)
    read_settings: Callable[[ConfFile, Journal], dict[str, DeviceSettings]]
    converse: Callable[[Ask, frozenset[int]], Awaitable[QuectelIdentity]]


def im_settings(conf: ConfFile, journal: Journal) -> dict[str, DeviceSettings]:
    result: dict[str, DeviceSettings] = {}
    for section in _device_sections(conf):
        name = section.name
        first = {k: section.first(k) for k in ("data", "audio", "imei", "imsi")}
        uac, alsadev = section.first("quec_uac"), section.first("alsadev")
        for key, size in (("imei", 15), ("imsi", 15)):
            value = first[key]
            if value is not None and len(value) != size:
                journal.log(f"[{name}] Ignore invalid {key.upper()} value '{value}'")
                first[key] = None
        data, audio, imei, imsi = (first[k] for k in ("data", "audio", "imei", "imsi"))
        if not audio and not uac and not imei and not imsi:
            journal.log(f"Skipping device {name}. Missing required audio setting")
            continue
        if not data and not imei and not imsi:
            journal.log(f"Skipping device {name}. Missing required data_tty setting")
            continue
        if bool(alsadev) != bool(uac):
            journal.log(f"Skipping device {name}. If uac is set as 1, alsa device must")
            continue
        if name in result:
            journal.log(f"device {name} already exists, duplicate in config file")
            continue
        result[name] = QuectelSettings(
            name,
            data or "",
            audio or "",
            imei or "",
            imsi or "",
            _section_values(conf, section),
            alsadev=(alsadev or "") if uac == "1" else "",
        )
    return result


def re_settings(conf: ConfFile, journal: Journal) -> dict[str, DeviceSettings]:
    result: dict[str, DeviceSettings] = {}
    for section in _device_sections(conf):
        name = section.name
        data = section.first("data")
        if not data:
            journal.log(f"Skipping device {name}. Missing required data_tty setting")
            continue
        raw = section.first("uac") or "off"
        uac = raw.lower()
        if uac not in (*_TRUE, *_FALSE, "ext"):
            journal.log(f"[{name}] Ignore invalid value of UAC mode '{raw}'")
            uac = "off"
        alsadev = ""
        if uac == "ext":
            alsadev = section.first("alsadev") or "hw:0"
        elif uac in _TRUE:
            alsadev = section.first("alsadev") or "hw:Android"
        if name in result:
            journal.log(f"device {name} already exists, duplicate in config file")
            continue
        result[name] = QuectelSettings(
            name,
            data,
            section.first("audio") or "",
            section.first("imei") or "",  # ignored by the fork: kept for foreign_bindings
            section.first("imsi") or "",
            _section_values(conf, section),
            alsadev=alsadev,
            external_card=uac == "ext",
            uses_imei=False,
        )
    return result


async def im_conversation(ask: Ask, registered: frozenset[int]) -> QuectelIdentity:
    """AT, AT^DSCI=1, ATE0, identity, CPIN, COPS=0,0, CREG; ERROR up to AT+CSSN is fatal
    (disconnect), ERROR to AT+CREG? or AT+CSCA? leaves it Not initialized."""
    ident = QuectelIdentity(provider="", number="")

    async def need(cmd: str) -> list[str]:
        final, lines = await ask(cmd)
        if final != "OK":
            raise InitError(f"{cmd} answered {final}")
        return list(lines)

    for cmd in ("AT", "AT^DSCI=1", "ATE0"):
        await need(cmd)
    ident.manufacturer = answer_plain(await need("AT+CGMI"))
    ident.model = answer_plain(await need("AT+CGMM"))
    ident.firmware = answer_plain(await need("AT+CGMR"))
    await need("AT+CMEE=0")
    ident.imei = answer_number(await need("AT+CGSN"))
    ident.imsi = answer_number(await need("AT+CIMI"))
    if answer_prefixed(await need("AT+CPIN?"), "+CPIN:") != "READY":
        raise InitError("SIM not ready")
    await need("AT+COPS=0,0")
    await need("AT+CREG=2")
    final, lines = await ask("AT+CREG?")
    if final != "OK":
        return ident
    ident.registration = reg_status(lines, "+CREG:") or 0
    await ask("AT+CNUM")
    qpcmv, _ = await ask("AT+QPCMV?")
    cpcmreg, _ = await ask("AT+CPCMREG?")
    ident.voice = "OK" in (qpcmv, cpcmreg)
    if (await ask("AT+CSCA?"))[0] != "OK":
        return ident
    await need("AT+CSSN=1,1")
    for cmd in ("AT+CMGF=0", 'AT+CSCS="UCS2"', 'AT+CPMS="SM","SM","SM"'):
        await ask(cmd)
    ident.initialized = (await ask("AT+CNMI=2,1,0,2,0"))[0] == "OK"
    final, lines = await ask("AT+CSQ")
    ident.rssi = csq_value(lines) or 0
    cops = answer_prefixed((await ask("AT+COPS?"))[1], "+COPS:") or ""
    ident.provider = cops.split('"')[1] if cops.count('"') >= 2 else ""
    return ident


async def re_conversation(ask: Ask, registered: frozenset[int]) -> QuectelIdentity:
    """The generic stage, then one by manufacturer. Errors never disconnect: the device
    stays Not initialized (the conversation stops there)."""
    ident = QuectelIdentity(provider="", number="")

    async def run(*cmds: str) -> list[str]:
        lines: list[str] = []
        for cmd in cmds:
            final, lines = await ask(cmd)
            if final != "OK":
                raise _Stop
        return list(lines)

    try:
        await run("AT", "ATZ", "ATE0", 'AT+CSCS="UCS2"')
        ident.manufacturer = answer_plain(await run("AT+CGMI"))
        ident.model = answer_plain(await run("AT+CGMM"))
        ident.firmware = answer_plain(await run("AT+CGMR")).removeprefix("+CGMR:").strip()
        await run("AT+CMEE=0")
        ident.imei = answer_number(await run("AT+CGSN"))
        ident.imsi = answer_number(await run("AT+CIMI"))
        await run("AT+CPIN?", "AT+COPS=3,0", "AT+CREG=2")
        ident.registration = reg_status(await run("AT+CREG?"), "+CREG:") or 0
        await ask("AT+CNUM")
        await run("AT+CSCA?", "AT+CSSN=0,0", "AT+CMGF=0", "AT+VTD=1")
        maker = ident.manufacturer.lower()
        if maker.startswith("quectel"):
            ident.iccid = (answer_prefixed(await run("AT+QCCID"), "+QCCID:") or "").strip()
            await run("AT+QTONEDET=1")
            ident.voice = answer_prefixed(await run("AT+QPCMV?"), "+QPCMV:") is not None
            await run("AT^DSCI=0")
            for ind in ('"ccinfo",1,0', '"csq",1,0', '"act",1,0', '"ring",0,0'):
                await run(f"AT+QINDCFG={ind}")
            await run("AT+QTONEDET=0", "AT+CEREG=2")
        elif maker.startswith("simcom"):
            ident.iccid = (answer_prefixed(await run("AT+CICCID"), "+ICCID:") or "").strip()
            ident.voice = answer_prefixed(await run("AT+CPCMREG?"), "+CPCMREG:") is not None
            await run("AT+CLCC=1", "AT+CEREG=2")
            eps = reg_status(await run("AT+CEREG?"), "+CEREG:")
            if ident.registration not in registered and eps is not None:
                ident.registration = eps
            await run("AT+CNSMOD=1", "AT+AUTOCSQ=1,1", 'AT+EXUNSOL="SQ",1', "AT+CLTS=1")
        await run("AT")
        ident.initialized = True
        # the answer to the final AT queues AT+CSQ (RE's at_response.c)
        final, lines = await ask("AT+CSQ")
        ident.rssi = (csq_value(lines) or 0) if final == "OK" else 0
    except _Stop:
        pass
    return ident


class _Stop(Exception):
    """RE's conversation stops at an error (the device stays connected)."""


# IchthysMaranatha's fork: chan_dongle renamed, plus Quectel/SIMCom voice set-up.
IM_MODEL = ForkModel(
    raises_events=True,
    registered=_IM_REGISTERED,
    cli_words=("quectel",),
    opens_at_load=True,
    lock_files=True,
    header_format=_IM_HEADER,
    row_format=_IM_ROW,
    submode_column=True,
    reg_names={},
    quectel_entries=True,
    state_of_unregistered_crashes=False,
    read_settings=im_settings,
    converse=im_conversation,
)
# RoEdAl's fork: a rewrite. No AMI, no lock files, connects on its interval timer.
RE_MODEL = ForkModel(
    raises_events=False,
    registered=_RE_REGISTERED,
    cli_words=("quectel", "simcom"),
    opens_at_load=False,
    lock_files=False,
    header_format=_RE_HEADER,
    row_format=_RE_ROW,
    submode_column=False,
    reg_names=_RE_REG_NAMES,
    quectel_entries=False,
    state_of_unregistered_crashes=True,
    read_settings=re_settings,
    converse=re_conversation,
)
