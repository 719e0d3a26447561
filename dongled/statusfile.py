"""The daemon's live state as a JSON snapshot in its runtime directory, for `dongled status`.

Holds no secret; written atomically so a reader never sees half of it.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dongled.daemon import Daemon

SCHEMA = 1
FILENAME = "status.json"
_last: dict[str, bytes] = {}


def snapshot(d: Daemon) -> dict[str, Any]:
    sticks = []
    for s in sorted(d.sticks.values(), key=lambda s: s.usb_port):
        ident = s.identity
        sticks.append(
            {
                "usb_port": s.usb_port,
                "vid_pid": f"{s.vid}:{s.pid}",
                "state": s.state.value,
                "imei": ident.imei if ident else None,
                "imsi": ident.imsi if ident else None,
                "model": ident.model if ident else None,
                "voice": ident.voice if ident else None,
                "data": s.data,
                "audio": s.audio,
                "verified_by": s.source or None,
                "error": s.error or None,
                "ports": {str(k): v for k, v in sorted(s.ports.items())},
            }
        )
    asterisk = {
        name: {
            "state": e.state,
            "imei": e.imei_state,
            "data": e.data_state,
            "data_setting": e.data_setting,
            "audio_setting": e.audio_setting,
        }
        for name, e in sorted((d._asterisk or {}).items())
    }
    return {
        "schema": SCHEMA,
        "pid": os.getpid(),
        "ami_connected": d._ami.connected,
        "conf_error": d.conf_error or None,
        "summary": d.summary(),
        "counters": dict(d.counters),
        "sticks": sticks,
        "asterisk": asterisk,
    }


def publish(d: Daemon) -> None:
    directory = d.s.state_dir
    data = json.dumps(snapshot(d), indent=1, sort_keys=True).encode()
    if _last.get(directory) == data:
        return
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".status.")
        try:
            os.write(fd, data)
            os.fchmod(fd, 0o644)
        finally:
            os.close(fd)
        os.replace(tmp, os.path.join(directory, FILENAME))
    except OSError:
        return  # status is a convenience; never let it take the daemon down
    _last[directory] = data
