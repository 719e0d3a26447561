"""Round-trip document model of chan_dongle's dongle.conf and the files it #includes.

Parsing mirrors Asterisk's main/config.c (comment stripping, headers, templates, (+),
#include) so dongled sees the values chan_dongle will see. Files are kept as bytes, line by
line: rendering an unchanged document gives back exactly what was read, and an edit
replaces only the value bytes of the line Asterisk actually reads.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
import stat
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import PurePath

from dongled.conf.alsadev import writable as alsadev_writable
from dongled.core.errors import ConfError

__all__ = [
    "PARKED_AUDIO",
    "PARKED_DATA",
    "DeviceSection",
    "DongleConf",
    "Origin",
    "inherited_message",
]

# Below /dev/null, so open() fails with ENOTDIR; the name tells an admin why.
from dongled.conf.parked import PARKED_AUDIO, PARKED_DATA  # re-exported: the config's own values

# chan_dongle reads these first-match; chan_quectel adds USB audio (UAC): a switch (quec_uac=
# in one fork, uac= in the other) and the ALSA card (alsadev=).
_KEYS = (b"data", b"audio", b"imei", b"imsi", b"alsadev", b"quec_uac", b"uac")
_SWITCHES = (b"quec_uac", b"uac")
_NOT_DEVICES = (b"general", b"defaults")  # compared case-insensitively, as chan_dongle does
_BLANKS = bytes(range(1, 33))  # ast_strip() drops every byte below 33
_BOM = b"\xef\xbb\xbf"
_MAX_LINE = 8191  # config.c reads into char[8192]; a longer line is skipped whole
_MAX_NESTED_COMMENTS = 128
_MAX_INCLUDE_DEPTH = 10
_MAX_NAME = 30  # chan_dongle's device id buffer
_SEMI, _DASH, _BSLASH = ord(";"), ord("-"), ord("\\")
# No '-' at the end: before a "; comment" it would make "--;", which Asterisk reads as the
# close of a block comment (no kernel device name ends so).
_PORT_RE = re.compile(r"/(?:[A-Za-z0-9/_.:+-]{0,253}[A-Za-z0-9/_.:+])?")
_IMEI_RE = re.compile(r"[0-9]{15}")
_GLOB_MAGIC = re.compile(r"[*?[]")


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


@dataclass(frozen=True, slots=True)
class _Var:
    """One data/audio/imei/imsi setting and where its value bytes are."""

    key: bytes  # lower-cased
    value: bytes
    path: str
    index: int  # 0-based line index in `path`
    span: tuple[int, int] | None  # value bytes in the line; None: not safely editable
    owner: bytes  # the section whose body holds the line
    inherited: bool = False


@dataclasses.dataclass(slots=True)
class _Section:
    name: bytes
    template: bool
    path: str
    index: int
    vars: list[_Var]
    anchor: tuple[str, int]  # last setting line of the section's own body


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _split_lines(data: bytes) -> tuple[bytes, ...]:
    """Lines with their own endings; only a final line may lack one."""
    parts = data.split(b"\n")
    lines = [part + b"\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return tuple(lines)


def _body(line: bytes) -> bytes:
    return line[:-1] if line.endswith(b"\n") else line


def _eol(line: bytes) -> bytes:
    if line.endswith(b"\r\n"):
        return b"\r\n"
    return b"\n" if line.endswith(b"\n") else b""


def _strip(text: bytes, offs: list[int]) -> tuple[bytes, list[int]]:
    lead = len(text) - len(text.lstrip(_BLANKS))
    kept = text.strip(_BLANKS)
    return kept, offs[lead : lead + len(kept)]


def _uncomment(
    body: bytes, start: int, depth: int, path: str, lineno: int
) -> tuple[bytes | None, list[int], int]:
    """Asterisk's comment stripping for one line, step for step.

    Returns the text the parser goes on to read (None: the line is inside a block
    comment), the offset in `body` of each byte of it, and the new block-comment depth.
    The buffer is edited as config.c edits its C string, NUL bytes included, so escapes
    and inline block comments end up exactly where Asterisk puts them.
    """
    mem = bytearray(body[start:]) + b"\0"
    pos = [*range(start, len(body)), len(body)]
    new = 0
    proc: int | None = None if depth else 0
    while True:
        c = mem.find(b";", new, mem.index(0, new))
        if c < 0:
            break
        if c > new and mem[c - 1] == _BSLASH:  # "\;" is a literal ';'
            del mem[c - 1]
            del pos[c - 1]
            new = c
        elif mem[c + 1] == _DASH and mem[c + 2] == _DASH and mem[c + 3] != _DASH:  # ";--"
            if depth >= _MAX_NESTED_COMMENTS:
                # Asterisk loops forever on this line.
                raise ConfError(path, lineno, "block comments nested more than 128 deep")
            mem[c] = 0
            new = c + 3
            depth += 1
        elif c >= new + 2 and mem[c - 1] == _DASH and mem[c - 2] == _DASH:  # "--;"
            depth -= 1
            if depth < 0:
                raise ConfError(
                    path,
                    lineno,
                    "'--;' closes a block comment that was never opened; Asterisk would "
                    "ignore the rest of the file",
                )
            new = c + 1
            if depth == 0:
                if proc is None:
                    proc = new
                else:  # join what follows the comment to what preceded it
                    end = mem.index(0, proc)
                    del mem[end:new]
                    del pos[end:new]
                    new = end
        elif depth == 0:  # plain ';' comment: the rest of the line is ignored
            mem[c] = 0
            new = c
        else:
            new = c + 1
    if proc is None:
        return None, [], depth
    end = mem.index(0, proc)
    return bytes(mem[proc:end]), pos[proc:end], depth


class _Parser:
    """Builds the sections of a whole include tree, in Asterisk's order."""

    def __init__(
        self,
        read: Callable[[str], bytes | None],
        expand: Callable[[str], list[str]],
        main: str,
    ) -> None:
        self._read = read
        self._expand = expand
        self._main = main
        self.files: dict[str, tuple[bytes, ...]] = {}
        self.sections: list[_Section] = []
        self._current: _Section | None = None  # Asterisk's cfg->current

    def run(self) -> None:
        data = self._read(self._main)
        if data is None:
            raise ConfError(self._main, None, "does not exist or is not a regular file")
        self._file(self._main, data, [os.path.normpath(self._main)])

    def _file(self, path: str, data: bytes, stack: list[str]) -> None:
        lines = self.files.setdefault(path, _split_lines(data))
        # Each file starts in whatever section was current; a header changes it only here.
        local = self._current
        own: _Section | None = None  # the section whose header in this file opened the body
        depth = 0
        for index, line in enumerate(lines):
            lineno = index + 1
            body = _body(line)
            if b"\0" in body:
                raise ConfError(path, lineno, "NUL byte in the file (truncated or corrupted?)")
            if len(body) >= _MAX_LINE:
                continue
            start = len(_BOM) if index == 0 and body.startswith(_BOM) else 0
            raw, offs, depth = _uncomment(body, start, depth, path, lineno)
            if raw is None:
                continue
            text, offs = _strip(raw, offs)
            if not text:
                continue
            if text[0] == ord("["):
                local, own = self._header(text, path, index)
            elif text[0] == ord("#"):
                self._directive(text, path, lineno, stack)
            else:
                if local is None:
                    raise ConfError(path, lineno, "setting before the first [section]")
                self._setting(text, offs, body, path, index, local, own is local)

    def _find(self, name: bytes, *, templates: bool) -> _Section | None:
        # does_category_match(): strcasecmp, and an empty name matches any section.
        for section in self.sections:
            if (not name or section.name.lower() == name.lower()) and (
                templates or not section.template
            ):
                return section
        return None

    def _header(self, text: bytes, path: str, index: int) -> tuple[_Section, _Section | None]:
        lineno = index + 1
        close = text.find(b"]")
        if close < 0:
            raise ConfError(path, lineno, "section header has no closing ']'")
        name = text[1:close]
        rest = text[close + 1 :]
        options: list[bytes] = []
        if rest.startswith(b"("):
            end = rest.find(b")")
            if end < 0:
                raise ConfError(path, lineno, "section header has no closing ')'")
            options = rest[1:end].split(b",")
        target = _Section(name, False, path, index, [], (path, index))
        new: _Section | None = target  # None once (+) merged it into an existing section
        for option in options:
            if option == b"!":
                target.template = True
            elif option.startswith(b"+"):
                if option != b"+":
                    raise ConfError(path, lineno, "dongled does not support filtered (+...)")
                existing = self._find(name, templates=False)
                if existing is None:
                    raise ConfError(
                        path, lineno, f"[{_text(name)}](+) adds to a section not defined above"
                    )
                if new is not None:
                    existing.template |= new.template
                    existing.vars.extend(new.vars)
                    new = None
                target = existing
                self._current = existing
            else:
                base = self._find(option, templates=True)
                if base is None:
                    raise ConfError(
                        path,
                        lineno,
                        f"[{_text(name)}] inherits from [{_text(option)}], "
                        "which is not defined above",
                    )
                target.vars.extend(dataclasses.replace(v, inherited=True) for v in base.vars)
        if new is not None:
            self.sections.append(new)
            self._current = new
        return target, new

    def _directive(self, text: bytes, path: str, lineno: int, stack: list[str]) -> None:
        end = 1
        while end < len(text) and 32 < text[end] < 128:  # C's signed char stops at >= 128
            end += 1
        kind = text[1:end].lower()
        arg = text[end + 1 :].strip(_BLANKS)
        if kind == b"exec":
            raise ConfError(
                path, lineno, "dongled does not run #exec; move the device sections to a plain file"
            )
        if kind not in (b"include", b"tryinclude") or not arg:
            return  # Asterisk warns and goes on
        if arg[:1] in (b'"', b"<") and arg[-1:] == (b">" if arg[:1] == b"<" else b'"'):
            arg = arg[1:-1]
        target = os.fsdecode(arg)
        if not os.path.isabs(target):
            target = os.path.join(os.path.dirname(self._main), target)
        target = os.path.normpath(target)
        found = 0
        for included in self._expand(target) if _GLOB_MAGIC.search(target) else [target]:
            if included in stack:
                raise ConfError(path, lineno, f"#include loop: {included} includes itself")
            if len(stack) > _MAX_INCLUDE_DEPTH:
                raise ConfError(path, lineno, "#include nested deeper than Asterisk's limit of 10")
            data = self._read(included)
            if data is not None:
                found += 1
                self._file(included, data, [*stack, included])
        if not found and kind == b"include":
            raise ConfError(path, lineno, f"#include file {target} does not exist")

    def _setting(
        self,
        text: bytes,
        offs: list[int],
        body: bytes,
        path: str,
        index: int,
        section: _Section,
        own_body: bool,
    ) -> None:
        lineno = index + 1
        escaped = text[0] == _BSLASH
        if escaped and (len(text) < 2 or not 33 <= text[1] < 128):
            raise ConfError(path, lineno, "invalid escape at the start of the line")
        skip = 1 if escaped else 0
        eq = text.find(b"=", 2 * skip)  # config.c searches from cur + is_escaped, twice
        if eq < 0:
            return  # no '=': Asterisk warns and ignores the line
        append = eq > 2 * skip and text[eq - 1] == ord("+")
        name = text[skip : eq - 1 if append else eq].strip(_BLANKS)
        if not name:
            return
        if own_body:
            section.anchor = (path, index)
        key = name.lower()
        if key not in _KEYS:
            return
        if append:
            raise ConfError(
                path,
                lineno,
                f"'{_text(name)} +=' is not supported; write a plain {_text(key)}= line",
            )
        start = eq + 2 if text[eq + 1 : eq + 2] == b">" else eq + 1
        rest = text[start:]
        value = rest.strip(_BLANKS)
        if value:
            first = start + len(rest) - len(rest.lstrip(_BLANKS))
            lo, hi = offs[first], offs[first + len(value) - 1] + 1
            span = (lo, hi) if hi - lo == len(value) else None  # None: a comment or escape inside
        else:
            at = offs[start - 1] + 1
            while at < len(body) and body[at] in b" \t":
                at += 1
            span = (at, at)
        section.vars.append(_Var(key, value, path, index, span, section.name))


