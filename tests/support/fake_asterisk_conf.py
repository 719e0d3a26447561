"""A small Asterisk-like config parser for the test Asterisk (not dongled's own parser).

It follows Asterisk's main/config.c closely enough for dongle.conf in tests: `[section]`,
`[name](!)` templates, `[name](tpl1,tpl2)` inheritance (inherited items come BEFORE the section's
own), `[name](+)` additions, `key = value`, `key => value`, `key += value`, `;` comments, `\\;`,
nestable `;-- --;` block comments, `#include` / `#tryinclude`. It is written independently of
dongled's `dongleconf` on purpose: the test Asterisk must not share the code it is testing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

MAX_LINE = 8192
MAX_INCLUDE_DEPTH = 10


class ConfParseError(Exception):
    """The file would be rejected by Asterisk's parser (the real chan_dongle may then crash)."""

    def __init__(self, path: str, line: int, message: str) -> None:
        self.path = path
        self.line = line
        super().__init__(f"{path}:{line}: {message}")


@dataclass(slots=True)
class ConfSection:
    """One `[name]` category; `items` holds inherited items first, keys lower-cased."""

    name: str
    template: bool = False
    items: list[tuple[str, str]] = field(default_factory=list)

    def first(self, key: str) -> str | None:
        """chan_dongle's lookup for data/audio/imei/imsi: the first match wins."""
        for k, v in self.items:
            if k == key:
                return v
        return None

    def last(self, key: str) -> str | None:
        """Lookup for every other key: the last value wins."""
        found: str | None = None
        for k, v in self.items:
            if k == key:
                found = v
        return found


@dataclass(slots=True)
class ConfFile:
    sections: list[ConfSection] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def find(self, name: str) -> ConfSection | None:
        for section in self.sections:
            if section.name == name:
                return section
        return None


def parse_conf(path: str) -> ConfFile:
    """Parse `path` as Asterisk would; raise ConfParseError where Asterisk rejects the file."""
    conf = ConfFile()
    state = _ParseState(conf)
    _parse_file(path, state, depth=0, lineno=0, optional=False)
    return conf


@dataclass(slots=True)
class _ParseState:
    conf: ConfFile
    current: ConfSection | None = None
    comment_depth: int = 0


def _parse_file(path: str, state: _ParseState, *, depth: int, lineno: int, optional: bool) -> None:
    if depth > MAX_INCLUDE_DEPTH:
        raise ConfParseError(path, lineno, "includes nested too deep")
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        if optional:
            return
        raise ConfParseError(path, lineno, f"cannot read: {exc.strerror}") from exc
    text = raw.decode("utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        if len(line.encode("utf-8", errors="replace")) > MAX_LINE:
            state.conf.warnings.append(f"{path}:{number}: line too long, skipped")
            continue
        stripped, state.comment_depth = _strip_comments(line, state.comment_depth)
        stripped = stripped.strip()
        if stripped:
            _parse_line(stripped, path, number, state, depth)


def _strip_comments(line: str, depth: int) -> tuple[str, int]:
    out: list[str] = []
    i = 0
    while i < len(line):
        if line.startswith(";--", i):
            depth += 1
            i += 3
        elif depth > 0:
            if line.startswith("--;", i):
                depth -= 1
                i += 3
            else:
                i += 1
        elif line.startswith("\\;", i):
            out.append(";")
            i += 2
        elif line[i] == ";":
            break
        else:
            out.append(line[i])
            i += 1
    return "".join(out), depth


def _parse_line(line: str, path: str, number: int, state: _ParseState, depth: int) -> None:
    conf = state.conf
    if line.startswith("["):
        close = line.find("]")
        if close < 0:
            raise ConfParseError(path, number, "no closing ']'")
        name = line[1:close].strip()
        rest = line[close + 1 :].strip()
        options: list[str] = []
        if rest.startswith("("):
            end = rest.find(")")
            if end < 0:
                raise ConfParseError(path, number, "no closing ')'")
            options = [o.strip() for o in rest[1:end].split(",") if o.strip()]
        if "+" in options:
            existing = conf.find(name)
            if existing is None:
                raise ConfParseError(path, number, f"(+) on missing category '{name}'")
            state.current = existing
            return
        section = ConfSection(name=name)
        for option in options:
            if option == "!":
                section.template = True
                continue
            base = conf.find(option)
            if base is None:
                raise ConfParseError(path, number, f"inherits missing category '{option}'")
            section.items.extend(base.items)
        conf.sections.append(section)
        state.current = section
        return
    if line.startswith("#"):
        directive, _, argument = line[1:].partition(" ")
        directive = directive.lower()
        target = argument.strip().strip('"').strip("<>").strip()
        if directive in ("include", "tryinclude"):
            if not os.path.isabs(target):
                target = os.path.join(os.path.dirname(path), target)
            _parse_file(
                target, state, depth=depth + 1, lineno=number, optional=directive == "tryinclude"
            )
        else:
            conf.warnings.append(f"{path}:{number}: directive #{directive} ignored")
        return
    key, sep, value = line.partition("=")
    if not sep:
        conf.warnings.append(f"{path}:{number}: no '=' in line, ignored")
        return
    if state.current is None:
        raise ConfParseError(path, number, "value before any [section]")
    append = key.endswith("+")
    key = key.rstrip("+").strip().lower()
    if value.startswith(">"):
        value = value[1:]
    value = value.strip()
    items = state.current.items
    if append:
        for index in range(len(items) - 1, -1, -1):
            if items[index][0] == key:
                items[index] = (key, items[index][1] + value)
                return
    items.append((key, value))
