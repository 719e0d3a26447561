"""The settings reference and the commented template, rendered from the dataclasses.

docs/settings.md holds `markdown_table()` and etc/dongled.toml is `toml_template()`; a test
keeps both equal to what this renders. After changing a key in dongled/config/settings.py:

    python -m dongled.config.reference toml > etc/dongled.toml
    python -m dongled.config.reference markdown    # paste over the table in docs/settings.md
"""

from __future__ import annotations

import dataclasses
import sys
import textwrap
from dataclasses import dataclass
from typing import Any, get_origin, get_type_hints

from dongled.config.settings import Settings
from dongled.drivers.known import conf_files

_UNITS = {"s": "seconds"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    table: str  # "" for top-level keys, else the [table]
    name: str
    default: Any
    help: str
    unit: str

    @property
    def key(self) -> str:
        return f"{self.table}.{self.name}" if self.table else self.name


def rows() -> list[Row]:
    """Every key: the top-level ones first, then each table's, in field order."""
    top: list[Row] = []
    tables: list[Row] = []
    defaults = Settings()
    for f in dataclasses.fields(Settings):
        kind = get_type_hints(Settings)[f.name]
        if get_origin(kind) is dict:  # [drivers]: one key per driver family, its default
            tables += [
                Row(table=f.name, name=k, default=path, help=_read_by(names), unit="")
                for k, (path, names) in conf_files().items()
            ]
        elif isinstance(kind, type) and dataclasses.is_dataclass(kind):
            sub = getattr(defaults, f.name)
            tables += [_row(f.name, g, getattr(sub, g.name)) for g in dataclasses.fields(kind)]
        else:
            top.append(_row("", f, getattr(defaults, f.name)))
    return top + tables


def _read_by(names: tuple[str, ...]) -> str:
    verb = "reads" if len(names) == 1 else "read"
    return f"the config file {' and '.join(names)} {verb}, which dongled keeps right"


def _row(table: str, f: dataclasses.Field[Any], default: Any) -> Row:
    return Row(
        table=table,
        name=f.name,
        default=default,
        help=f.metadata["help"],
        unit=_UNITS.get(f.metadata["unit"], f.metadata["unit"]),
    )


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def _md_default(value: Any) -> str:
    return "empty" if value == "" else f"`{toml_value(value).strip(chr(34))}`"


def markdown_table() -> str:
    lines = ["| key | default | unit | meaning |", "| --- | --- | --- | --- |"]
    lines += [f"| `{r.key}` | {_md_default(r.default)} | {r.unit} | {r.help} |" for r in rows()]
    return "\n".join(lines) + "\n"


def toml_template() -> str:
    out = [
        "# dongled settings. Every key is optional; the values shown are the defaults.",
        "# What each key does: man 5 dongled.toml (Debian package), or docs/settings.md",
        "# (in /usr/share/doc/dongled/docs/, or /opt/dongled/docs/ after install.sh).",
        "# Set a key by uncommenting its line where it stands, under its own [table]: a table",
        "# declared a second time (e.g. another [ami] appended below) is not valid TOML.",
        "# Generated from dongled/config/settings.py: python -m dongled.config.reference toml",
    ]
    table = ""
    for r in rows():
        if r.table != table:
            table = r.table
            out += ["", f"[{table}]"]
        unit = f" ({r.unit})" if r.unit else ""
        out.append("")
        out += textwrap.wrap(
            r.help.replace("`", "") + unit, 98, initial_indent="# ", subsequent_indent="# "
        )
        out.append(f"# {r.name} = {toml_value(r.default)}")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    if argv[1:] == ["toml"]:
        sys.stdout.write(toml_template())
        return 0
    if argv[1:] == ["markdown"]:
        sys.stdout.write(markdown_table())
        return 0
    sys.stderr.write("usage: python -m dongled.config.reference toml|markdown\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
