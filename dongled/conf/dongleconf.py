"""Round-trip document model of chan_dongle's dongle.conf and the files it #includes.

Parsing mirrors Asterisk's main/config.c (comment stripping, headers, templates, (+),
#include) so dongled sees the values chan_dongle will see. Files are kept as bytes, line by
line: rendering an unchanged document gives back exactly what was read, and an edit
replaces only the value bytes of the line Asterisk actually reads.

This module is the document: the device sections as the driver reads them, checked (names,
IMEIs), and edits that must read back as exactly what was meant. The line rules are in
syntax.py, the walk over the include tree in parser.py, where an edit's bytes go in edit.py.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import PurePath

from dongled.conf import edit
from dongled.conf.alsadev import writable as alsadev_writable
from dongled.conf.parser import KEYS, Parser, Section, Var, glob_disk, read_disk
from dongled.conf.syntax import decode
from dongled.core.errors import ConfError

_SWITCHES = (b"quec_uac", b"uac")
_NOT_DEVICES = (b"general", b"defaults")  # compared case-insensitively, as chan_dongle does
_MAX_NAME = 30  # chan_dongle's device id buffer


@dataclass(frozen=True, slots=True, kw_only=True)
class Origin:
    """Where a setting a section inherits is written: in template `template`, at path:line."""

    key: str
    template: str
    path: str
    line: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceSection:
    """A device section as chan_dongle reads it (effective values, first match wins)."""

    name: str
    imei: str | None
    imsi: str | None
    data: str | None
    audio: str | None
    data_inherited: bool
    audio_inherited: bool
    path: str
    line: int
    # data=/audio= taken from a template; not compared: an edit elsewhere shifts the lines
    inherited: tuple[Origin, ...] = field(default=(), compare=False)
    # USB audio (chan_quectel): the ALSA card, and the switches as written (key, value); which
    # switch counts is the driver's (`Driver.uses_uac`)
    alsadev: str | None = None
    alsadev_inherited: bool = False
    switches: tuple[tuple[str, str], ...] = ()
    # where the imei= line is (path, line): messages about the IMEI point there, not at the
    # [section] line; None without one
    imei_at: tuple[str, int] | None = field(default=None, compare=False)

    @property
    def imei_where(self) -> str:
        """`path:line` of the imei= line, else of the section header."""
        path, line = self.imei_at or (self.path, self.line)
        return f"{path}:{line}"


def inherited_message(sec: DeviceSection) -> str:
    """What to tell an admin about a section whose data=/audio= come from a template, naming
    the file and line of the section and of each template line."""
    where = "; ".join(
        f"{o.key}= from template [{o.template}] at {o.path}:{o.line}" for o in sec.inherited
    )
    return (
        f"{sec.path}:{sec.line}: [{sec.name}] takes {where or 'data=/audio= from a template'}: "
        "dongled will not edit a template (that would move every device using it); "
        f"move data= and audio= into [{sec.name}] itself"
    )


def _effective(var: Var | None) -> str | None:
    return decode(var.value) if var is not None and var.value else None  # empty is absent


def _inherited(var: Var | None) -> bool:
    return var is not None and var.inherited


class DongleConf:
    """A parsed dongle.conf include tree; immutable, edits return a new document."""

    __slots__ = ("_devices", "_files", "_main", "_sections")

    def __init__(self, parser: Parser, main: str) -> None:
        self._main = main
        self._files = parser.files
        self._sections = [
            s for s in parser.sections if not s.template and s.name.lower() not in _NOT_DEVICES
        ]
        self._devices = self._check_devices()

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DongleConf:
        main = os.fspath(path)
        parser = Parser(read_disk, glob_disk, main)
        parser.run()
        return cls(parser, main)

    @classmethod
    def parse(cls, files: Mapping[str, bytes], main: str) -> DongleConf:
        normal = {os.path.normpath(k): v for k, v in files.items()}

        def read(path: str) -> bytes | None:
            return files[path] if path == main and path in files else normal.get(path)

        def expand(pattern: str) -> list[str]:
            return sorted(k for k in normal if PurePath(k).match(pattern))

        parser = Parser(read, expand, main)
        parser.run()
        return cls(parser, main)

    def devices(self) -> dict[str, DeviceSection]:
        return dict(self._devices)

    def render(self) -> dict[str, bytes]:
        return {path: b"".join(lines) for path, lines in self._files.items()}

    def with_ports(
        self,
        changes: Mapping[str, tuple[str, str]],
        alsa: Collection[str] = (),
        data_only: Collection[str] = (),
    ) -> tuple[DongleConf, dict[str, bytes]]:
        """Set data=/audio= of the named device sections (data=/alsadev= of those in `alsa`,
        whose voice is their module's USB sound card; data= alone of those in `data_only`,
        whose voice is a card outside the module); returns only the changed files."""
        edits: dict[str, dict[bytes, str]] = {}
        for name, (data, voice) in changes.items():
            edit.check_port(data)
            if name in data_only:
                edits[name] = {b"data": data}  # the voice is the admin's: never written
            elif name in alsa:
                if not alsadev_writable(voice):
                    raise ValueError(f"refusing to write alsadev={voice!r}: not hw:CARD=<card id>")
                edits[name] = {b"data": data, b"alsadev": voice}
            else:
                edit.check_port(voice)
                edits[name] = {b"data": data, b"audio": voice}
        return self._edit(edits)

    def with_imei(self, section: str, imei: str) -> tuple[DongleConf, dict[str, bytes]]:
        """Set imei= of a device section (adopting a stick); returns only the changed files."""
        edit.check_imei(imei)
        return self._edit({section: {b"imei": imei}})

    def _check_devices(self) -> dict[str, DeviceSection]:
        devices: dict[str, DeviceSection] = {}
        names: dict[bytes, Section] = {}
        imeis: dict[bytes, Section] = {}
        for s in self._sections:
            where = (s.path, s.index + 1)
            if not s.name or len(s.name) > _MAX_NAME:
                raise ConfError(*where, f"device name [{decode(s.name)}] must be 1-30 bytes")
            other = names.setdefault(s.name.lower(), s)
            if other is not s:
                raise ConfError(
                    *where,
                    f"[{decode(s.name)}] is already defined at {other.path}:{other.index + 1}; "
                    "chan_dongle would reject this one",
                )
            values = {key: s.first(key) for key in KEYS}
            imei = values[b"imei"]
            if imei is not None and imei.value:
                other = imeis.setdefault(imei.value, s)
                if other is not s:
                    first = other.first(b"imei")
                    at = f" at {first.path}:{first.index + 1}" if first is not None else ""
                    # a template's imei= shared by two sections: the second section is wrong
                    at_line = where if imei.inherited else (imei.path, imei.index + 1)
                    raise ConfError(
                        *at_line,
                        f"[{decode(s.name)}] imei {decode(imei.value)} is also set in "
                        f"[{decode(other.name)}]{at}; "
                        "dongled cannot tell which section that stick belongs to",
                    )

            devices[decode(s.name)] = DeviceSection(
                name=decode(s.name),
                imei=_effective(values[b"imei"]),
                imsi=_effective(values[b"imsi"]),
                data=_effective(values[b"data"]),
                audio=_effective(values[b"audio"]),
                data_inherited=_inherited(values[b"data"]),
                audio_inherited=_inherited(values[b"audio"]),
                alsadev=_effective(values[b"alsadev"]),
                alsadev_inherited=_inherited(values[b"alsadev"]),
                switches=tuple(
                    (decode(key), value)
                    for key in _SWITCHES
                    if (value := _effective(values[key])) is not None
                ),
                path=s.path,
                line=s.index + 1,
                imei_at=(imei.path, imei.index + 1) if imei is not None and imei.value else None,
                inherited=tuple(
                    Origin(
                        key=decode(v.key), template=decode(v.owner), path=v.path, line=v.index + 1
                    )
                    for v in (values[b"data"], values[b"audio"], values[b"alsadev"])
                    if v is not None and v.inherited
                ),
            )
        return devices

    def _edit(
        self, edits: Mapping[str, Mapping[bytes, str]]
    ) -> tuple[DongleConf, dict[str, bytes]]:
        sections = {decode(s.name): s for s in self._sections}
        replace, insert = edit.line_edits(sections, edits, self._main)
        old = self.render()
        files = dict(old)
        for path in replace.keys() | insert.keys():
            files[path] = edit.apply(self._files[path], replace.get(path, {}), insert.get(path, {}))
        changed = {path: data for path, data in files.items() if data != old[path]}
        if not changed:
            return self, {}
        try:
            result = DongleConf.parse(files, self._main)
        except ConfError as exc:
            raise ConfError(self._main, None, f"refusing the edit, it would give: {exc}") from exc
        self._verify(result, edits)
        return result, changed

    def _verify(self, result: DongleConf, edits: Mapping[str, Mapping[bytes, str]]) -> None:
        """The edited text must read back as exactly the intended values, nothing else."""
        expected = {}
        for name, device in self._devices.items():
            wanted = edits.get(name, {})
            expected[name] = dataclasses.replace(
                device,
                line=0,
                data=wanted.get(b"data", device.data),
                audio=wanted.get(b"audio", device.audio),
                alsadev=wanted.get(b"alsadev", device.alsadev),
                imei=wanted.get(b"imei", device.imei),
            )
        got = {name: dataclasses.replace(d, line=0) for name, d in result._devices.items()}
        for name in expected.keys() | got.keys():
            if expected.get(name) != got.get(name):
                device = self._devices.get(name) or result._devices[name]
                raise ConfError(
                    device.path,
                    device.line,
                    f"refusing the edit: [{name}] would read back as {got.get(name)}",
                )


def sections_now(path: str) -> dict[str, DeviceSection] | None:
    """The device sections the file names now; None when it cannot be read or parsed (an
    admin mid-edit, a file gone): each caller says what stands in for them."""
    try:
        return DongleConf.load(path).devices()
    except (ConfError, OSError, ValueError):
        return None
