"""An edit of the config file's text: which bytes of which lines change, and what may be
written at all.

Apart from the document (dongleconf.py) because these are the decisions of an edit, pure
functions of the parsed sections and the wanted values; the document then reads the edited
text back and checks it says exactly what was meant.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from dongled.conf.parser import Section
from dongled.conf.syntax import decode, line_end
from dongled.core.errors import ConfError

# No '-' at the end: before a "; comment" it would make "--;", which Asterisk reads as the
# close of a block comment (no kernel device name ends so).
_PORT_RE = re.compile(r"/(?:[A-Za-z0-9/_.:+-]{0,253}[A-Za-z0-9/_.:+])?")
_IMEI_RE = re.compile(r"[0-9]{15}")

# Per file: value spans to replace (line index -> (start, end, new bytes)), and lines to
# insert after a line (line index -> new lines, without their endings).
Replace = dict[str, dict[int, list[tuple[int, int, bytes]]]]
Insert = dict[str, dict[int, list[bytes]]]


def check_port(value: str) -> None:
    if not _PORT_RE.fullmatch(value):
        raise ValueError(
            f"refusing to write {value!r}: a port must be an absolute path of at most 255 "
            "characters from [A-Za-z0-9/_.:+-], not ending in '-'"
        )


def check_imei(imei: str) -> None:
    if not _IMEI_RE.fullmatch(imei):
        raise ValueError(f"refusing to write imei {imei!r}: it must be 15 digits")


def line_edits(
    sections: Mapping[str, Section], edits: Mapping[str, Mapping[bytes, str]], main: str
) -> tuple[Replace, Insert]:
    """Where each wanted value goes: over the value bytes of the line Asterisk reads, or, for
    a key the section lacks, after the last setting of its own body. ConfError (naming file
    and line) when that line cannot be edited safely."""
    replace: Replace = {}
    insert: Insert = {}
    for name, values in edits.items():
        section = sections.get(name)
        if section is None:
            raise ConfError(main, None, f"no device section [{name}]")
        for key, value in values.items():
            new = value.encode()
            var = section.first(key)
            if var is None:
                path, index = section.anchor
                insert.setdefault(path, {}).setdefault(index, []).append(key + b"=" + new)
            elif var.inherited:
                raise ConfError(
                    var.path,
                    var.index + 1,
                    f"{decode(key)}= of [{name}] ({section.path}:{section.index + 1}) comes "
                    f"from template [{decode(var.owner)}]; move it into the section",
                )
            elif var.value != new:
                if var.span is None:
                    raise ConfError(
                        var.path,
                        var.index + 1,
                        f"{decode(key)}= has a comment or escape inside its value; "
                        "dongled will not edit it, simplify the line",
                    )
                edit = (*var.span, new)
                replace.setdefault(var.path, {}).setdefault(var.index, []).append(edit)
    return replace, insert


def apply(
    lines: tuple[bytes, ...],
    replace: Mapping[int, list[tuple[int, int, bytes]]],
    insert: Mapping[int, list[bytes]],
) -> bytes:
    default_eol = next((e for e in map(line_end, lines) if e), b"\n")
    out: list[bytes] = []
    for index, line in enumerate(lines):
        for lo, hi, new in sorted(replace.get(index, []), reverse=True):
            line = line[:lo] + new + line[hi:]
        added = insert.get(index, [])
        eol = line_end(line)
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
