"""docs/settings.md and etc/dongled.toml say exactly what the settings dataclasses say."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from dongled.config import reference as settingsref

ROOT = Path(__file__).resolve().parents[2]
REGENERATE = "regenerate: python -m dongled.config.reference toml|markdown (see its docstring)"


def test_the_template_is_the_rendered_one() -> None:
    assert (ROOT / "etc" / "dongled.toml").read_text() == settingsref.toml_template(), REGENERATE


def test_the_reference_table_is_the_rendered_one() -> None:
    assert settingsref.markdown_table() in (ROOT / "docs" / "settings.md").read_text(), REGENERATE


def test_every_key_and_default_is_in_both_files() -> None:
    """Independent of the renderer: each file, read as an admin would, lists every key the
    parser accepts with its default, and nothing else."""
    want = {r.key: r.default for r in settingsref.rows()}
    doc_rows = re.findall(
        r"^\| `([\w.]+)` \| (.+?) \|", (ROOT / "docs/settings.md").read_text(), re.M
    )
    doc = {k: (d if d == "empty" else d.strip("`")) for k, d in doc_rows}
    assert set(doc) == set(want)
    for k, v in want.items():
        assert doc[k] == ("empty" if v == "" else settingsref.toml_value(v).strip('"')), k
    template = (ROOT / "etc" / "dongled.toml").read_text()
    table, seen = "", {}
    for line in template.splitlines():
        if m := re.fullmatch(r"\[(\w+)\]", line):
            table = m.group(1) + "."
        elif m := re.fullmatch(r"# (\w+ = .*)", line):
            ((name, value),) = tomllib.loads(m.group(1)).items()
            seen[table + name] = value
    assert seen == want


def test_every_key_has_help() -> None:
    assert all(r.help and not r.help.endswith(".") for r in settingsref.rows())
    assert len(settingsref.rows()) == 32
