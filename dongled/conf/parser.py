"""The include tree of a channel driver's config file, read in Asterisk's order: sections,
templates, (+) additions, #include and #tryinclude, and where each setting dongled edits sits.

Apart from the line rules (syntax.py) and from the document (dongleconf.py) because this is
the walk over files: it reads through the functions it is given (the disk, or files in
memory for an edit's read-back), and builds plain records the document then checks.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass

from dongled.conf.syntax import (
    BLANKS,
    BOM,
    BSLASH,
    MAX_LINE,
    decode,
    line_body,
    split_lines,
    strip_blanks,
    uncomment,
)
from dongled.core.errors import ConfError

# chan_dongle reads these first-match; chan_quectel adds USB audio (UAC): a switch (quec_uac=
# in one fork, uac= in the other) and the ALSA card (alsadev=).
KEYS = (b"data", b"audio", b"imei", b"imsi", b"alsadev", b"quec_uac", b"uac")
_MAX_INCLUDE_DEPTH = 10
_GLOB_MAGIC = re.compile(r"[*?[]")


@dataclass(frozen=True, slots=True)
class Var:
    """One data/audio/imei/imsi setting and where its value bytes are."""

    key: bytes  # lower-cased
    value: bytes
    path: str
    index: int  # 0-based line index in `path`
    span: tuple[int, int] | None  # value bytes in the line; None: not safely editable
    owner: bytes  # the section whose body holds the line
    inherited: bool = False


@dataclasses.dataclass(slots=True)
class Section:
    """A section as read, templates included; (+) adds to it in place."""

    name: bytes
    template: bool
    path: str
    index: int
    vars: list[Var]
    anchor: tuple[str, int]  # last setting line of the section's own body

    def first(self, key: bytes) -> Var | None:
        """The setting of `key` chan_dongle reads: the first one."""
        return next((v for v in self.vars if v.key == key), None)


class Parser:
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
        self.sections: list[Section] = []
        self._current: Section | None = None  # Asterisk's cfg->current

    def run(self) -> None:
        data = self._read(self._main)
        if data is None:
            raise ConfError(self._main, None, "does not exist or is not a regular file")
        self._file(self._main, data, [os.path.normpath(self._main)])

    def _file(self, path: str, data: bytes, stack: list[str]) -> None:
        lines = self.files.setdefault(path, split_lines(data))
        # Each file starts in whatever section was current; a header changes it only here.
        local = self._current
        own: Section | None = None  # the section whose header in this file opened the body
        depth = 0
        for index, line in enumerate(lines):
            lineno = index + 1
            body = line_body(line)
            if b"\0" in body:
                raise ConfError(path, lineno, "NUL byte in the file (truncated or corrupted?)")
            if len(body) >= MAX_LINE:
                continue
            start = len(BOM) if index == 0 and body.startswith(BOM) else 0
            raw, offs, depth = uncomment(body, start, depth, path, lineno)
            if raw is None:
                continue
            text, offs = strip_blanks(raw, offs)
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

    def _find(self, name: bytes, *, templates: bool) -> Section | None:
        # does_category_match(): strcasecmp, and an empty name matches any section.
        for section in self.sections:
            if (not name or section.name.lower() == name.lower()) and (
                templates or not section.template
            ):
                return section
        return None

    def _header(self, text: bytes, path: str, index: int) -> tuple[Section, Section | None]:
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
        target = Section(name, False, path, index, [], (path, index))
        new: Section | None = target  # None once (+) merged it into an existing section
        for option in options:
            if option == b"!":
                target.template = True
            elif option.startswith(b"+"):
                if option != b"+":
                    raise ConfError(path, lineno, "dongled does not support filtered (+...)")
                existing = self._find(name, templates=False)
                if existing is None:
                    raise ConfError(
                        path, lineno, f"[{decode(name)}](+) adds to a section not defined above"
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
                        f"[{decode(name)}] inherits from [{decode(option)}], "
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
        arg = text[end + 1 :].strip(BLANKS)
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
        section: Section,
        own_body: bool,
    ) -> None:
        lineno = index + 1
        escaped = text[0] == BSLASH
        if escaped and (len(text) < 2 or not 33 <= text[1] < 128):
            raise ConfError(path, lineno, "invalid escape at the start of the line")
        skip = 1 if escaped else 0
        eq = text.find(b"=", 2 * skip)  # config.c searches from cur + is_escaped, twice
        if eq < 0:
            return  # no '=': Asterisk warns and ignores the line
        append = eq > 2 * skip and text[eq - 1] == ord("+")
        name = text[skip : eq - 1 if append else eq].strip(BLANKS)
        if not name:
            return
        if own_body:
            section.anchor = (path, index)
        key = name.lower()
        if key not in KEYS:
            return
        if append:
            raise ConfError(
                path,
                lineno,
                f"'{decode(name)} +=' is not supported; write a plain {decode(key)}= line",
            )
        start = eq + 2 if text[eq + 1 : eq + 2] == b">" else eq + 1
        rest = text[start:]
        value = rest.strip(BLANKS)
        if value:
            first = start + len(rest) - len(rest.lstrip(BLANKS))
            lo, hi = offs[first], offs[first + len(value) - 1] + 1
            span = (lo, hi) if hi - lo == len(value) else None  # None: a comment or escape inside
        else:
            at = offs[start - 1] + 1
            while at < len(body) and body[at] in b" \t":
                at += 1
            span = (at, at)
        section.vars.append(Var(key, value, path, index, span, section.name))


def read_disk(path: str) -> bytes | None:
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None  # Asterisk ignores what is not a regular file
        with open(path, "rb") as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise ConfError(path, None, f"cannot read: {exc.strerror}") from exc


def glob_disk(pattern: str) -> list[str]:
    return sorted(os.path.normpath(p) for p in glob.glob(pattern))
