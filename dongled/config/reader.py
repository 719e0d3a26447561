"""Checks a parsed settings file against the settings dataclasses, key by key, collecting
every error with the line it is on: a key in error is left at its default, so the rest can
still be checked. Generic over the dataclasses (`config.settings` holds them and `load`); the
one table not a dataclass is `[drivers]`, whose keys are the drivers' own (`drivers.known`).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable
from typing import Any, get_origin, get_type_hints

from dongled.core.errors import SettingsError

log = logging.getLogger(__name__)

Check = Callable[[Any], Any]  # returns the value to keep, raises ValueError("must be ...")


def line_of(text: str, dotted: str) -> int | None:
    """The line that sets `dotted` (`key` or `table.key`), for the error message."""
    table, _, name = dotted.rpartition(".")
    current = ""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        header = re.fullmatch(r"\[\s*([\w.-]+)\s*\]\s*(#.*)?", stripped)
        if header is not None:
            current = header.group(1)
            if current == dotted:
                return number
        elif current == table and re.match(rf"[\"']?{re.escape(name)}[\"']?\s*=", stripped):
            return number
    return None


# What a wrong type is told it must be, in words an admin uses.
_TYPE_WORDS = {int: "an integer", float: "a number", str: "a string (in quotes)"}


class Reader:
    """Checks a parsed file key by key, collecting every error (`errors`): a key in error is
    left at its default, so the rest can still be checked."""

    def __init__(self, path: str, text: str) -> None:
        self.path, self.text = path, text
        self.errors: list[SettingsError] = []

    def error(self, name: str, message: str) -> SettingsError:
        return SettingsError(self.path, name, message, line=line_of(self.text, name))

    def table(self, cls: type[Any], raw: dict[str, Any], prefix: str) -> dict[str, Any]:
        """Checked keyword arguments for `cls` from one TOML table."""
        hints = get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        out: dict[str, Any] = {}
        for name, value in raw.items():
            dotted = prefix + name
            if name not in fields:
                known = ", ".join(sorted(fields))
                self.errors.append(self.error(dotted, f"unknown key (known: {known})"))
                continue
            kind: Any = hints[name]
            if get_origin(kind) is dict:
                out[name] = self.files(dotted, value, fields[name].metadata["check"])
                continue
            if isinstance(kind, type) and dataclasses.is_dataclass(kind):
                if not isinstance(value, dict):
                    self.errors.append(self.error(dotted, f"must be a table ([{dotted}])"))
                    continue
                out[name] = kind(**self.table(kind, value, dotted + "."))
                continue
            meta = fields[name].metadata
            try:
                out[name] = self.value(
                    dotted, value, kind, meta.get("check"), bool(meta.get("zero_off"))
                )
            except SettingsError as exc:
                secret = not fields[name].repr  # a secret's value is never said back
                words = f"must be {_TYPE_WORDS.get(kind, 'set')}"
                self.errors.append(self.error(dotted, words) if secret else exc)
        return out

    def files(self, dotted: str, raw: Any, check: Check) -> dict[str, str]:
        """The `[drivers]` table: a path for each driver family it names."""
        from dongled.drivers.known import conf_files

        if not isinstance(raw, dict):
            self.errors.append(self.error(dotted, f"must be a table ([{dotted}])"))
            return {}
        known = conf_files()
        out: dict[str, str] = {}
        for name, value in raw.items():
            if name not in known:
                words = f"unknown driver file (known: {', '.join(sorted(known))})"
                self.errors.append(self.error(f"{dotted}.{name}", words))
                continue
            try:
                out[name] = self.value(f"{dotted}.{name}", value, str, check)
            except SettingsError as exc:
                self.errors.append(exc)
        return out

    def deprecated_files(self, raw: dict[str, Any], aliases: dict[str, str], check: Check) -> None:
        """Moves the old top-level `dongle_conf`/`quectel_conf` into `raw`'s `[drivers]`
        table, with a warning naming file, line and the new spelling; the same file set both
        ways with two different paths is an error."""
        table = raw.setdefault("drivers", {})
        for old, new in aliases.items():
            if old not in raw:
                continue
            try:
                value = self.value(old, raw.pop(old), str, check)
            except SettingsError as exc:
                self.errors.append(exc)
                continue
            line = line_of(self.text, old)
            where = f"{self.path}:{line}" if line else self.path
            if not isinstance(table, dict):
                continue  # the table itself is in error: said by `files`
            if table.get(new, value) != value:
                at = line_of(self.text, f"drivers.{new}")
                other = f"drivers.{new} (line {at})" if at else f"drivers.{new}"
                words = f"and {other} name two different files: keep only drivers.{new}"
                self.errors.append(self.error(old, words))
                continue
            log.warning(
                "%s: %s is deprecated: write it in the [drivers] table as %s = %s",
                where,
                old,
                new,
                _quoted(value),
            )
            table.setdefault(new, value)

    def value(
        self, dotted: str, value: Any, kind: type, check: Check | None, zero_off: bool = False
    ) -> Any:
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is bool and not isinstance(value, bool):
            raise self.error(dotted, f"must be true or false, not {value!r}")
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            words = _TYPE_WORDS.get(kind, kind.__name__)
            raise self.error(dotted, f"must be {words}, not {value!r}")
        if isinstance(value, float) and zero_off and value < 0:
            raise self.error(dotted, "must be 0 (off) or more")
        if isinstance(value, float) and not zero_off and value <= 0:
            raise self.error(dotted, "must be greater than 0")
        if check is not None:
            try:
                value = check(value)
            except ValueError as exc:
                raise self.error(dotted, str(exc)) from None
        return value


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
