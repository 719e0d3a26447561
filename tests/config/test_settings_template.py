"""etc/dongled.toml, the template install.sh installs, loads to the defaults and agrees with
install.sh and the docs on the secret file's mode (that it lists every key with its default:
tests/config/test_settings_reference.py)."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

from dongled.config import settings

TEMPLATE = Path(__file__).resolve().parents[2] / "etc" / "dongled.toml"
# `# key = value   # comment`, in the table of the last `[name]` above it
_LINE = re.compile(r"^# (?P<key>[a-z_]+) = (?P<value>\"[^\"]*\"|\S+)")
_NOT_DEFAULTED = {"ami.secret_file"}  # unset by default; the line shows the usual path


def _template() -> dict[str, Any]:
    out: dict[str, Any] = {}
    table = ""
    for line in TEMPLATE.read_text().splitlines():
        if line.startswith("["):
            table = line.strip("[]") + "."
        elif m := _LINE.match(line):
            out[table + m["key"]] = tomllib.loads(f"v = {m['value']}")["v"]
    return out


def _defaults(obj: object, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out.update(_defaults(value, f"{f.name}."))
        else:
            out[prefix + f.name] = value
    return out


def test_the_template_loads_and_agrees_on_the_secret_file_mode(tmp_path: Path) -> None:
    assert settings.load(str(TEMPLATE)) == settings.Settings()
    text = TEMPLATE.read_text()
    assert "mode 0640, owner root, group asterisk" in text and "0600" not in text
