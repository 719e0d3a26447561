"""What one lane last saw: its file's sections and Asterisk's listing of its devices.

A pass's steps (read and plan, write, tell Asterisk, verify) each read this and several
renew it: the read of the file and the write replace the sections, a listing or a
verification's poll the devices. It is one small object they share, so no step reaches into
another step or into the executor for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dongled.asterisk.device import DeviceEntry
from dongled.conf.dongleconf import DeviceSection


@dataclass(slots=True)
class Seen:
    sections: dict[str, DeviceSection] = field(default_factory=dict)  # the last good parse
    asterisk: dict[str, DeviceEntry] | None = None  # the last listing; None: AMI unreachable
