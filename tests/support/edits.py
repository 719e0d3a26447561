"""An admin's hand edits of a driver's file, as editors make them, and what must follow
(tests/e2e/test_e2e_edits.py; bench/edits.py times the same steps)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from tests.support.rig import Rig, wait_until


def save_by_rename(path: Path, text: str) -> None:
    """An editor's save (vim's, nano's with backups, most GUI editors'): a new file written
    beside the old one and renamed over it."""
    tmp = path.parent / f".{path.name}.swp-save"
    tmp.write_text(text)
    os.replace(tmp, path)


def save_in_place(path: Path, text: str) -> None:
    """A save that truncates and rewrites the same file (echo >, sed -i is a rename)."""
    with path.open("w") as f:
        f.write(text)


def counters(r: Rig) -> Mapping[str, int]:
    doc = r.status().get("counters", {})
    assert isinstance(doc, dict)
    return doc


def swapped_ports(r: Rig, a: int, b: int) -> str:
    """The file with two sections' data= and audio= swapped (a copy-paste slip)."""
    text = r.conf.read_text()
    pa, pb = r.sticks[a], r.sticks[b]
    pairs = [
        (pa.data_port.devnode, pb.data_port.devnode),
        (pa.audio_port.devnode, pb.audio_port.devnode),
    ]
    for x, y in pairs:
        text = text.replace(x, "\0").replace(y, x).replace("\0", y)
    return text


def without_section(text: str, name: str) -> str:
    """`text` without the section `[name]` (its header to the next header)."""
    return re.sub(rf"\n\[{re.escape(name)}\][^\[]*", "\n", text)


def runs(r: Rig, device: str, imei: str, stick: int) -> bool:
    """`device` runs `imei` on the ports of stick `stick`, ready."""
    entry = r.asterisk.devices_snapshot().get(device)
    return (
        entry is not None
        and entry["State"] == "Free"
        and entry["IMEIState"] == imei
        and entry["DataState"] == r.sticks[stick].data_port.devnode
    )


def wait_looked(r: Rig, before: int, what: str) -> None:
    """Until the daemon's file watch has read the files after their events (again)."""
    wait_until(lambda: counters(r).get("conf_looks", 0) > before, 10, what)


def foreign_ended_by_stop(r: Rig, stop_verb: str) -> list[str]:
    """Each foreign binding the test Asterisk saw, and whether dongled ended it after it began
    (problems as text; [] when each was ended): a stop of that device, or a reload of the file
    dongled had put back, which restarts the device on its own ports. The reload ends a
    binding that began after dongled's last look and before its reload, a window no listing
    can close (seen against the real IM, 1 run in about 10)."""
    problems = []
    ended = [  # (when, which device: "" for a reload of them all)
        (t, _device(h) if verb == stop_verb else "")
        for t, name, h in r.asterisk.actions
        if (verb := _verb(name, h)) == stop_verb or verb.lower().endswith("reload")
    ]
    for t, device, _data, imei in r.asterisk.foreign_bindings:
        if not any(ts > t and who in (device, "") for ts, who in ended):
            problems.append(f"{device} ran foreign IMEI {imei} and was never stopped after it")
    return problems


def _verb(name: str, headers: Mapping[str, str]) -> str:
    if name.lower() == "command":
        return " ".join(headers.get("Command", "").lower().split()[:2])
    return name


def _device(headers: Mapping[str, str]) -> str:
    if "Device" in headers:
        return headers["Device"]
    words = headers.get("Command", "").split()
    return words[-1] if len(words) > 2 else ""  # `quectel stop now <device>`