def _first(section: _Section, key: bytes) -> _Var | None:
    return next((v for v in section.vars if v.key == key), None)


def _effective(var: _Var | None) -> str | None:
    return _text(var.value) if var is not None and var.value else None  # empty is absent


def _inherited(var: _Var | None) -> bool:
    return var is not None and var.inherited


def _check_port(value: str) -> None:
    if not _PORT_RE.fullmatch(value):
        raise ValueError(
            f"refusing to write {value!r}: a port must be an absolute path of at most 255 "
            "characters from [A-Za-z0-9/_.:+-], not ending in '-'"
        )


class DongleConf:
    """A parsed dongle.conf include tree; immutable, edits return a new document."""

    __slots__ = ("_devices", "_files", "_main", "_sections")

    def __init__(self, parser: _Parser, main: str) -> None:
        self._main = main
        self._files = parser.files
        self._sections = [
            s for s in parser.sections if not s.template and s.name.lower() not in _NOT_DEVICES
        ]
        self._devices = self._check_devices()

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DongleConf:
        main = os.fspath(path)
        parser = _Parser(_read_disk, _glob_disk, main)
        parser.run()
        return cls(parser, main)

    @classmethod
    def parse(cls, files: Mapping[str, bytes], main: str) -> DongleConf:
        normal = {os.path.normpath(k): v for k, v in files.items()}

        def read(path: str) -> bytes | None:
            return files[path] if path == main and path in files else normal.get(path)

        def expand(pattern: str) -> list[str]:
            return sorted(k for k in normal if PurePath(k).match(pattern))

        parser = _Parser(read, expand, main)
        parser.run()
        return cls(parser, main)

    @property
    def main_path(self) -> str:
        return self._main

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
            _check_port(data)
            if name in data_only:
                edits[name] = {b"data": data}  # the voice is the admin's: never written
            elif name in alsa:
                if not alsadev_writable(voice):
                    raise ValueError(f"refusing to write alsadev={voice!r}: not hw:CARD=<card id>")
                edits[name] = {b"data": data, b"alsadev": voice}
            else:
                _check_port(voice)
                edits[name] = {b"data": data, b"audio": voice}
        return self._edit(edits)

    def with_imei(self, section: str, imei: str) -> tuple[DongleConf, dict[str, bytes]]:
        """Set imei= of a device section (adopting a stick); returns only the changed files."""
        if not _IMEI_RE.fullmatch(imei):
            raise ValueError(f"refusing to write imei {imei!r}: it must be 15 digits")
        return self._edit({section: {b"imei": imei}})

    def _check_devices(self) -> dict[str, DeviceSection]:
        devices: dict[str, DeviceSection] = {}
        names: dict[bytes, _Section] = {}
        imeis: dict[bytes, _Section] = {}
        for s in self._sections:
            where = (s.path, s.index + 1)
            if not s.name or len(s.name) > _MAX_NAME:
                raise ConfError(*where, f"device name [{_text(s.name)}] must be 1-30 bytes")
            other = names.setdefault(s.name.lower(), s)
            if other is not s:
                raise ConfError(
                    *where,
                    f"[{_text(s.name)}] is already defined at {other.path}:{other.index + 1}; "
                    "chan_dongle would reject this one",
                )
            values = {key: _first(s, key) for key in _KEYS}
            imei = values[b"imei"]
            if imei is not None and imei.value:
                other = imeis.setdefault(imei.value, s)
                if other is not s:
                    first = _first(other, b"imei")
                    at = f" at {first.path}:{first.index + 1}" if first is not None else ""
                    # a template's imei= shared by two sections: the second section is wrong
                    at_line = where if imei.inherited else (imei.path, imei.index + 1)
                    raise ConfError(
                        *at_line,
                        f"[{_text(s.name)}] imei {_text(imei.value)} is also set in "
                        f"[{_text(other.name)}]{at}; "
                        "dongled cannot tell which section that stick belongs to",
                    )

            devices[_text(s.name)] = DeviceSection(
                name=_text(s.name),
                imei=_effective(values[b"imei"]),
                imsi=_effective(values[b"imsi"]),
                data=_effective(values[b"data"]),
                audio=_effective(values[b"audio"]),
                data_inherited=_inherited(values[b"data"]),
                audio_inherited=_inherited(values[b"audio"]),
                alsadev=_effective(values[b"alsadev"]),
                alsadev_inherited=_inherited(values[b"alsadev"]),
                switches=tuple(
                    (_text(key), value)
                    for key in _SWITCHES
                    if (value := _effective(values[key])) is not None
                ),
                path=s.path,
                line=s.index + 1,
                imei_at=(imei.path, imei.index + 1) if imei is not None and imei.value else None,
                inherited=tuple(
                    Origin(key=_text(v.key), template=_text(v.owner), path=v.path, line=v.index + 1)
                    for v in (values[b"data"], values[b"audio"], values[b"alsadev"])
                    if v is not None and v.inherited
                ),
            )
        return devices

    def _edit(
        self, edits: Mapping[str, Mapping[bytes, str]]
    ) -> tuple[DongleConf, dict[str, bytes]]:
        sections = {_text(s.name): s for s in self._sections}
        replace: dict[str, dict[int, list[tuple[int, int, bytes]]]] = {}
        insert: dict[str, dict[int, list[bytes]]] = {}
        for name, values in edits.items():
            section = sections.get(name)
            if section is None:
                raise ConfError(self._main, None, f"no device section [{name}]")
            for key, value in values.items():
                new = value.encode()
                var = _first(section, key)
                if var is None:
                    path, index = section.anchor
                    insert.setdefault(path, {}).setdefault(index, []).append(key + b"=" + new)
                elif var.inherited:
                    raise ConfError(
                        var.path,
                        var.index + 1,
                        f"{_text(key)}= of [{name}] ({section.path}:{section.index + 1}) comes "
                        f"from template [{_text(var.owner)}]; move it into the section",
                    )
                elif var.value != new:
                    if var.span is None:
                        raise ConfError(
                            var.path,
                            var.index + 1,
                            f"{_text(key)}= has a comment or escape inside its value; "
                            "dongled will not edit it, simplify the line",
                        )
                    edit = (*var.span, new)
                    replace.setdefault(var.path, {}).setdefault(var.index, []).append(edit)
        old = self.render()
        files = dict(old)
        for path in replace.keys() | insert.keys():
            files[path] = _apply(self._files[path], replace.get(path, {}), insert.get(path, {}))
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
            edit = edits.get(name, {})
            expected[name] = dataclasses.replace(
                device,
                line=0,
                data=edit.get(b"data", device.data),
                audio=edit.get(b"audio", device.audio),
                alsadev=edit.get(b"alsadev", device.alsadev),
                imei=edit.get(b"imei", device.imei),
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


def _apply(
    lines: tuple[bytes, ...],
    replace: Mapping[int, list[tuple[int, int, bytes]]],
    insert: Mapping[int, list[bytes]],
) -> bytes:
    default_eol = next((e for e in map(_eol, lines) if e), b"\n")
    out: list[bytes] = []
    for index, line in enumerate(lines):
        for lo, hi, new in sorted(replace.get(index, []), reverse=True):
            line = line[:lo] + new + line[hi:]
        added = insert.get(index, [])
        eol = _eol(line)
        if not added:
            out.append(line)
        elif eol:
            out.append(line)
            out.extend(new + eol for new in added)
        else:  # the last line had no newline: keep it that way after the insertion
            out.append(line + default_eol)
            out.extend(new + default_eol for new in added[:-1])
            out.append(added[-1])
    return b"".join(out)


def _read_disk(path: str) -> bytes | None:
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None  # Asterisk ignores what is not a regular file
        with open(path, "rb") as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise ConfError(path, None, f"cannot read: {exc.strerror}") from exc


def _glob_disk(pattern: str) -> list[str]:
    return sorted(os.path.normpath(p) for p in glob.glob(pattern))
